"""The payment and refund state machines.

::

    created ─► pending ─► authorised ─► paid ─► settled
       │          │            │          │        │
       ▼          ▼            ▼          ▼        ▼
     failed    expired     cancelled   partially_refunded ─► refunded
     cancelled failed      failed
               cancelled   expired
                  │
                  ▼
               unknown ─► authorised, paid (the terminal booked it) or failed (it did not)

``unknown`` ("outcome unknown") is a card payment the terminal may or may not have booked: the
line broke or the terminal stopped answering mid-payment. It never takes the till's terminal
(the till is free for other work) and never becomes a second charge: Kassa resolves it from the
terminal's own records (its last receipt, the end-of-day totals), or a manager does by hand.

Only the transitions in ``TRANSITIONS`` are legal; everything else raises
:class:`IllegalTransition` naming the current state, so the API can answer 409 with it.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.errors import IllegalTransition


class PaymentStatus(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    AUTHORISED = "authorised"
    PAID = "paid"
    SETTLED = "settled"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    UNKNOWN = "unknown"


class PaymentMethod(StrEnum):
    QR = "qr"
    CARD = "card"


S = PaymentStatus
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.CREATED: frozenset({S.PENDING, S.FAILED, S.CANCELLED}),
    S.PENDING: frozenset({S.AUTHORISED, S.PAID, S.FAILED, S.EXPIRED, S.CANCELLED, S.UNKNOWN}),
    S.UNKNOWN: frozenset({S.AUTHORISED, S.PAID, S.FAILED}),
    S.AUTHORISED: frozenset({S.PAID, S.FAILED, S.EXPIRED, S.CANCELLED}),
    S.PAID: frozenset({S.SETTLED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.SETTLED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED, S.SETTLED}),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}

# Moves only a manager makes, with a note in the payment's history: the bank took the
# customer's money for a payment Kassa had given up on, and the manager accepts it as paid
# (gateway.services.payments.attention). Never made on the bank's word alone.
MANAGER_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.EXPIRED: frozenset({S.PAID}),
    S.CANCELLED: frozenset({S.PAID}),
    S.FAILED: frozenset({S.PAID}),
}

# States in which the customer can still pay and the cashier is waiting.
OPEN_STATES = frozenset({S.CREATED, S.PENDING, S.AUTHORISED})
# States after which nothing more happens to the payment.
FINAL_STATES = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


def check_transition(
    current: str, target: PaymentStatus, *, by_manager: bool = False
) -> PaymentStatus:
    """Return ``target`` if a payment in ``current`` may move there, else raise.

    ``by_manager``: a manager's decision, which may also make the moves in
    ``MANAGER_TRANSITIONS``.
    """
    state = PaymentStatus(current)
    allowed = TRANSITIONS[state]
    if by_manager:
        allowed = allowed | MANAGER_TRANSITIONS.get(state, frozenset())
    if target not in allowed:
        raise IllegalTransition(
            f"payment is {state.value} and cannot become {target.value}",
            current_status=state.value,
        )
    return target


class RefundStatus(StrEnum):
    """A refund: requested here, submitted to the bank (or the terminal), then its result.

    ::

        requested ─► submitted ─► succeeded
            │            │
            ▼            ▼
          failed       failed
            │
            ▼
         unknown ─► succeeded (the terminal gave the money back) or failed (it did not)

    A card refund goes from ``requested`` straight to its result at the terminal, or, when the
    terminal may have carried it out without saying so (the line broke mid-refund), to
    ``unknown`` ("outcome unknown"): still counted against what may be refunded, never sent
    again, and settled from the terminal's own records or by a manager with a note.
    """

    REQUESTED = "requested"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


R = RefundStatus
REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    R.REQUESTED: frozenset({R.SUBMITTED, R.SUCCEEDED, R.FAILED, R.UNKNOWN}),
    R.SUBMITTED: frozenset({R.SUCCEEDED, R.FAILED}),
    R.UNKNOWN: frozenset({R.SUCCEEDED, R.FAILED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
}
# Refunds that take money out of what may still be refunded (an unknown one may have been
# paid out: it stays counted until it is settled, so it is never refunded a second time).
COUNTED_REFUND_STATES = frozenset({R.REQUESTED, R.SUBMITTED, R.SUCCEEDED, R.UNKNOWN})
# Refunds still on their way: their outcome is not known yet.
OPEN_REFUND_STATES = frozenset({R.REQUESTED, R.SUBMITTED, R.UNKNOWN})


def check_refund_transition(current: str, target: RefundStatus) -> RefundStatus:
    """Return ``target`` if a refund in ``current`` may move there, else raise."""
    state = RefundStatus(current)
    if target not in REFUND_TRANSITIONS[state]:
        raise IllegalTransition(
            f"refund is {state.value} and cannot become {target.value}",
            current_status=state.value,
        )
    return target
