"""`/cashier/payments/<id>/events`: the payment screen's live feed (server-sent events).

The device host writes the terminal's texts ("Insert card", "PIN entry") to the payment as they
arrive; this stream pushes each change to the cashier's screen within a poll interval (50 ms),
where the once-a-second status poll would show it up to a second late. It stays cheap and lets
go of everything between looks: each look is a short read-only transaction on the payment's
version column (no session or connection is held between looks), the whole payment is read
only when that changed, and the stream ends when the payment is settled and after
``[web] event_stream_seconds`` at the latest (the browser's EventSource then reconnects). The
page keeps polling whenever the stream is not connected, so it works without it too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app

from gateway.adapters import i18n
from gateway.adapters.db import Database
from gateway.entrypoints.cashier.screen import payment_state, signed_in_staff
from gateway.entrypoints.staff_session import database
from gateway.errors import NotFound
from gateway.services.devices import device_reads
from gateway.services.payments import payment_reads, refunds
from gateway.services.staff.scope import Scope

bp = Blueprint("live", __name__)

LOOK_SECONDS = 0.05  # how often the stream looks at the payment
KEEP_ALIVE_SECONDS = 5.0  # a comment line now and then: proxies keep it open, and a browser
# that went away is noticed (its write fails) and the stream ends


@bp.get("/payments/<payment_id>/events")
def payment_events(payment_id: str) -> Response:
    staff = signed_in_staff()
    lifetime = current_app.extensions["kassa.settings"].web.event_stream_seconds
    db = database()
    with db.unit_of_work(readonly=True) as uow:
        payment_reads.get_payment(uow, payment_id, staff.scope)  # not found outside the scope
    if lifetime <= 0:
        raise NotFound("live updates are turned off ([web] event_stream_seconds = 0): poll")
    locale = i18n.current_locale()  # the page's language, as the page that opened it
    response = Response(
        stream(db, payment_id, staff.scope, lifetime, locale), mimetype="text/event-stream"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def stream(
    db: Database, payment_id: str, scope: Scope, lifetime: float, locale: str = "en"
) -> Iterator[str]:
    """``status`` events with the payment's screen state, one per change (of the payment, or
    of one of its refunds), until it is settled with no refund on its way, or ``lifetime``
    seconds are over."""
    yield "retry: 1000\n\n"
    ends = time.monotonic() + lifetime
    said_at = time.monotonic()
    seen: tuple[Any, ...] | None = None
    while True:
        state: dict[str, Any] | None = None
        with db.unit_of_work(readonly=True) as uow:
            version = device_reads.payment_version(uow, payment_id, scope)
            look = (version, *refunds.refund_version(uow, payment_id))
            if version is not None and look != seen:
                payment = payment_reads.get_payment(uow, payment_id, scope)
                state = payment_state(uow, payment, locale)
        if state is not None:
            seen, said_at = look, time.monotonic()
            yield f"event: status\ndata: {json.dumps(state)}\n\n"
            if not state["following"]:
                return
        elif time.monotonic() - said_at >= KEEP_ALIVE_SECONDS:
            said_at = time.monotonic()
            yield ": still here\n\n"
        if version is None or time.monotonic() >= ends:
            return
        time.sleep(LOOK_SECONDS)
