"""Gunicorn's own log lines (its master's start, signals, worker boots) in Kassa's one format:
``--logger-class gateway.entrypoints.gunicorn_logs.WebLogger`` (``kassa serve``) or
``SandboxBankLogger`` (``kassa sandbox-bank serve``). The workers set it up again when they load
the WSGI module; this class covers the master, which never loads it.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from gateway.adapters.logging_setup import configure_logging


def configured_log_format() -> str:
    """`[web] log_format`, or "auto" when the configuration does not load."""
    from gateway.config import load_config
    from gateway.errors import KassaError

    try:
        return load_config().web.log_format
    except KassaError:
        return "auto"  # a configuration error is the app's to report, with its message


class WebLogger(Logger):  # type: ignore[misc]
    role = "web"

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_logging(self.role, configured_log_format())


class SandboxBankLogger(WebLogger):
    role = "sandbox-bank"


__all__ = ["SandboxBankLogger", "WebLogger", "configured_log_format"]
