"""Card payments at the till's terminal: created here, carried out by the device host.

The web tier never touches a serial port: it creates the payment and queues a job on the till's
device queue; the device host (the one process that owns the till's ports) runs it against the
terminal and writes the outcome back. One card payment at a time per terminal.

Crash safety: before the terminal is asked to charge, the attempt is committed on the payment.
If the device host dies mid-authorisation, its successor finds the attempt and never charges
again: the payment's outcome is unknown until the terminal's own records settle it
(:mod:`gateway.services.devices.outcomes`), so it is never charged twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import (
    DeviceStatus,
    Job,
    Merchant,
    Payment,
    Refund,
    Store,
    Till,
    utcnow,
)
from gateway.domain.card_data import scrub_card_numbers
from gateway.domain.money import Money
from gateway.domain.payment import PaymentMethod, PaymentStatus, RefundStatus
from gateway.domain.sentences import N_, say
from gateway.errors import Conflict, CurrencyNotAccepted, InvalidInput
from gateway.services import jobs
from gateway.services.payments.currencies import check_accepted
from gateway.services.payments.lifecycle import (
    clear_attention,
    flag_attention,
    move_payment,
    move_refund,
    new_payment,
    record_event,
    void_by_refund,
)
from gateway.services.staff.auth import TillContext
from gateway.settings import AcceptedCurrencies

CHARGE_JOB = "card_charge"
REFUND_JOB = "card_refund"
REVERSE_JOB = "card_reverse"
END_OF_DAY_JOB = "card_end_of_day"
# Run by any worker (not the device host): a card payment still pending when no device host has
# taken it, or long after its attempt began, becomes "outcome unknown" and frees the till.
WATCH_JOB = "card_watch"
# Likewise for a card refund or reversal: one the terminal could not be sent in time fails (no
# money went back), one sent without an answer becomes "outcome unknown"
# (gateway.services.devices.refund_outcomes).
REFUND_WATCH_JOB = "card_refund_watch"
# A card refund or reversal the terminal cannot take yet is tried again for weeks (the backoff
# tops out at an hour), with a note for the manager and the cashier meanwhile.
RETRY_ATTEMPTS = 1000

# What the cashier and the manager read, stored in English and shown in their language
# (gateway.domain.sentences): a payment's terminal text, a refund's failure, attention reasons.
SENDING = N_("Sending to the terminal…")
APPROVED = N_("Approved")
NOT_REACHED = N_(
    "Not charged: the terminal did not answer. Check that it is on and connected, then start "
    "the payment again."
)
WRONG_CURRENCY = N_("Not sent: the terminal takes %(terminal)s only, not %(asked)s")
REFUND_RECOVERED = N_("Refunded (recovered)")
REVERSAL_RECOVERED = N_("Reversed (recovered)")
REFUND_NOT_FOUND = N_("Not refunded: the terminal has no record of this refund. Start it again.")
BATCH_CLOSED = N_("the terminal's batch was closed before the reversal; refund it now")
CANCEL_OVERTAKEN = N_(
    "cancel not carried out: the terminal's batch was closed before it was sent, so the payment "
    "was captured; refund it to give the money back"
)
REVERSAL_REFUSED = N_("the terminal refused the reversal: %(message)s")
APPROVED_OTHER_AMOUNT = N_("the terminal approved %(approved)s, not %(asked)s")
REFUND_WAITS = N_(
    "card refund %(refund)s of %(amount)s waits for the terminal, which does not answer: Kassa "
    "tries again until it does, and never gives the money back twice"
)
REVERSAL_WAITS = N_(
    "card reversal waits for the terminal, which does not answer: Kassa tries again until it "
    "does, and never gives the money back twice"
)
# How far the terminal's clock may be behind ours when matching a recovered receipt.
CLOCK_SKEW = timedelta(minutes=5)


def device_queue(till_id: int) -> str:
    return f"device:{till_id}"


@dataclass(frozen=True, slots=True)
class TerminalOutcome:
    """What the terminal reported, in Kassa's words (built from a driver's result)."""

    approved: bool
    result_code: int
    message: str
    amount_minor: int | None = None
    receipt_number: int | None = None
    trace_number: int | None = None
    terminal_id: str | None = None
    card_name: str | None = None
    masked_pan: str | None = None
    aid: str | None = None
    timestamp: datetime | None = None
    receipt_text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def card_fields(self) -> dict[str, Any]:
        return {
            "result_code": self.result_code,
            "message": scrub_card_numbers(self.message),
            "receipt_number": self.receipt_number,
            "trace_number": self.trace_number,
            "terminal_id": self.terminal_id,
            "card_name": self.card_name,
            "masked_pan": self.masked_pan,
            "aid": self.aid,
            "terminal_time": self.timestamp.isoformat() if self.timestamp else None,
            **(
                {"error": scrub_card_numbers(str(self.extra["error"]))}
                if "error" in self.extra
                else {}
            ),
        }


def create_card_payment(
    uow: UnitOfWork,
    till: TillContext,
    *,
    money: Money,
    bill_number: str | None = None,
    actor: str | None = None,
    currencies: AcceptedCurrencies | None = None,
) -> Payment:
    """A card payment for the till's terminal; refused while the terminal is busy, or in a
    currency the merchant (``currencies``) or the terminal does not take (before any byte
    reaches it)."""
    check_accepted(uow, till, money, currencies or AcceptedCurrencies())
    takes = terminal_currency(uow, till.till_id)
    if money.currency != takes:
        raise CurrencyNotAccepted(
            f"the card terminal at till {till.label} takes {takes} only, and this payment is in "
            f"{money.currency}: take it another way (QR code) or in {takes}",
            terminal_currency=takes,
        )
    uow.session.scalar(select(Till).where(Till.id == till.till_id).with_for_update())
    busy = uow.session.scalar(
        select(
            exists().where(
                Payment.till_id == till.till_id,
                Payment.method == PaymentMethod.CARD.value,
                Payment.status.in_((PaymentStatus.CREATED.value, PaymentStatus.PENDING.value)),
            )
        )
    )
    if busy:
        raise Conflict(
            f"the card terminal at till {till.label} is busy with another payment; "
            "finish or stop that one at the terminal first"
        )
    payment = new_payment(
        uow,
        till,
        money,
        PaymentMethod.CARD,
        reference="C" + uuid.uuid4().hex[:12].upper(),
        bill_number=bill_number,
        actor=actor,
        display_text=SENDING,
    )
    move_payment(uow, payment, PaymentStatus.PENDING, "sent_to_terminal", payment.created_by)
    jobs.enqueue(
        uow,
        CHARGE_JOB,
        {"payment_id": payment.id},
        queue=device_queue(till.till_id),
        dedupe_key=f"card-charge:{payment.id}",
        max_attempts=5,
    )
    jobs.enqueue(uow, WATCH_JOB, {"payment_id": payment.id}, dedupe_key=f"card-watch:{payment.id}")
    return payment


def terminal_currency(uow: UnitOfWork, till_id: int) -> str:
    """The currency the till's terminal takes: as its device host registered it, else the
    merchant's (the device host's default too)."""
    registered = uow.session.scalar(
        select(DeviceStatus.currency).where(
            DeviceStatus.till_id == till_id, DeviceStatus.kind == "card_terminal"
        )
    )
    if registered:
        return registered
    return uow.session.scalars(
        select(Merchant.default_currency)
        .join(Store, Store.merchant_id == Merchant.id)
        .join(Till, Till.store_id == Store.id)
        .where(Till.id == till_id)
    ).one()


def begin_attempt(uow: UnitOfWork, payment_id: str) -> datetime | None:
    """Record that the terminal is about to be asked; the earlier attempt's start, if any.

    Refused (:class:`Conflict`) once the payment is no longer pending: a payment the watch
    gave up on (outcome unknown before any byte was sent) is never sent afterwards, so "no
    attempt recorded" proves the terminal never saw it.
    """
    payment = _locked(uow, payment_id)
    if payment.status != PaymentStatus.PENDING:
        raise Conflict(
            f"payment is {payment.status}: it is not sent to the terminal any more",
            current_status=payment.status,
        )
    card = dict(payment.card or {})
    earlier = card.get("attempt_started_at")
    card["attempt_started_at"] = utcnow().isoformat()
    card["attempts"] = int(card.get("attempts", 0)) + 1
    payment.card = card
    return datetime.fromisoformat(earlier) if earlier else None


def show(uow: UnitOfWork, payment_id: str, text: str) -> None:
    """The terminal's current message for the customer (shown live on the cashier screen)."""
    payment = uow.session.get(Payment, payment_id)
    if payment is not None:
        payment.display_text = scrub_card_numbers(text)[:120]


def apply_charge(uow: UnitOfWork, payment_id: str, outcome: TerminalOutcome, actor: str) -> None:
    """Approved → authorised; declined → failed. A repeat of the same outcome changes nothing."""
    payment = _locked(uow, payment_id)
    if payment.status != PaymentStatus.PENDING:
        return
    payment.card = {**(payment.card or {}), **outcome.card_fields()}
    payment.receipt_text = scrub_card_numbers(outcome.receipt_text) or payment.receipt_text
    payment.display_text = (
        APPROVED if outcome.approved else scrub_card_numbers(outcome.message)[:120]
    )
    detail = {k: v for k, v in outcome.card_fields().items() if v is not None}
    if outcome.approved:
        if outcome.amount_minor not in (None, payment.amount_minor):
            flag_attention(
                uow,
                payment,
                say(
                    APPROVED_OTHER_AMOUNT,
                    approved=Money(outcome.amount_minor, payment.currency),
                    asked=Money(payment.amount_minor, payment.currency),
                ),
                actor,
                detail,
            )
        move_payment(uow, payment, PaymentStatus.AUTHORISED, "card_approved", actor, detail)
    else:
        move_payment(uow, payment, PaymentStatus.FAILED, "card_declined", actor, detail)


def watch_refund(uow: UnitOfWork, refund_id: str) -> None:
    """Queue the watch of a card refund or reversal (run by any worker): it never stays
    ``requested`` for good, even with no device host or no terminal."""
    jobs.enqueue(
        uow, REFUND_WATCH_JOB, {"refund_id": refund_id}, dedupe_key=f"card-refund-watch:{refund_id}"
    )


def begin_refund_attempt(uow: UnitOfWork, refund_id: str) -> datetime | None:
    """Record that the terminal is about to be asked to refund; the earlier attempt's start.

    Refused (:class:`Conflict`) once the refund is no longer requested: one the watch gave up
    on before it was sent is never sent afterwards (so "no attempt" proves nothing went back).
    """
    refund = uow.session.scalar(select(Refund).where(Refund.id == refund_id).with_for_update())
    assert refund is not None
    if refund.status != RefundStatus.REQUESTED:
        raise Conflict(
            f"refund is {refund.status}: it is not sent to the terminal any more",
            current_status=refund.status,
        )
    earlier = refund.terminal_attempt_at
    refund.terminal_attempt_at = utcnow()
    return earlier


def recovered_refund(
    uow: UnitOfWork, refund_id: str, attempt_started: datetime, last: TerminalOutcome | None
) -> TerminalOutcome:
    """Decide from the terminal's last receipt whether an interrupted refund was carried out.

    Asking the terminal again could pay the customer twice, so, as for charges: it was if the
    last receipt is approved, for this amount, newer than the attempt and nobody else's.
    """
    refund = uow.session.get_one(Refund, refund_id)
    payment = uow.session.get_one(Payment, refund.payment_id)
    if last is not None and last.approved and last.amount_minor == refund.amount_minor:
        newer = last.timestamp is None or last.timestamp >= attempt_started - CLOCK_SKEW
        taken = receipt_taken(uow, payment.till_id, last, refund_id=refund.id)
        if newer and not taken:
            return TerminalOutcome(**{**_as_dict(last), "message": REFUND_RECOVERED})
    return TerminalOutcome(
        approved=False,
        result_code=-1,
        message=REFUND_NOT_FOUND,
    )


def not_booked_since(
    uow: UnitOfWork, till_id: int, attempt_started: datetime, last: TerminalOutcome | None
) -> bool:
    """Whether the terminal's last receipt proves it booked nothing since an attempt began: it
    has none, or its last one is older than the attempt, or one Kassa already knows. Then the
    interrupted refund never happened and may be sent again."""
    if last is None:
        return True
    if last.timestamp is not None and last.timestamp < attempt_started - CLOCK_SKEW:
        return True
    return receipt_taken(uow, till_id, last)


def begin_reversal_attempt(
    uow: UnitOfWork, payment_id: str, refund_id: str | None = None
) -> datetime | None:
    """Record that the terminal is about to be asked to reverse; the earlier attempt's start.

    With ``refund_id`` (the reversal carries out that refund), refused like
    :func:`begin_refund_attempt` once the refund is no longer requested.
    """
    payment = _locked(uow, payment_id)
    if refund_id is not None:
        begin_refund_attempt(uow, refund_id)
    card = dict(payment.card or {})
    earlier = card.get("reversal_started_at")
    card["reversal_started_at"] = utcnow().isoformat()
    payment.card = card
    return datetime.fromisoformat(earlier) if earlier else None


def recovered_reversal(
    uow: UnitOfWork, payment_id: str, attempt_started: datetime, last: TerminalOutcome | None
) -> TerminalOutcome | None:
    """The reversal an interrupted attempt carried out, as the terminal's last receipt shows
    it (approved, for the payment's amount, newer than the attempt, nobody else's: not even
    the payment's own charge); None if it does not show one. A terminal reverses a receipt
    only once, so asking it again is safe."""
    payment = uow.session.get_one(Payment, payment_id)
    if last is None or not last.approved or last.amount_minor != payment.amount_minor:
        return None
    newer = last.timestamp is None or last.timestamp >= attempt_started - CLOCK_SKEW
    if newer and not receipt_taken(uow, payment.till_id, last):
        return TerminalOutcome(**{**_as_dict(last), "message": REVERSAL_RECOVERED})
    return None


def refund_receipt_id(receipt_number: int | None) -> str | None:
    """How a card refund's terminal receipt is kept as the refund's bank id."""
    return f"receipt-{receipt_number}" if receipt_number else None


def waiting_reason(uow: UnitOfWork, refund_id: str | None) -> str:
    """What the payment's attention says while its refund or reversal waits for the terminal."""
    refund = uow.session.get(Refund, refund_id) if refund_id else None
    if refund is None:
        return REVERSAL_WAITS
    return say(
        REFUND_WAITS, refund=refund.id[:8], amount=Money(refund.amount_minor, refund.currency)
    )


def terminal_waited(
    uow: UnitOfWork, payment_id: str, refund_id: str | None, why: str, actor: str
) -> None:
    """A refund or reversal the terminal could not take now (it is tried again): flag it on
    its payment for the manager and the cashier, once."""
    payment = _locked(uow, payment_id)
    refund = uow.session.get(Refund, refund_id) if refund_id else None
    if refund is not None and refund.status != RefundStatus.REQUESTED:
        return
    detail = {
        "error": scrub_card_numbers(why)[:500],
        **({"refund_id": refund_id} if refund_id else {}),
    }
    flag_attention(uow, payment, waiting_reason(uow, refund_id), actor, detail)


def terminal_answered(uow: UnitOfWork, payment_id: str, refund_id: str | None, actor: str) -> None:
    """The refund or reversal has its answer: it no longer waits for the terminal."""
    payment = _locked(uow, payment_id)
    clear_attention(uow, payment, waiting_reason(uow, refund_id), actor)


def request_reversal(
    uow: UnitOfWork, payment: Payment, actor: str, *, refund_id: str | None = None
) -> None:
    """Cancel an approved card payment by reversing it at the terminal (ZVT 06 30); with
    ``refund_id``, the reversal carries out that refund of the whole payment."""
    if payment.status == PaymentStatus.PENDING:
        raise Conflict(
            "the customer is at the terminal: press Stop on the terminal to cancel this payment",
            current_status=payment.status,
        )
    if payment.status == PaymentStatus.UNKNOWN:
        raise Conflict(
            "the terminal has not confirmed whether this payment went through: Kassa asks it as "
            "soon as it answers, or a manager resolves it; reverse or refund it after that",
            current_status=payment.status,
        )
    if payment.status != PaymentStatus.AUTHORISED:
        raise Conflict(
            f"payment is {payment.status} and cannot be reversed at the terminal; refund it",
            current_status=payment.status,
        )
    # One reversal on its way at a time. A refund's reversal has a key of its own, so that after
    # it failed (never sent, or refused) the payment can be reversed again.
    key = f"card-reverse:{payment.id}" + (f":{refund_id}" if refund_id else "")
    if reversal_on_its_way(uow, payment.id):
        if refund_id is not None:
            raise Conflict(
                "this card payment is already being reversed at the terminal",
                current_status=payment.status,
            )
        return  # asked twice: the reversal is already on its way
    if uow.session.scalar(select(Job.id).where(Job.dedupe_key == key)) is not None:
        return  # a cancel asked before: its answer is in the payment's history
    record_event(uow, payment, "reversal_requested", actor)
    jobs.enqueue(
        uow,
        REVERSE_JOB,
        {"payment_id": payment.id, **({"refund_id": refund_id} if refund_id else {})},
        queue=device_queue(payment.till_id),
        dedupe_key=key,
        max_attempts=RETRY_ATTEMPTS,
    )


def reversal_on_its_way(uow: UnitOfWork, payment_id: str) -> bool:
    """Whether a reversal of the payment is queued or running and not given up: a plain one
    (a cancel), or one carrying out a refund that is still open."""
    queued = uow.session.scalars(
        select(Job).where(
            (Job.dedupe_key == f"card-reverse:{payment_id}")
            | Job.dedupe_key.like(f"card-reverse:{payment_id}:%"),
            Job.status.in_(("pending", "running")),
        )
    ).all()
    for job in queued:
        refund_id = (job.payload or {}).get("refund_id")
        refund = uow.session.get(Refund, refund_id) if refund_id else None
        if refund is None or refund.status == RefundStatus.REQUESTED:
            return True
    return False


def reversals_before_close(uow: UnitOfWork, till_id: int) -> list[dict[str, Any]]:
    """The payloads of the till's reversals an end of day carries out before it closes the
    batch: each plain cancel waiting (sent without an answer, or never sent: the cashier
    asked for the money back), and each refund's reversal sent without an answer (the
    terminal may have reversed the payment). A refund's reversal never sent is overtaken by
    the close, and its refund fails saying so (:data:`BATCH_CLOSED`)."""
    waiting = []
    for job in uow.session.scalars(
        select(Job)
        .where(
            Job.queue == device_queue(till_id),
            Job.kind == REVERSE_JOB,
            Job.status == "pending",
        )
        .order_by(Job.id)
    ):
        payment = uow.session.get(Payment, (job.payload or {}).get("payment_id"))
        if payment is None or payment.status != PaymentStatus.AUTHORISED:
            continue
        plain = not (job.payload or {}).get("refund_id")
        if plain or (payment.card or {}).get("reversal_started_at"):
            waiting.append(dict(job.payload or {}))
    return waiting


def reversal_job(uow: UnitOfWork, refund: Refund) -> Job | None:
    """The reversal job carrying out ``refund``, if it is done by a reversal."""
    for key in (
        f"card-reverse:{refund.payment_id}:{refund.id}",
        f"card-reverse:{refund.payment_id}",
    ):
        job = uow.session.scalar(select(Job).where(Job.dedupe_key == key))
        if job is not None and (job.payload or {}).get("refund_id") == refund.id:
            return job
    return None


def apply_reversal(
    uow: UnitOfWork,
    payment_id: str,
    outcome: TerminalOutcome | None,
    actor: str,
    *,
    refund_id: str | None = None,
) -> None:
    """The terminal's answer to a reversal (None: it was never asked, the batch had closed).

    A cashier's cancel the close overtook (asked while the end of day ran) is flagged for a
    manager: the payment was captured, and the money goes back only by a refund."""
    payment = _locked(uow, payment_id)
    refund = _locked_refund(uow, refund_id) if refund_id else None
    if refund is not None and refund.status != RefundStatus.REQUESTED:
        return
    if payment.status != PaymentStatus.AUTHORISED or outcome is None:
        if refund is not None:
            move_refund(
                uow, payment, refund, RefundStatus.FAILED, actor,
                failure=BATCH_CLOSED,
            )  # fmt: skip
        elif payment.status not in (PaymentStatus.AUTHORISED, PaymentStatus.CANCELLED):
            flag_attention(uow, payment, CANCEL_OVERTAKEN, actor, {"status": payment.status})
        return
    detail = {k: v for k, v in outcome.card_fields().items() if v is not None}
    if outcome.approved and refund is not None:
        refund.bank_refund_id = refund_receipt_id(outcome.receipt_number)
        void_by_refund(uow, payment, refund, actor, detail)
    elif outcome.approved:
        move_payment(uow, payment, PaymentStatus.CANCELLED, "card_reversed", actor, detail)
    else:
        record_event(uow, payment, "reversal_refused", actor, detail)
        if refund is not None:
            move_refund(uow, payment, refund, RefundStatus.FAILED, actor, failure=outcome.message)
        flag_attention(uow, payment, say(REVERSAL_REFUSED, message=outcome.message), actor, detail)


# A card payment in one of these the terminal booked (a cancelled one was booked, then reversed).
BOOKED_STATUSES = ("authorised", "paid", "settled", "partially_refunded", "refunded", "cancelled")


def receipt_taken(
    uow: UnitOfWork,
    till_id: int,
    last: TerminalOutcome,
    *,
    payment_id: str | None = None,
    refund_id: str | None = None,
) -> bool:
    """Whether the terminal's last receipt already belongs to another charge or refund."""
    if last.receipt_number is None:
        return False
    charges = uow.session.scalars(
        select(Payment.card).where(
            Payment.till_id == till_id,
            Payment.method == PaymentMethod.CARD.value,
            Payment.id != (payment_id or ""),
            Payment.status.in_(BOOKED_STATUSES),
        )
    )
    if any((card or {}).get("receipt_number") == last.receipt_number for card in charges):
        return True
    refunded = uow.session.scalar(
        select(Refund.id)
        .join(Payment, Payment.id == Refund.payment_id)
        .where(
            Payment.till_id == till_id,
            Refund.id != (refund_id or ""),
            Refund.bank_refund_id == refund_receipt_id(last.receipt_number),
        )
        .limit(1)
    )
    return refunded is not None


def _as_dict(outcome: TerminalOutcome) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in outcome.__dataclass_fields__}


def _locked_refund(uow: UnitOfWork, refund_id: str) -> Refund | None:
    return uow.session.scalar(select(Refund).where(Refund.id == refund_id).with_for_update())


def _locked(uow: UnitOfWork, payment_id: str) -> Payment:
    payment = uow.session.scalar(select(Payment).where(Payment.id == payment_id).with_for_update())
    if payment is None:
        raise InvalidInput(f"no payment {payment_id!r}")
    return payment
