"""WSGI entry point: ``python -m gunicorn --workers 1 --threads 8 sandbox_bank.wsgi:app``.

One worker process: the callback delivery thread and the in-process write lock live in it
(threads serve requests concurrently).
"""

from gateway.adapters.logging_setup import configure_logging
from gateway.entrypoints.gunicorn_logs import configured_log_format
from sandbox_bank.app import create_app

app = create_app()
configure_logging("sandbox-bank", configured_log_format())  # after gunicorn set up its loggers
