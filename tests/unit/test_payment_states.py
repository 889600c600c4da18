"""The payment state machine: every legal transition passes, every other one is refused."""

import pytest

from gateway.domain.payment import (
    FINAL_STATES,
    OPEN_STATES,
    TRANSITIONS,
    PaymentStatus,
    check_transition,
)
from gateway.errors import IllegalTransition

S = PaymentStatus


def test_happy_path_of_a_qr_payment() -> None:
    state = S.CREATED
    for target in (S.PENDING, S.PAID, S.SETTLED, S.PARTIALLY_REFUNDED, S.REFUNDED):
        state = check_transition(state, target)
    assert state is S.REFUNDED


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_only_listed_transitions_are_legal(current: PaymentStatus, target: PaymentStatus) -> None:
    if target in TRANSITIONS[current]:
        assert check_transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition(current, target)
        assert info.value.extra["current_status"] == current.value
        assert f"payment is {current.value}" in str(info.value)


def test_paid_money_cannot_expire_or_be_cancelled() -> None:
    for target in (S.EXPIRED, S.CANCELLED, S.FAILED, S.PENDING):
        assert target not in TRANSITIONS[S.PAID]


def test_final_and_open_states() -> None:
    assert FINAL_STATES == {S.FAILED, S.EXPIRED, S.CANCELLED, S.REFUNDED}
    assert OPEN_STATES == {S.CREATED, S.PENDING, S.AUTHORISED}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_a_manager_may_also_accept_given_up_payments_as_paid_and_nothing_else(
    current: PaymentStatus, target: PaymentStatus
) -> None:
    extra = {(S.EXPIRED, S.PAID), (S.CANCELLED, S.PAID), (S.FAILED, S.PAID)}
    if target in TRANSITIONS[current] or (current, target) in extra:
        assert check_transition(current, target, by_manager=True) is target
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, target, by_manager=True)
    if (current, target) in extra:  # never on the bank's word alone
        with pytest.raises(IllegalTransition):
            check_transition(current, target)
