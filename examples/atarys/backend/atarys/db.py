"""PostgreSQL access with psycopg2: one short connection per request.

A connection per request costs a few milliseconds on loopback and leaves
nothing to go stale when PostgreSQL restarts, which matters more on an
appliance than the saved round trip. The schema belongs to the application:
it is created if missing, at startup and again on first use if the database
was not reachable then.
"""

import threading
from contextlib import contextmanager
from datetime import timezone

import psycopg2
import psycopg2.extras

# Short enough that /api/health answers well within a load balancer's or
# Prometheus' timeout when the server is gone.
CONNECT_TIMEOUT_S = 3

# Any constant works: it only serialises schema creation between Gunicorn
# workers that start at the same moment (concurrent CREATE TABLE IF NOT
# EXISTS can otherwise fail on the catalog's unique index).
SCHEMA_LOCK_KEY = 0x61746172  # "atar"

SCHEMA = """
CREATE TABLE IF NOT EXISTS chantiers (
    id         bigserial PRIMARY KEY,
    name       varchar(200) NOT NULL CHECK (length(name) > 0),
    client     varchar(200),
    status     text NOT NULL DEFAULT 'planned'
               CHECK (status IN ('planned', 'active', 'done')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS chantiers_created_at_idx ON chantiers (created_at DESC, id DESC);
"""

COLUMNS = "id, name, client, status, created_at"

# What a caller may catch: every error psycopg2 raises derives from it.
Error = psycopg2.Error
# The server is unreachable or went away (as opposed to a bad statement).
OperationalError = psycopg2.OperationalError


class Database:
    def __init__(self, url):
        self._url = url
        self._schema_ready = False
        self._lock = threading.Lock()

    @contextmanager
    def connect(self):
        """A connection in a transaction, committed on success, always closed."""
        conn = psycopg2.connect(
            self._url,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="atarys",
        )
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def ping(self):
        """Raise psycopg2.Error unless `SELECT 1` works."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    def ensure_schema(self):
        """Create the tables if missing; cheap once done in this process."""
        if self._schema_ready:
            return
        with self._lock:
            if self._schema_ready:
                return
            with self.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
                cur.execute(SCHEMA)
            self._schema_ready = True

    def _query(self, sql, args=()):
        self.ensure_schema()
        with self.connect() as conn:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []

    def list_chantiers(self, limit):
        rows = self._query(
            f"SELECT {COLUMNS} FROM chantiers ORDER BY created_at DESC, id DESC LIMIT %s",
            (limit,),
        )
        return [_to_json(r) for r in rows]

    def get_chantier(self, chantier_id):
        rows = self._query(f"SELECT {COLUMNS} FROM chantiers WHERE id = %s", (chantier_id,))
        return _to_json(rows[0]) if rows else None

    def create_chantier(self, name, client, status):
        rows = self._query(
            f"INSERT INTO chantiers (name, client, status) VALUES (%s, %s, %s) "
            f"RETURNING {COLUMNS}",
            (name, client, status),
        )
        return _to_json(rows[0])

    def count_chantiers(self):
        return self._query("SELECT count(*) AS n FROM chantiers")[0]["n"]


def _to_json(row):
    out = dict(row)
    # ISO 8601 in UTC whatever the server's TimeZone setting.
    out["created_at"] = row["created_at"].astimezone(timezone.utc).isoformat()
    return out
