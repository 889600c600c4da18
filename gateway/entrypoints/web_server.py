"""The HTTP server in front of Kassa's WSGI apps: granian, as ``kassa serve`` (the web tier) and
``kassa sandbox-bank serve`` run it.

Granian's HTTP/1.1 side (parsing, keep-alive, writing answers) is Rust; each worker process runs
the WSGI app on a pool of Python threads (``threads``: each open card payment screen's live
stream holds one). It replaced gunicorn's threaded worker, whose main thread took every
keep-alive request through a poller, a pipe and a future: about 40 % of a worker's time on a
bank callback (issue 19, ``python -m bench.callbacks``).

Its own log lines (start, workers, errors) go to Kassa's one handler in Kassa's format, through
the card-number filter; there is no separate access log: the app's request line
(:mod:`gateway.entrypoints.observability`) says method, path, status and time with the
request's id.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from gateway.adapters.logging_setup import configure_logging

# A worker that will not stop within this many seconds of SIGTERM (a live stream still open) is
# killed: ``kassa run`` gives each child 10 s before it kills it, master and all.
STOP_SECONDS = 5

# The master's process id, for its workers (forks, which inherit it) to tell whether it is alive.
MASTER_PID = "KASSA_WEB_MASTER_PID"

# Granian's loggers hand their records on to the root logger, where Kassa's handler is.
LOG_CONFIG: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    },
}


class _ManyThreadsWarning(logging.Filter):
    """Drops granian's start-up warning that more WSGI threads than 2 × cores + 1 is a lot: a
    worker's threads mostly wait (a cashier screen's live stream holds one for minutes), so
    ``--threads 16`` on two cores is meant."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Configuration allows spawning up to")


def configured_log_format() -> str:
    """`[web] log_format`, or "auto" when the configuration does not load."""
    from gateway.config import load_config
    from gateway.errors import KassaError

    try:
        return load_config().web.log_format
    except KassaError:
        return "auto"  # a configuration error is the app's to report, with its message


def load_in_worker(target: str) -> Callable[..., Any]:
    """Import ``target`` ("module:attribute") in a worker process, which first makes sure it
    ends with its master: a master killed outright (SIGKILL, the OOM killer) would otherwise
    leave its workers serving on, unmanaged (gunicorn's workers watch their parent the same
    way). Linux sends the worker SIGTERM as its master dies; a thread also checks the parent
    every second, for a master that died before that request took effect or a SIGTERM that
    came while the worker was still starting."""
    master = int(os.environ.get(MASTER_PID, os.getppid()))
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    watch = threading.Thread(target=_end_with, args=(master,), name="master-watch", daemon=True)
    watch.start()
    module, _, attribute = target.partition(":")
    app: Callable[..., Any] = getattr(importlib.import_module(module), attribute or "app")
    ready_to_serve()
    return without_process_environment(app, dict(os.environ))


def without_process_environment(
    app: Callable[..., Any], process: Mapping[str, str]
) -> Callable[..., Any]:
    """``app`` given each request's WSGI environ without the process's environment variables.

    Granian starts every environ from a copy of ``os.environ`` (CGI's way), so each request
    would carry the database URL, the web secret and the bank's webhook secret to whatever
    reads its environ (an error report, a debugging page), and every walk over the request's
    headers would pass them too. ``process`` is that copy (taken as granian takes it, once
    the app is loaded); a key whose value is the process's is left out, and anything the
    request itself set (a header named like a variable, with another value) is kept."""
    absent = object()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        own = {key: value for key, value in environ.items() if process.get(key, absent) != value}
        return app(own, start_response)

    serve.wrapped = app  # type: ignore[attr-defined]
    return serve


def ready_to_serve() -> None:
    """What a worker does once its app is loaded, before the first request: log records
    without what no Kassa line shows, and what is loaded kept out of the collector's passes."""
    lean_log_records()
    freeze_loaded_objects()


def lean_log_records() -> None:
    """Log records without the caller's file and line (a walk up the stack per record), the
    thread's name or the process's: Kassa's lines (JSON or plain) show none of them. The
    switches the logging HOWTO names for this ("Optimization"). Only in a serving worker: a
    test's or a command's records keep them, for a developer's log format."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def freeze_loaded_objects() -> None:
    """Keep what the worker has loaded so far (modules, the app, its routes, mappers and
    templates: hundreds of thousands of objects that live as long as the process) out of the
    garbage collector's full passes, which would otherwise walk all of them: about a tenth of
    a bank callback's CPU in steady state, and a pause of tens of milliseconds each time one
    runs (measured with callgrind: ``bench/prof_callback.py``'s calls, 3.1M instructions per
    callback without, 2.8M with). Garbage left by the import is collected first; what the
    requests make is collected as before. ``gc.freeze`` is the standard library's way (its
    documentation; Instagram's servers do the same)."""
    gc.collect()
    gc.freeze()


def _end_with(master: int) -> None:
    """Once ``master`` is no longer this process's parent: stop as on SIGTERM (granian's
    graceful stop), and leave for good if that has not ended the process in STOP_SECONDS."""
    while os.getppid() == master:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_SECONDS)
    os._exit(0)


def serve_wsgi(
    target: str, *, host: str, port: int, workers: int, threads: int, role: str
) -> NoReturn:
    """Serve the WSGI app ``target`` ("module:attribute") until SIGINT or SIGTERM, then exit.

    Each worker imports ``target`` itself (whose module sets logging up again for its role); a
    worker that dies is started again."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server import Server

    configure_logging(role, configured_log_format())
    os.environ[MASTER_PID] = str(os.getpid())
    logging.getLogger("_granian").addFilter(_ManyThreadsWarning())
    Server(
        target,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        http=HTTPModes.http1,
        websockets=False,
        log_dictconfig=LOG_CONFIG,
        respawn_failed_workers=True,
        workers_kill_timeout=STOP_SECONDS,
    ).serve(target_loader=load_in_worker)
    raise SystemExit(0)


__all__ = [
    "LOG_CONFIG",
    "STOP_SECONDS",
    "configured_log_format",
    "load_in_worker",
    "serve_wsgi",
]
