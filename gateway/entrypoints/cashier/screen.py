"""`/cashier`: the cashier screen at a till — sign in, choose the till, take a QR payment.

The payment screen follows the payment by polling ``/payments/<id>/status`` once a second, so
any number of web workers can serve it; a card payment's screen also listens to its live
stream (:mod:`gateway.entrypoints.cashier.live`) and polls only while that is not connected.
Creating a payment is idempotent per rendered form: a double tap or a resubmitted form replays
the first payment instead of charging twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as Redirect

from gateway.adapters import i18n
from gateway.adapters.db import UnitOfWork
from gateway.adapters.i18n import gettext as _
from gateway.adapters.models import Payment, utcnow
from gateway.adapters.promotion_models import Sale
from gateway.domain.money import Money, currency
from gateway.entrypoints import receipts as receipt_pages
from gateway.entrypoints import staff_session, terminal_texts
from gateway.entrypoints.api.payments import limits_for, payment_out, qr_response
from gateway.entrypoints.staff_session import MerchantSummary, current_staff, database
from gateway.errors import (
    ApprovalRefused,
    ApprovalRequired,
    Conflict,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    InvalidInput,
    InvalidMoney,
    NotFound,
    Unauthorised,
)
from gateway.services import idempotency, receipts
from gateway.services.devices import cards
from gateway.services.payments import payment_reads, qr_payments, refunds, till_actions
from gateway.services.promotions import sales
from gateway.services.staff import approvals, stores
from gateway.services.staff.auth import StaffContext, TillContext, till_for_staff, tills_for_staff

bp = Blueprint("cashier", __name__, url_prefix="/cashier", template_folder="../templates")
staff_session.install(bp, "cashier/error.html")

TILL_KEY = "till_id"
MAX_LINES = 30


def signed_in_staff() -> StaffContext:
    staff = current_staff()
    if staff is None:  # the access guard ran first; this is for the type checker
        raise Unauthorised("sign in first")
    return staff


def approval_grant() -> approvals.Grant:
    """The supervisor's name and PIN typed into the approval dialog (empty: none yet)."""
    if request.method != "POST":
        return approvals.Grant()
    return approvals.Grant(
        username=request.form.get("approver", "").strip()[:64],
        code=request.form.get("approver_code", "")[:64],
    )


def approval_page(exc: ApprovalRequired | ApprovalRefused, back_url: str) -> tuple[str, int]:
    """The approval dialog: what needs approving, and the form posted again with the
    supervisor's name and PIN (everything the cashier typed is carried along)."""
    staff = signed_in_staff()
    merchant = staff_session.merchant_of(staff)
    refused = isinstance(exc, ApprovalRefused)
    if isinstance(exc, ApprovalRefused):
        staff_session.count_wrong_approval(exc)
    amount = ""
    if exc.extra.get("amount") and exc.extra.get("currency"):
        money = Money.parse(str(exc.extra["amount"]), str(exc.extra["currency"]))
        amount = money.format(i18n.current_locale())
    skip = {"csrf_token", "approver", "approver_code"}
    return render_template(
        "cashier/approval.html",
        merchant=merchant,
        staff=staff,
        action=exc.extra.get("action", ""),
        message=str(exc.extra.get("needed", "")) + " needs a supervisor's approval"
        if refused
        else exc.message,
        refused=exc.message if refused else None,
        amount=amount,
        approver=request.form.get("approver", "") if refused else "",
        action_url=request.path,
        back_url=back_url,
        carried=[(k, v) for k, vs in request.form.lists() if k not in skip for v in vs],
    ), 403


def chosen_till(staff: StaffContext) -> TillContext | None:
    till_id = session.get(TILL_KEY)
    if not isinstance(till_id, int):
        return None
    with database().unit_of_work(readonly=True) as uow:
        try:
            return till_for_staff(uow, staff, till_id)
        except Unauthorised:
            session.pop(TILL_KEY, None)
            return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    page = staff_session.login_page("cashier/login.html")
    return page or redirect(url_for(".index"), 303)


@bp.post("/logout")
def logout() -> Redirect:
    staff_session.log_out()
    return redirect(url_for(".login"), 303)


@bp.route("/till", methods=["GET", "POST"])
def choose_till() -> Any:
    staff = signed_in_staff()
    with database().unit_of_work(readonly=True) as uow:
        tills = tills_for_staff(uow, staff)
        names = stores.store_names(uow, (t.store_id for t in tills))
    if request.method == "POST":
        chosen = request.form.get("till_id", type=int)
        if chosen in {t.till_id for t in tills}:
            session[TILL_KEY] = chosen
            return redirect(url_for(".index"), 303)
    elif len(tills) == 1:
        session[TILL_KEY] = tills[0].till_id
        return redirect(url_for(".index"), 303)
    return render_template(
        "cashier/till.html",
        tills=tills,
        stores=names,
        merchant=staff_session.merchant_of(staff),
        staff=staff,
    )


@bp.get("/")
def index() -> Any:
    staff = signed_in_staff()
    till = chosen_till(staff)
    if till is None:
        return redirect(url_for(".choose_till"))
    return _sale_form(staff, till)


def _sale_form(
    staff: StaffContext, till: TillContext, *, error: str | None = None, new_key: bool = True
) -> tuple[str, int]:
    """The new-sale form; after an error it keeps what was typed (and its key, unless spent)."""
    merchant = staff_session.merchant_of(staff)
    form = request.form if request.method == "POST" else MultiDict()
    key = None if new_key else form.get("idempotency_key")
    lines = list(zip(form.getlist("line_description"), form.getlist("line_amount"), strict=False))
    lines += [("", "")] * max(0, 3 - len(lines))
    with database().unit_of_work(readonly=True) as uow:
        store = stores.store_names(uow, [till.store_id]).get(till.store_id, "")
    return render_template(
        "cashier/new_sale.html",
        merchant=merchant,
        staff=staff,
        till=till,
        store=store,
        form=form,
        lines=lines,
        itemised=any(d.strip() or a.strip() for d, a in lines),
        error=error,
        idempotency_key=key or str(uuid.uuid4()),
        number=_number_format(merchant),
    ), 422 if error else 200


def _number_format(merchant: MerchantSummary) -> dict[str, str | int]:
    """How the page's language writes an amount, for the running total in the browser."""
    exponent = currency(merchant.currency).exponent
    sample = Money(1234567 * 10**exponent, merchant.currency).format(i18n.current_locale())
    digits = [i for i, ch in enumerate(sample) if ch.isdigit()]
    number = sample[digits[0] : digits[-1] + 1]
    return {
        "prefix": sample[: digits[0]],
        "suffix": sample[digits[-1] + 1 :],
        "group": number[1] if not number[1].isdigit() else "",
        "decimal": number[-exponent - 1] if exponent else "",
        "exponent": exponent,
        "currency": merchant.currency,
        "zero": Money(0, merchant.currency).format(i18n.current_locale()),
        "placeholder": "0" + (number[-exponent - 1] + "0" * exponent if exponent else ""),
    }


@bp.post("/payments")
def create_payment() -> Any:
    staff = signed_in_staff()
    till = chosen_till(staff)
    if till is None:
        return redirect(url_for(".choose_till"), 303)
    merchant = staff_session.merchant_of(staff)
    try:
        total = sale_total(request.form, merchant.currency)
        method = "card" if request.form.get("method") == "card" else "qr"
        payment_id = _create_once(
            staff, till, total, request.form.get("reference", "").strip(), method
        )
    except IdempotencyKeyReused:
        message = _(
            "This sale form was already used for another payment. The form is fresh "
            "now: check the amount and press “Show QR code” again."
        )
        return _sale_form(staff, till, error=message, new_key=True)
    except IdempotencyRequestInProgress:
        message = _("This sale is still being created. Wait a moment, then try again.")
        return _sale_form(staff, till, error=message, new_key=False)
    except (InvalidInput, Conflict) as exc:
        return _sale_form(staff, till, error=exc.message, new_key=False)
    except (ApprovalRequired, ApprovalRefused) as exc:
        return approval_page(exc, url_for(".index"))
    return redirect(url_for(".payment_screen", payment_id=payment_id), 303)


def _create_once(
    staff: StaffContext, till: TillContext, total: Money, reference: str, method: str = "qr"
) -> str:
    settings: qr_payments.PaymentSettings = current_app.extensions["kassa.payment_settings"]

    def action(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        if method == "card":
            card = cards.create_card_payment(
                uow,
                till,
                money=total,
                bill_number=reference or None,
                actor=staff.actor,
                currencies=settings.currencies,
            )
            uow.session.flush()
            _approve_large(uow, staff, till, card)
            return 201, {"id": card.id}
        payment = qr_payments.create_qr_payment(
            uow,
            till,
            money=total,
            settings=settings,
            bill_number=reference or None,
            actor=staff.actor,
        )
        uow.session.flush()
        _approve_large(uow, staff, till, payment)
        return 201, {"id": payment.id}

    request_body = {
        "till": till.till_id,
        "amount_minor": total.minor,
        "currency": total.currency,
        "reference": reference,
        "method": method,
    }
    key = idempotency.check_key(request.form.get("idempotency_key", ""))
    fingerprint = idempotency.request_hash("POST", request.path, request_body)
    outcome = idempotency.run_once(database(), f"staff:{staff.user_id}", key, fingerprint, action)
    return str(outcome.body["id"])


def _approve_large(
    uow: UnitOfWork, staff: StaffContext, till: TillContext, payment: Payment
) -> None:
    till_actions.approve_large_payment(
        uow,
        payment,
        actor=staff.actor,
        limit=limits_for(uow, staff.merchant_id),
        grant=approval_grant(),
        till=till,
        address=request.remote_addr,
    )


def sale_total(form: MultiDict[str, str], currency_code: str) -> Money:
    """The amount to charge: the amount field, or the sum of the itemised lines (exactly).

    If both are filled in they must agree, so a stale total is never charged.
    """
    typed = form.get("amount", "").strip()
    rows = zip(form.getlist("line_description"), form.getlist("line_amount"), strict=False)
    lines = [(d.strip(), a.strip()) for d, a in rows if d.strip() or a.strip()]
    if len(lines) > MAX_LINES:
        raise InvalidMoney(f"A sale can have at most {MAX_LINES} lines.")
    if not lines:
        if not typed:
            raise InvalidMoney("Enter the amount to charge.")
        total = parse_amount(typed, currency_code, "The amount")
    else:
        total = Money.zero(currency_code)
        for n, (description, text) in enumerate(lines, 1):
            name = f"Line {n}" + (f" ({description})" if description else "")
            if not text:
                raise InvalidMoney(f"{name} has no amount. Enter one or clear the line.")
            total += parse_amount(text, currency_code, name)
        if typed and parse_amount(typed, currency_code, "The amount") != total:
            raise InvalidMoney(
                f"The lines add up to {total.to_decimal_string()} {total.currency} but the "
                f"amount says {typed}. Clear the amount or correct the lines."
            )
    if total.minor <= 0:
        raise InvalidMoney("The amount to charge must be greater than zero.")
    return total


def parse_amount(text: str, currency_code: str, what: str) -> Money:
    """Parse what a cashier types: "12.50" or "12,50" (no thousands separators)."""
    exponent = currency(currency_code).exponent
    example = "1250" if exponent == 0 else "12.50 or 12,50"
    cleaned = text.replace(" ", "").replace("\u00a0", "")
    if cleaned.count(",") + cleaned.count(".") > 1:
        raise InvalidMoney(
            f"{what} “{text}” is not an amount: type it without thousands "
            f"separators, like {example}."
        )
    try:
        return Money.parse(cleaned.replace(",", "."), currency_code)
    except InvalidMoney:
        places = "no decimals" if exponent == 0 else f"at most {exponent} decimals"
        raise InvalidMoney(
            f"{what} “{text}” is not an amount in {currency_code}: use digits with "
            f"{places}, like {example}."
        ) from None


@bp.get("/payments/<payment_id>")
def payment_screen(payment_id: str) -> Any:
    staff = signed_in_staff()
    merchant = staff_session.merchant_of(staff)
    receipt = None
    with database().unit_of_work() as uow:
        payment = payment_reads.get_payment(uow, payment_id, staff.scope)
        if payment.status in receipts.RECEIPT_STATES:  # a link for the customer to scan
            receipt = _receipt_link(uow, payment.id, staff)
            uow.commit()
    with database().unit_of_work(readonly=True) as uow:
        payment = payment_reads.get_payment(uow, payment_id, staff.scope)
        sale = sales.get_sale(uow, payment.sale_id, staff.scope) if payment.sale_id else None
        state = payment_state(uow, payment, i18n.current_locale())
        return render_template(
            "cashier/payment.html",
            payment=payment,
            sale=sale,
            merchant=merchant,
            staff=staff,
            screen=screen_of(payment),
            seconds_left=seconds_left(payment),
            amount=state["amount_text"],
            refunded=state["refunded_text"],
            refunding=state["refunding_text"],
            refunding_minor=state["refunds_open"],
            following=state["following"],
            receipt=receipt,
            issue_receipt_url=url_for(".issue_receipt", payment_id=payment.id),
            live_updates=current_app.extensions["kassa.settings"].web.event_stream_seconds > 0,
            terminal_text=state["display_text"],
        )


@bp.post("/payments/<payment_id>/receipt")
def issue_receipt(payment_id: str) -> Response:
    """A new e-receipt link for a paid payment (the screen asks once it turns paid)."""
    staff = signed_in_staff()
    with database().unit_of_work() as uow:
        link = _receipt_link(uow, payment_id, staff)
        uow.commit()
    response = jsonify(link)
    response.headers["Cache-Control"] = "no-store"
    return response


def _receipt_link(uow: UnitOfWork, payment_id: str, staff: StaffContext) -> dict[str, str]:
    days = current_app.extensions["kassa.settings"].receipts.link_days
    issued = receipts.issue_link(uow, payment_id, staff.scope, days=days, actor=staff.actor)
    url = receipt_pages.link_for(issued.token)
    return {"url": url, "qr_data_uri": receipt_pages.qr_data_uri(url)}


@bp.get("/payments/<payment_id>/status")
def payment_status(payment_id: str) -> Response:
    staff = signed_in_staff()
    with database().unit_of_work(readonly=True) as uow:
        payment = payment_reads.get_payment(uow, payment_id, staff.scope)
        out = payment_out(payment)
        out.update(payment_state(uow, payment, i18n.current_locale()))
    response = jsonify(out)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/payments/<payment_id>/qr.<fmt>")
def payment_qr(payment_id: str, fmt: str) -> Response:
    staff = signed_in_staff()
    if fmt not in ("png", "svg"):
        raise NotFound(f"no QR image format {fmt!r}: use png or svg")
    with database().unit_of_work(readonly=True) as uow:
        payload = payment_reads.qr_payload(uow, payment_id, staff.scope)
    if payload is None:
        raise NotFound("this payment has no QR code")
    return qr_response(payload, fmt)


@bp.post("/payments/<payment_id>/cancel")
def cancel_payment(payment_id: str) -> Any:
    staff = signed_in_staff()
    till = chosen_till(staff)
    with database().unit_of_work() as uow:
        try:
            payment = till_actions.cancel(
                uow,
                payment_id,
                staff.scope,
                actor=staff.actor,
                limit=limits_for(uow, staff.merchant_id),
                grant=approval_grant(),
                till=till,
                address=request.remote_addr,
            )
            uow.commit()
            if payment.method == "card" and payment.status != "cancelled":
                sent = _("Reversal sent to the terminal; the payment shows CANCELLED once done.")
                flash(sent, "progress")
        except Conflict as exc:
            flash(_("Could not cancel: %(why)s.", why=exc.message), "error")
        except (ApprovalRequired, ApprovalRefused) as exc:
            return approval_page(exc, url_for(".payment_screen", payment_id=payment_id))
    return redirect(url_for(".payment_screen", payment_id=payment_id), 303)


def payment_state(uow: UnitOfWork, payment: Payment, locale: str) -> dict[str, Any]:
    """What the payment screen follows (the status poll's and the live stream's fields): the
    payment's screen, and after it is paid its refunds and the sale's lucky draws, so those
    show without a reload. Amounts come formatted in the page's language; the sentences
    around them are the page's own (translated when it was rendered)."""
    screen = screen_of(payment)
    refunds_open = refunds.open_refunds(uow, payment.id)
    draws: list[dict[str, Any]] = []
    if payment.sale_id is not None:
        sale = uow.session.get(Sale, payment.sale_id)
        if sale is not None:
            draws = [
                {"outcome": d.get("outcome"), "prize": d.get("prize")}
                for d in sale.request.get("draws", [])
            ]
    open_ = screen in ("open", "terminal", "unknown")
    return {
        "id": payment.id,
        "status": payment.status,
        "method": payment.method,
        "screen": screen,
        "seconds_left": seconds_left(payment),
        "open": open_,
        # the stream and the poll go on while a refund is on its way
        "following": open_ or bool(refunds_open),
        "display_text": terminal_texts.in_language(payment.display_text, locale),
        "receipt_text": payment.receipt_text,
        "amount_text": Money(payment.amount_minor, payment.currency).format(locale),
        "refunded_text": Money(payment.refunded_minor, payment.currency).format(locale),
        "refunding_text": Money(sum(r.amount_minor for r in refunds_open), payment.currency).format(
            locale
        ),
        "refunds_open": len(refunds_open),
        "refunds": [
            {
                "id": r.id,
                "status": r.status,
                "failure": terminal_texts.in_language(r.failure, locale),
            }
            for r in refunds.list_refunds(uow, payment.id)
        ],
        "draws": draws,
    }


def screen_of(payment: Payment) -> str:
    """The full-screen state to show; an open QR past its expiry is shown as expired."""
    if payment.status == "partially_refunded":
        return "partially_refunded"  # part of it went back: not the "refunded" screen
    if payment.method == "card":
        if payment.status == "authorised":
            return "paid"  # approved at the terminal
        if payment.status in ("created", "pending"):
            return "terminal"
        if payment.status == "unknown":
            return "unknown"  # Kassa asks the terminal; the screen follows it
    screen = staff_session.status_tone(payment.status)
    if screen == "open" and seconds_left(payment) == 0:
        return "expired"
    return screen


def seconds_left(payment: Payment, now: datetime | None = None) -> int:
    if payment.expires_at is None:
        return 0
    return max(0, int((payment.expires_at - (now or utcnow())).total_seconds()))
