"""One logging setup for every Kassa process: the web tier, ``kassa worker``, the device host,
the sandbox bank and the other ``kassa`` commands call :func:`configure_logging` at start.

Each line carries the process's role and, when known, the HTTP request's id and the payment
being handled (from :data:`request_id` and :data:`payment_id`, context variables that the web
tier sets per request and the worker per job), so one sale can be followed through every
process. Lines are JSON objects when stderr is not a terminal (or ``[web] log_format = "json"``)
and plain readable text on a terminal (or ``"plain"``).

Whatever the format, control characters in a message are escaped (one record stays one line),
and the card-number filter (:mod:`gateway.adapters.log_filter`) is on every handler.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from gateway.adapters.log_filter import install_card_number_filter

request_id: ContextVar[str | None] = ContextVar("kassa_request_id", default=None)
# An incoming X-Request-Id is kept if it is short and plain (a proxy's, a till's or the gateway's
# own id, by whichever process receives it); anything else is replaced by a new one.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
payment_id: ContextVar[str | None] = ContextVar("kassa_payment_id", default=None)

_role = "kassa"
# Libraries whose INFO lines say nothing an operator needs (alembic's plugin set-up on each
# schema check): warnings only.
QUIET = ("alembic",)

_LOG_ESCAPES = {n: f"\\x{n:02x}" for n in (*range(0x20), 0x7F, 0x85)} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


# What escape_for_log changes: a text without any of these is logged as it is.
_LOG_CONTROL = re.compile("[" + "".join(map(chr, _LOG_ESCAPES)) + "]")


def escape_for_log(value: str) -> str:
    """``value`` with every control character written as an escape: one log line stays one."""
    return value.translate(_LOG_ESCAPES)


def about_payment(payment: str | None) -> None:
    """Say which payment this request or job now handles: later log lines carry its id."""
    payment_id.set(payment)


class ContextFilter(logging.Filter):
    """Puts the process role, request id and payment id on each record; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = _role
        record.request_id = request_id.get()
        record.payment_id = payment_id.get()
        return True


# ensure_ascii escapes every control character, U+0085 and U+2028/9 included. One encoder for
# every line (json.dumps builds a new one per call when given ``default``).
_JSON_LINE = json.JSONEncoder(ensure_ascii=True, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, role and the ids known."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "role": getattr(record, "role", _role),
        }
        for key in ("request_id", "payment_id"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return _JSON_LINE.encode(line)


class PlainFormatter(logging.Formatter):
    """``2026-12-06 18:20:01,123 INFO worker gateway.services.jobs [req=… payment=…] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(role)s %(name)s%(ids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            f"{label}={value}"
            for label, value in (
                ("req", getattr(record, "request_id", None)),
                ("payment", getattr(record, "payment_id", None)),
            )
            if value is not None
        ]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        if not hasattr(record, "role"):
            record.role = _role
        return super().format(record)  # a traceback keeps its lines; the message does not

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_for_log(record.message)
        return super().formatMessage(record)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirect)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _: IO[str]) -> None:
        pass


def configure_logging(
    role: str | None = None,
    log_format: str = "auto",
    *,
    stream: IO[str] | None = None,
    level: int = logging.INFO,
) -> logging.Handler:
    """Give the root logger Kassa's one handler (replacing one set up before) and format the
    handlers of loggers that keep their own (the web server's) the same way; ``role`` names this
    process (``web``, ``worker``, ``device-host``, ``sandbox-bank``, ``cli``)."""
    global _role
    if role is not None:
        _role = role
    target = stream if stream is not None else sys.stderr
    json_lines = log_format == "json" or (log_format == "auto" and not _is_terminal(target))
    formatter: logging.Formatter = JsonFormatter() if json_lines else PlainFormatter()
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.kassa_handler = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "kassa_handler", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for chatty in QUIET:
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    known = [x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger)]
    for each in [root, *known]:
        for own in each.handlers:
            if each is root and not getattr(own, "kassa_handler", False):
                continue  # someone else's (a test's capture): left as it is
            own.setFormatter(formatter)
            if not any(isinstance(f, ContextFilter) for f in own.filters):
                own.addFilter(ContextFilter())
    install_log_escaping()
    install_card_number_filter()
    return handler


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _escaping_factory(inner: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        values = record.args
        if isinstance(values, tuple):
            for value in values:  # most lines have nothing to escape: their args stay as they are
                if isinstance(value, str) and (
                    type(value) is not str or _LOG_CONTROL.search(value)
                ):
                    record.args = tuple(
                        escape_for_log(a) if isinstance(a, str) else a for a in values
                    )
                    break
        return record

    factory.kassa_escapes = True  # type: ignore[attr-defined]
    return factory


def install_log_escaping() -> None:
    """Escape control characters in every log record's text arguments (once per process)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "kassa_escapes", False):
        logging.setLogRecordFactory(_escaping_factory(current))


def outgoing_request_id() -> str | None:
    """The id to send on as ``X-Request-Id`` to another process: this request's or job's, else
    the payment being handled."""
    return request_id.get() or payment_id.get()


__all__ = [
    "SANE_REQUEST_ID",
    "ContextFilter",
    "JsonFormatter",
    "PlainFormatter",
    "about_payment",
    "configure_logging",
    "escape_for_log",
    "install_log_escaping",
    "outgoing_request_id",
    "payment_id",
    "request_id",
]
