"""`/portal/audit`: the merchant's audit trail, filtered by dates, actor, action and store,
and its CSV export (formula-safe: a cell that would start a spreadsheet formula is quoted)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, render_template, request
from werkzeug.datastructures import MultiDict

from gateway.adapters.models import utcnow
from gateway.entrypoints import staff_session
from gateway.entrypoints.staff_session import current_staff, database
from gateway.errors import Unauthorised
from gateway.services.staff import audit
from gateway.services.staff.auth import StaffContext
from gateway.services.staff.stores import merchant_stores
from merchant_portal.filters import PagedDateRange

bp = Blueprint("audit", __name__)
PAGE_SIZE = 100
CSV_LIMIT = 100_000


@dataclass
class AuditQuery(PagedDateRange):
    actor: str = ""
    action: str = ""
    store: int | None = None

    @classmethod
    def parse(cls, args: MultiDict[str, str]) -> AuditQuery:
        query = cls()
        query.actor = args.get("actor", "").strip()[:100]
        query.action = args.get("action", "").strip()[:64]
        store = args.get("store", "")
        if store and not store.isdigit():
            query.errors.append(f"“{store}” is not a store.")
        query.store = int(store) if store.isdigit() else None
        query.read_range_and_page(args)
        return query

    def to_filter(self, staff: StaffContext, limit: int | None) -> audit.AuditFilter:
        """The rows this person may read: their merchant's, and their store's if they are
        bound to one (a store manager never sees another store's rows; an auditor or owner with
        a store on file still reads every store's, as their scope says)."""
        return audit.AuditFilter(
            merchant_id=staff.merchant_id,
            date_from=self.date_from,
            date_to=self.date_to,
            actor=self.actor,
            action=self.action,
            store_id=staff.scope.store_id if staff.scope.store_id is not None else self.store,
            limit=limit,
            offset=(self.page - 1) * PAGE_SIZE if limit else 0,
        )

    def url_args(self, **changes: Any) -> dict[str, Any]:
        args = {
            "from": self.date_from,
            "to": self.date_to,
            "actor": self.actor,
            "action": self.action,
            "store": self.store,
            "page": self.page,
        } | changes
        return {k: v for k, v in args.items() if v and not (k == "page" and v == 1)}


def _staff() -> StaffContext:
    staff = current_staff()
    if staff is None:
        raise Unauthorised("sign in first")
    return staff


@bp.get("/audit")
def audit_log() -> Any:
    staff = _staff()
    query = AuditQuery.parse(request.args)
    with database().unit_of_work(readonly=True) as uow:
        rows, total = (
            ([], 0) if query.errors else audit.list_entries(uow, query.to_filter(staff, PAGE_SIZE))
        )
        stores = [
            store
            for store in merchant_stores(uow, staff.merchant_id)
            if staff.scope.store_id in (None, store.id)
        ]
        return render_template(
            "portal/audit.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            rows=rows,
            total=total,
            query=query,
            actions=audit.actions(uow, staff.merchant_id),
            stores=stores,
            store_names={s.id: s.name for s in stores},
            page_size=PAGE_SIZE,
        )


@bp.get("/audit.csv")
def audit_csv() -> Response:
    """Every matching row (newest first) as CSV; the download itself is audited."""
    staff = _staff()
    query = AuditQuery.parse(request.args)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(audit.CSV_COLUMNS)
    with database().unit_of_work() as uow:
        if not query.errors:
            rows, _ = audit.list_entries(uow, query.to_filter(staff, CSV_LIMIT))
            writer.writerows(audit.csv_row(row) for row in rows)
        audit.record(
            uow, "csv.downloaded", target=("report", "audit"), after=query.url_args(page=1)
        )
        uow.commit()
    name = f"audit-{utcnow().date().isoformat()}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
