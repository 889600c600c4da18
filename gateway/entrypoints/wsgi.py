"""WSGI entry point, as ``kassa serve`` serves it: ``gateway.entrypoints.wsgi:app``."""

from gateway.adapters.logging_setup import configure_logging
from gateway.entrypoints.app import create_app

app = create_app()
# After granian set up its loggers: theirs and ours get one format and the card-number filter.
configure_logging("web", app.extensions["kassa.settings"].web.log_format)
