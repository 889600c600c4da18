"""`/portal/events`: the stored inbound events that concern the merchant (bank callbacks, the
bank's answers to polls, settlement files), filtered by type and status, each with its raw
headers and body and a replay button (gateway.services.inbound_events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as Redirect

from gateway.adapters.i18n import gettext as _
from gateway.entrypoints.status_names import status_name
from gateway.errors import Conflict, InvalidInput
from gateway.services import inbound_events
from gateway.settings import Settings
from merchant_portal.views import database, signed_in_manager, staff_session

bp = Blueprint("events", __name__)
PAGE_SIZE = 50
STATUSES = (
    "received",
    "processed",
    "unmatched",
    "unknown_type",
    "invalid",
    "failed",
    "rejected",
)


@dataclass
class EventQuery:
    source: str = ""
    kind: str = ""
    status: str = ""
    page: int = 1

    @classmethod
    def parse(cls, args: MultiDict[str, str]) -> EventQuery:
        page = args.get("page", "1")
        return cls(
            source=args.get("source", "") if args.get("source") in inbound_events.SOURCES else "",
            kind=args.get("type", "").strip()[:64],
            status=args.get("status", "") if args.get("status") in STATUSES else "",
            page=int(page) if page.isdigit() and int(page) >= 1 else 1,
        )

    def to_filter(self) -> inbound_events.EventFilter:
        return inbound_events.EventFilter(
            source=self.source or None,
            kind=self.kind or None,
            status=self.status or None,
            limit=PAGE_SIZE,
            offset=(self.page - 1) * PAGE_SIZE,
        )

    def url_args(self, **changes: Any) -> dict[str, Any]:
        args = {"source": self.source, "type": self.kind, "status": self.status} | {
            "page": self.page
        }
        args |= changes
        return {k: v for k, v in args.items() if v and not (k == "page" and v == 1)}


@bp.get("/events")
def events() -> Any:
    staff = signed_in_manager()
    query = EventQuery.parse(request.args)
    with database().unit_of_work(readonly=True) as uow:
        rows, total = inbound_events.list_merchant_events(uow, staff.merchant_id, query.to_filter())
        return render_template(
            "portal/events.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            events=rows,
            total=total,
            query=query,
            sources=inbound_events.SOURCES,
            statuses=STATUSES,
            page_size=PAGE_SIZE,
            scan=inbound_events.SCAN,
        )


@bp.get("/events/<int:event_id>")
def event(event_id: int) -> Any:
    staff = signed_in_manager()
    with database().unit_of_work(readonly=True) as uow:
        found = inbound_events.get_event(uow, event_id, staff.merchant_id)
        return render_template(
            "portal/event.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            event=found,
            body=inbound_events.body_text(found),
        )


@bp.post("/events/<int:event_id>/replay")
def replay(event_id: int) -> Redirect:
    """Process the event again; a processed one changes nothing."""
    staff = signed_in_manager()
    settings: Settings = current_app.extensions["kassa.settings"]
    try:
        done = inbound_events.replay(database(), event_id, settings.settlement, staff.merchant_id)
        flash(
            _(
                "Replayed: %(before)s → %(after)s; %(note)s.",
                before=status_name(done.before),
                after=status_name(done.after),
                note=done.note,
            )
        )
    except (Conflict, InvalidInput) as exc:
        flash(_("Could not replay: %(reason)s.", reason=exc.message))
    return redirect(url_for(".event", event_id=event_id), 303)
