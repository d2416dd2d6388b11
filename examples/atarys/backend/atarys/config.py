"""Settings read from the environment, once, at startup.

The appliance writes an environment file at first boot and systemd loads it
with EnvironmentFile=; nothing is read from disk here. Every error names the
variable and says what to do, and never repeats a secret's value.
"""

import logging
import os
from dataclasses import dataclass

ENVIRONMENTS = ("dev", "staging", "production")


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the application must not start."""


@dataclass(frozen=True)
class Config:
    database_url: str
    secret_key: str
    log_level: int
    log_level_name: str
    cors_origins: frozenset
    env: str
    metrics_dir: str  # "" when each process keeps its own metrics


def config_from_env(environ=None):
    """Build a Config from `environ` (default os.environ) or raise ConfigError."""
    env = os.environ if environ is None else environ

    secret_key = env.get("SECRET_KEY", "")
    if not secret_key.strip():
        raise ConfigError(
            "SECRET_KEY is not set: set it in the service's environment "
            "(a long random string, e.g. from `openssl rand -hex 32`)"
        )

    database_url = env.get("DATABASE_URL", "").strip()
    if not database_url:
        raise ConfigError(
            "DATABASE_URL is not set: set it to a libpq URI, "
            "e.g. postgresql://atarys:PASSWORD@127.0.0.1:5432/atarys"
        )
    if not database_url.startswith(("postgresql://", "postgres://")):
        # Do not echo the value: it usually carries a password.
        raise ConfigError(
            "DATABASE_URL is not a libpq URI: it must start with 'postgresql://'"
        )

    level_name = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level_name == "WARN":
        level_name = "WARNING"
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        raise ConfigError(
            f"LOG_LEVEL '{env.get('LOG_LEVEL')}' is not a level: "
            "use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )

    origins = frozenset(
        o.strip().rstrip("/") for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()
    )
    for o in origins:
        if not o.startswith(("http://", "https://")):
            raise ConfigError(
                f"CORS_ORIGINS entry '{o}' is not an origin: "
                "use scheme://host[:port], e.g. https://atarys.example"
            )

    atarys_env = env.get("ATARYS_ENV", "production").strip() or "production"
    if atarys_env not in ENVIRONMENTS:
        raise ConfigError(
            f"ATARYS_ENV '{atarys_env}' is not one of {', '.join(ENVIRONMENTS)}"
        )

    return Config(
        database_url=database_url,
        secret_key=secret_key,
        log_level=level,
        log_level_name=level_name,
        cors_origins=origins,
        env=atarys_env,
        metrics_dir=env.get("ATARYS_METRICS_DIR", "").strip(),
    )
