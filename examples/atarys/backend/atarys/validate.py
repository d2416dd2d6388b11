"""Checks on client input; each failure names the field and what is allowed."""

STATUSES = ("planned", "active", "done")
NAME_MAX = 200
CLIENT_MAX = 200
LIMIT_DEFAULT = 100
LIMIT_MAX = 1000


class ValidationError(ValueError):
    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def validate_new_chantier(data):
    """The fields of a new chantier from a decoded JSON body, or ValidationError."""
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = sorted(set(data) - {"name", "client", "status"})
    if unknown:
        raise ValidationError(
            f"unknown field '{unknown[0]}': allowed are name, client, status", unknown[0]
        )

    name = data.get("name")
    if name is None:
        raise ValidationError("'name' is required", "name")
    if not isinstance(name, str):
        raise ValidationError("'name' must be a string", "name")
    if "\x00" in name:
        raise ValidationError("'name' must not contain NUL characters", "name")
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise ValidationError(f"'name' must be 1 to {NAME_MAX} characters", "name")

    client = data.get("client")
    if client is not None:
        if not isinstance(client, str):
            raise ValidationError("'client' must be a string", "client")
        if "\x00" in client:
            raise ValidationError("'client' must not contain NUL characters", "client")
        client = client.strip() or None
        if client is not None and len(client) > CLIENT_MAX:
            raise ValidationError(f"'client' must be at most {CLIENT_MAX} characters", "client")

    status = data.get("status", "planned")
    if status not in STATUSES:
        raise ValidationError(f"'status' must be one of {', '.join(STATUSES)}", "status")

    return {"name": name, "client": client, "status": status}


def parse_limit(raw):
    """The ?limit= of a listing: LIMIT_DEFAULT when absent, else 1..LIMIT_MAX."""
    if raw is None or raw == "":
        return LIMIT_DEFAULT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= LIMIT_MAX:
        raise ValidationError(f"'limit' must be a number from 1 to {LIMIT_MAX}", "limit")
    return int(raw)
