"""Gunicorn entry point: `gunicorn --chdir /opt/atarys/backend wsgi:app`.

All configuration comes from the environment (see ../README.md). A missing
or invalid setting stops the worker from booting with one clear log line, so
Gunicorn exits instead of serving a half-configured application.
"""

from atarys import create_app
from atarys.config import ConfigError

try:
    app = create_app()
except ConfigError:
    # create_app() logged the reason in one line. Status 3 is Gunicorn's
    # "worker failed to boot" (Arbiter.WORKER_BOOT_ERROR): the master stops
    # rather than starting workers again, and prints no traceback over the
    # message. Under --preload the master itself exits with 3.
    raise SystemExit(3) from None
