"""Who is acting and from where, for the audit trail: set once by each entry point.

Pure standard library, so the CLI can set its source without importing the database layer.
The web tier sets the request's address (and clears the person) at the start of every request,
the CLI ``cli``, the worker ``worker`` and the device host ``device-host``; sign-in sets the
person. :func:`gateway.services.staff.audit.record` reads both unless told otherwise.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Acting:
    """The person or till behind the actions of this request or process."""

    actor: str
    staff_id: int | None = None
    role: str | None = None
    merchant_id: int | None = None
    store_id: int | None = None


_process_source = "cli"
_source: ContextVar[str | None] = ContextVar("kassa_audit_source", default=None)
_acting: ContextVar[Acting | None] = ContextVar("kassa_audit_acting", default=None)


def set_process_source(source: str) -> None:
    """This process's source for every thread: ``worker``, ``device-host`` (default ``cli``)."""
    global _process_source
    _process_source = source
    _source.set(None)


def set_source(source: str) -> None:
    """Where this request's actions come from (its remote address); forgets the person."""
    _source.set((source or "unknown")[:64])
    _acting.set(None)


def set_acting(acting: Acting | None) -> None:
    _acting.set(acting)


def current_source() -> str:
    return _source.get() or _process_source


def current_acting() -> Acting | None:
    return _acting.get()
