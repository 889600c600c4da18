"""WSGI entry point for gunicorn: ``gunicorn gateway.entrypoints.wsgi:app``."""

from gateway.adapters.log_filter import install_card_number_filter
from gateway.entrypoints.app import create_app

app = create_app()
install_card_number_filter()  # after gunicorn set up its loggers
