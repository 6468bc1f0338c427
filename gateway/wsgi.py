"""The WSGI entry point for gunicorn (`gateway.wsgi:app`)."""
from . import create_app

app = create_app()
