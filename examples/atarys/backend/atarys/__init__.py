"""ATARYS: a small chantier (work site) register, the appliance's sample app.

create_app() reads the environment, sets up logging to stderr, and returns
the Flask application that wsgi.py hands to Gunicorn.
"""

import logging
import re
import sys
import time

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from . import db as dbmod
from .config import ConfigError, config_from_env
from .metrics import CONTENT_TYPE, Metrics
from .validate import ValidationError, parse_limit, validate_new_chantier

log = logging.getLogger("atarys")

# Largest id PostgreSQL's bigint holds; a larger one cannot exist.
MAX_ID = 2**63 - 1

# Requests logged at DEBUG rather than INFO: scraped or polled every few seconds.
QUIET_PATHS = ("/metrics", "/api/health")


class OneLineFormatter(logging.Formatter):
    """`LEVEL logger: message`, with tracebacks folded onto the same line.

    The journal adds the time and the unit, and reads one entry per line.
    """

    def format(self, record):
        return super().format(record).replace("\n", " | ")


def setup_logging(level):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def route_template(rule):
    """'/api/chantiers/<int:id>' -> '/api/chantiers/<id>' for metric labels."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"<\1>", rule)


def create_app(environ=None):
    """The configured application; raises ConfigError (logged once) on bad settings."""
    try:
        cfg = config_from_env(environ)
    except ConfigError as e:
        setup_logging(logging.INFO)
        log.critical("cannot start: %s", e)
        # Raised, not exited: wsgi.py turns it into Gunicorn's boot-failure
        # status; other callers (tests, a debugger) get the exception.
        raise
    setup_logging(cfg.log_level)

    app = Flask("atarys")
    app.secret_key = cfg.secret_key
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    # Nginx in front sets X-Forwarded-For and X-Forwarded-Proto; trust one hop.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)

    database = dbmod.Database(cfg.database_url)
    try:
        metrics = Metrics(cfg.metrics_dir)
    except OSError as e:
        log.critical(
            "cannot start: ATARYS_METRICS_DIR '%s' is not a writable directory: %s",
            cfg.metrics_dir,
            e.strerror,
        )
        raise ConfigError(f"ATARYS_METRICS_DIR '{cfg.metrics_dir}': {e.strerror}") from e
    app.extensions["atarys"] = {"config": cfg, "db": database, "metrics": metrics}

    try:
        database.ensure_schema()
    except dbmod.Error as e:
        log.warning(
            "schema not created at startup (%s: %s); retried on first use",
            type(e).__name__,
            str(e).strip().splitlines()[0] if str(e).strip() else "",
        )

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def finish(response):
        if cfg.cors_origins:
            response.vary.add("Origin")
            origin = request.headers.get("Origin", "").rstrip("/")
            if origin in cfg.cors_origins:
                response.headers["Access-Control-Allow-Origin"] = origin
                if request.method == "OPTIONS":
                    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
                    response.headers["Access-Control-Max-Age"] = "600"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        path = route_template(request.url_rule.rule) if request.url_rule else "unmatched"
        metrics.observe(request.method, path, response.status_code, elapsed)
        level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
        log.log(
            level,
            "%s %s %d %.1fms client=%s",
            request.method,
            request.path,
            response.status_code,
            elapsed * 1000,
            request.remote_addr,
        )
        return response

    @app.errorhandler(HTTPException)
    def http_error(e):
        return jsonify(error=e.description), e.code

    @app.errorhandler(ValidationError)
    def bad_input(e):
        return jsonify(error=str(e), field=e.field), 400

    @app.errorhandler(dbmod.Error)
    def database_error(e):
        log.error("database error: %s: %s", type(e).__name__, str(e).strip())
        if isinstance(e, dbmod.OperationalError):
            return jsonify(error="database unavailable, try again later"), 503
        return jsonify(error="internal error"), 500

    @app.errorhandler(Exception)
    def internal_error(e):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal error"), 500

    @app.get("/api/health")
    def health():
        try:
            database.ping()
        except dbmod.Error as e:
            log.warning("health: database unreachable: %s", type(e).__name__)
            body = {
                "status": "error",
                "database": "unreachable",
                "error": type(e).__name__,
                "env": cfg.env,
            }
            return jsonify(body), 503
        return jsonify(status="ok", database="ok", env=cfg.env)

    @app.get("/api/chantiers")
    def list_chantiers():
        limit = parse_limit(request.args.get("limit"))
        return jsonify(database.list_chantiers(limit))

    @app.post("/api/chantiers")
    def create_chantier():
        if not request.is_json:
            raise ValidationError("the body must be JSON (Content-Type: application/json)")
        data = request.get_json(silent=True)
        if data is None:
            raise ValidationError("the body is not valid JSON")
        fields = validate_new_chantier(data)
        created = database.create_chantier(**fields)
        log.info("chantier %d created", created["id"])
        return jsonify(created), 201

    @app.get("/api/chantiers/<int:id>")
    def get_chantier(id):  # noqa: A002 - the name is the route's label
        found = database.get_chantier(id) if id <= MAX_ID else None
        if found is None:
            return jsonify(error=f"chantier {id} not found"), 404
        return jsonify(found)

    @app.get("/metrics")
    def prometheus():
        try:
            database.ping()
            up = True
        except dbmod.Error:
            up = False
        total = None
        if up:
            try:
                total = database.count_chantiers()
            except dbmod.Error:
                total = None
        return Response(metrics.render(up, total), content_type=CONTENT_TYPE)

    return app
