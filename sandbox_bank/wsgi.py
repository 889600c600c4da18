"""WSGI entry point, as ``kassa sandbox-bank serve`` serves it (granian, one worker, 8 threads).

One worker process: the callback delivery thread and the in-process write lock live in it
(threads serve requests concurrently).
"""

from gateway.adapters.logging_setup import configure_logging
from gateway.entrypoints.web_server import configured_log_format
from sandbox_bank.app import create_app

app = create_app()
configure_logging("sandbox-bank", configured_log_format())  # after granian set up its loggers
