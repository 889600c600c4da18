"""WSGI entry point for gunicorn: ``gunicorn gateway.entrypoints.wsgi:app``."""

from gateway.entrypoints.app import create_app

app = create_app()
