"""`/portal/settlement`: did the bank pay what Kassa expected? Managers' reconciliation pages.

A month's calendar of settlement days, each day's verdicts, the queue of open exceptions, and
one verdict with the evidence on both sides, where a manager links, accepts or writes off (with
a note, audited) and can reopen a decision. Every decision re-runs the days it touches at once.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as Redirect

from gateway.adapters.db import UnitOfWork
from gateway.adapters.i18n import gettext as _
from gateway.adapters.i18n import lazy_gettext as _l
from gateway.adapters.models import ReconResult, utcnow
from gateway.entrypoints import input_guard
from gateway.errors import InvalidInput, NotFound
from gateway.services.settlement import settlement_reads as reads
from gateway.services.settlement.reconciliation import (
    ReconSettings,
    decide,
    reconcile_again,
    reconcile_day,
    reopen,
)
from gateway.settings import Settings
from merchant_portal.filters import PagedDateRange
from merchant_portal.identity import step_up_required
from merchant_portal.views import PAGE_SIZE, database, signed_in_manager, staff_session

bp = Blueprint("settlement", __name__)

LINE_IDS = re.compile(r"[\s,;]+")
ACTION_WORDS = {
    "link": _l("Linked by hand"),
    "accept_difference": _l("Difference accepted"),
    "write_off": _l("Written off"),
}


def _settings() -> ReconSettings:
    settings: Settings = current_app.extensions["kassa.settings"]
    return ReconSettings.from_settings(settings.reconciliation)


def _day(text: str) -> date:
    try:
        return input_guard.calendar_date(text, "Day")
    except InvalidInput:
        raise NotFound(f"“{text}” is not a day like 2024-05-31") from None


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    staff = signed_in_manager()
    merchant = staff_session.merchant_of(staff)
    context |= {"tone": reads.outcome_tone, "action_words": ACTION_WORDS}
    return render_template(template, staff=staff, merchant=merchant, **context), status


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _month(text: str) -> tuple[date, str | None]:
    today = utcnow().date().replace(day=1)
    if not text:
        return today, None
    try:
        return input_guard.calendar_month(text, "Month"), None
    except InvalidInput as exc:
        return today, f"{exc.message}; showing this month."


@bp.get("/settlement")
def settlement_calendar() -> Any:
    """The month's days: expected against settled per currency, and each day's status."""
    first, error = _month(request.args.get("month", ""))
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    with database().unit_of_work(readonly=True) as uow:
        summaries = reads.day_summaries(uow, signed_in_manager().merchant_id, first, last)
        today = utcnow().date()
        # Newest first, and no day that has not happened yet (it cannot have been run).
        days = [first + timedelta(days=n) for n in range(last.day)]
        days = [day for day in days if day <= today][::-1]
        return _page(
            "portal/recon_calendar.html",
            month=first,
            previous=(first - timedelta(days=1)).strftime("%Y-%m"),
            following=(last + timedelta(days=1)).strftime("%Y-%m"),
            days=days,
            summaries=summaries,
            runs=reads.last_runs(uow, signed_in_manager().merchant_id, first, last),
            today=today,
            error=error,
            status=422 if error else 200,
        )


@bp.post("/settlement/<day>/run")
def settlement_run(day: str) -> Redirect:
    """Reconcile one day now (re-running it replaces its verdicts; decisions stay)."""
    when = _day(day)
    staff = signed_in_manager()
    with database().unit_of_work() as uow:
        run = reconcile_day(uow, staff.merchant_id, when, _settings(), actor=staff.actor)
        counts = dict(run.counts)
        uow.commit()
    flash(_("Reconciled %(day)s: %(counts)s.", day=when, counts=_counted(counts)), "ok")
    if request.form.get("back") == "day":
        return redirect(url_for(".settlement_day", day=when.isoformat()), 303)
    return redirect(url_for(".settlement_calendar", month=when.strftime("%Y-%m")), 303)


def _counted(counts: dict[str, int]) -> str:
    if not counts:
        return _("nothing to reconcile")
    return ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in counts.items())


@bp.get("/settlement/<day>")
def settlement_day(day: str) -> Any:
    when = _day(day)
    merchant_id = signed_in_manager().merchant_id
    with database().unit_of_work(readonly=True) as uow:
        return _page(
            "portal/recon_day.html",
            day=when,
            results=reads.day_results(uow, merchant_id, when),
            summaries=reads.day_summaries(uow, merchant_id, when, when).get(when, []),
            run=(run := reads.last_runs(uow, merchant_id, when, when).get(when.isoformat())),
            flawed=reads.statements(uow, merchant_id, ids=run.flawed_statements if run else []),
        )


@bp.get("/settlement/files")
def settlement_files() -> Any:
    """The bank's files imported for the merchant's accounts, with the flaws found in each."""
    with database().unit_of_work(readonly=True) as uow:
        return _page(
            "portal/recon_files.html", files=reads.files(uow, signed_in_manager().merchant_id)
        )


@bp.get("/settlement/files/<int:file_id>")
def settlement_file(file_id: int) -> Any:
    """One imported file: each statement with its booked sums, balances and flaws."""
    with database().unit_of_work(readonly=True) as uow:
        views = reads.file_statements(uow, signed_in_manager().merchant_id, file_id)
        return _page("portal/recon_file.html", file=views[0].file, statements=views)


@bp.get("/settlement/<day>.csv")
def settlement_day_csv(day: str) -> Response:
    when = _day(day)
    with database().unit_of_work(readonly=True) as uow:
        text = reads.to_csv(reads.day_results(uow, signed_in_manager().merchant_id, when))
    staff_session.record_download("settlement_day", day=when.isoformat())
    return _csv(text, f"settlement-{when.isoformat()}.csv")


@dataclass
class QueueQuery(PagedDateRange):
    """The exception queue's filters as typed in the URL, checked, with errors in words."""

    outcome: str = ""
    currency: str = ""

    @classmethod
    def parse(cls, args: MultiDict[str, str]) -> QueueQuery:
        query = cls()
        outcome = args.get("outcome", "")
        if outcome and outcome not in reads.EXCEPTION_OUTCOMES:
            query.errors.append(f"“{outcome}” is not an exception outcome.")
        else:
            query.outcome = outcome
        currency = args.get("currency", "").strip().upper()
        if currency and not re.fullmatch(r"[A-Z]{3}", currency):
            query.errors.append(f"“{currency}” is not a currency code like EUR.")
        else:
            query.currency = currency
        query.read_range_and_page(args)
        return query

    def to_filter(self, *, paged: bool = True) -> reads.QueueFilter:
        return reads.QueueFilter(
            self.outcome,
            self.date_from,
            self.date_to,
            self.currency,
            limit=PAGE_SIZE if paged else None,
            offset=(self.page - 1) * PAGE_SIZE if paged else 0,
        )

    def url_args(self, **changes: Any) -> dict[str, Any]:
        args = {
            "outcome": self.outcome,
            "from": self.date_from,
            "to": self.date_to,
            "currency": self.currency,
            "page": self.page,
        } | changes
        return {k: v for k, v in args.items() if v and not (k == "page" and v == 1)}


@bp.get("/settlement/exceptions")
def settlement_exceptions() -> Any:
    query = QueueQuery.parse(request.args)
    with database().unit_of_work(readonly=True) as uow:
        rows, total = (
            ([], 0)
            if query.errors
            else reads.exceptions(uow, signed_in_manager().merchant_id, query.to_filter())
        )
        return _page(
            "portal/recon_exceptions.html",
            query.http_status,
            results=rows,
            total=total,
            query=query,
            outcomes=reads.EXCEPTION_OUTCOMES,
            page_size=PAGE_SIZE,
        )


@bp.get("/settlement/exceptions.csv")
def settlement_exceptions_csv() -> Response:
    query = QueueQuery.parse(request.args)
    if query.errors:
        raise InvalidInput(" ".join(query.errors))
    with database().unit_of_work(readonly=True) as uow:
        rows, _total = reads.exceptions(
            uow, signed_in_manager().merchant_id, query.to_filter(paged=False)
        )
        text = reads.to_csv(rows)
    staff_session.record_download("settlement_exceptions", **query.url_args(page=1))
    return _csv(text, f"settlement-exceptions-{utcnow().date().isoformat()}.csv")


def _subject(subject: str) -> str:
    if subject not in reads.SUBJECTS:
        raise NotFound(f"“{subject}” is not a payment, refund or line")
    return subject


@bp.get("/settlement/results/<subject>/<subject_id>")
def settlement_result(subject: str, subject_id: str) -> Any:
    return _result_page(_subject(subject), subject_id)


def _result_page(
    subject: str, subject_id: str, error: str | None = None, form: dict[str, str] | None = None
) -> Any:
    with database().unit_of_work(readonly=True) as uow:
        ev = reads.evidence(uow, signed_in_manager().merchant_id, subject, subject_id)
        return _page(
            "portal/recon_result.html",
            422 if error else 200,
            ev=ev,
            r=ev.result,
            error=error,
            form=form or {},
        )


@bp.post("/settlement/results/<subject>/<subject_id>/decide")
@step_up_required
def settlement_decide(subject: str, subject_id: str) -> Any:
    """Record a manager's decision with its note, then re-run the days it touches."""
    staff, form = signed_in_manager(), request.form
    action, note, other = form.get("action", ""), form.get("note", ""), form.get("other", "")
    try:
        with database().unit_of_work() as uow:
            result = reads.result_of(uow, staff.merchant_id, _subject(subject), subject_id)
            named, lines = _parties(uow, staff.merchant_id, result, action, other)
            decide(
                uow,
                staff.merchant_id,
                action=action,
                subject_id=named,
                line_ids=lines,
                note=note,
                actor=staff.actor,
            )
            days = reconcile_again(
                uow, staff.merchant_id, _settings(), staff.actor, [subject_id, named or "", *lines]
            )
            uow.commit()
    except (InvalidInput, NotFound) as exc:
        return _result_page(subject, subject_id, exc.message, {"note": note, "other": other})
    done = ACTION_WORDS.get(action, action)
    flash(_("%(done)s; reconciled %(days)s again.", done=done, days=", ".join(days)), "ok")
    return redirect(url_for(".settlement_result", subject=subject, subject_id=subject_id), 303)


@bp.post("/settlement/results/<subject>/<subject_id>/reopen/<int:decision_id>")
def settlement_reopen(subject: str, subject_id: str, decision_id: int) -> Redirect:
    """Revoke a decision (it stays on record) and re-run the days it touched."""
    staff = signed_in_manager()
    with database().unit_of_work() as uow:
        reads.result_of(uow, staff.merchant_id, _subject(subject), subject_id)
        decision = reopen(uow, staff.merchant_id, decision_id, staff.actor)
        named = [decision.subject_id or "", *(str(i) for i in decision.line_ids or [])]
        days = reconcile_again(
            uow, staff.merchant_id, _settings(), staff.actor, [subject_id, *named]
        )
        uow.commit()
    flash(_("Decision reopened; reconciled %(days)s again.", days=", ".join(days)), "ok")
    return redirect(url_for(".settlement_result", subject=subject, subject_id=subject_id), 303)


def _parties(
    uow: UnitOfWork, merchant_id: int, result: ReconResult, action: str, other: str
) -> tuple[str | None, list[str]]:
    """Who a decision names: (payment or refund id, bank line ids), from the form's words."""
    typed = [t for t in LINE_IDS.split(other.strip()) if t]
    linked = [str(i) for i in result.linked or []]
    if result.subject == "line":
        if len(typed) > 1:
            raise InvalidInput("name one payment or refund id to link this line with")
        named = typed[0] if typed else None
        if action == "accept_difference" and named is None and len(linked) == 1:
            named = linked[0]
        if named is not None and not _known_subject(uow, merchant_id, named):
            raise InvalidInput(f"no payment or refund {named} of this merchant")
        return (None if action == "write_off" else named), [result.subject_id]
    if action == "write_off":
        return result.subject_id, []
    if action == "accept_difference" and not typed:
        typed = linked
    for line_id in typed:
        if not _known_line(uow, merchant_id, line_id):
            raise InvalidInput(
                f"no bank line {line_id} in this merchant's reconciled days; "
                "give the line ids shown on the day's page"
            )
    return result.subject_id, typed


def _known_subject(uow: UnitOfWork, merchant_id: int, subject_id: str) -> bool:
    return bool(
        reads.payments_of(uow, merchant_id, [subject_id])
        or reads.refunds_of(uow, merchant_id, [subject_id])
    )


def _known_line(uow: UnitOfWork, merchant_id: int, line_id: str) -> bool:
    try:
        reads.result_of(uow, merchant_id, "line", line_id)
    except NotFound:
        return False
    return True
