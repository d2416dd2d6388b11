"""Gunicorn entry point: `gunicorn --chdir /opt/atarys/backend wsgi:app`.

All configuration comes from the environment (see ../README.md). A missing
or invalid setting stops the worker from booting with one clear log line, so
Gunicorn exits instead of serving a half-configured application.
"""

from atarys import create_app

app = create_app()
