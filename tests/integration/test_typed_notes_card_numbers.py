"""What people type into the features built after the PAN scrubber (an alert's note, a webhook
endpoint's description and URL, a refund's reason, a reconciliation decision's note) never
stores a card number, on SQLite and PostgreSQL: `kassa db scan-pans` finds nothing after.

A cashier or manager copying what the customer showed ("card 4111 1111 1111 1111 declined")
is the case: the number is masked as it is written, as the bank's and terminal's texts are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.adapters.db import Database
from gateway.adapters.models import Alert, Refund
from gateway.adapters.webhook_models import WebhookEndpoint
from gateway.domain.money import Money
from gateway.domain.monitoring import Rule, Severity, Subject, Verdict
from gateway.errors import InvalidInput
from gateway.services.monitoring import alerts
from gateway.services.payments import qr_payments, refunds
from gateway.services.settlement import reconciliation
from gateway.services.webhooks import endpoints
from tests.conftest import stored_card_numbers
from tests.factories import paid_by_bank
from tests.integration.test_portal_pages import till_of

# Test card numbers (Visa and Mastercard test ranges), as people type them.
TYPED = ("4111 1111 1111 1111", "5500-0000-0000-0004", "4111111111111111")


@pytest.mark.parametrize("card", TYPED)
def test_notes_and_reasons_are_stored_masked(db: Database, demo: Any, card: str) -> None:
    till = till_of(db)
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money.parse("12.34", "EUR"), settings=qr_payments.PaymentSettings()
        )
        uow.session.flush()
        paid_by_bank(uow, payment.id)
        alert = alerts.raise_alert(
            uow,
            Verdict(Rule.VOIDS, Subject("till", str(till.till_id)), Severity.WARNING, 60),
            alerts.Where(till.merchant_id, till.store_id, till.till_id),
            datetime(2026, 1, 1, 12, tzinfo=UTC),
        )
        made = endpoints.create_endpoint(
            uow,
            till.merchant_id,
            url="https://erp.example.com/kassa-hooks",
            event_types=["payment.*"],
            description=f"the ERP, not card {card}",
            actor="test",
        )
        uow.commit()
        alert_id, endpoint_id, payment_id = alert.id, made.endpoint.id, payment.id
    with db.unit_of_work() as uow:
        alerts.acknowledge(
            uow, alert_id, till.merchant_id, note=f"customer showed card {card}", actor="test"
        )
        refund = refunds.request_refund(
            uow,
            payment_id,
            till.merchant_id,
            amount=Money.parse("1.00", "EUR"),
            reason=f"wrong card {card}",
            actor="test",
        )
        reconciliation.decide(
            uow,
            till.merchant_id,
            action="write_off",
            subject_id=payment_id,
            line_ids=[],
            note=f"paid with {card} elsewhere",
            actor="test",
        )
        uow.commit()
        refund_id = refund.id
    with db.unit_of_work(readonly=True) as uow:
        note = uow.session.get_one(Alert, alert_id).note
        assert note is not None and note.startswith("customer showed card ") and card not in note
        described = uow.session.get_one(WebhookEndpoint, endpoint_id).description
        assert described is not None and card not in described
        reason = uow.session.get_one(Refund, refund_id).reason
        assert reason is not None and card not in reason
    assert stored_card_numbers(db) == []


def test_an_endpoint_url_with_a_card_number_is_refused(db: Database, demo: Any) -> None:
    till = till_of(db)
    with db.unit_of_work() as uow, pytest.raises(InvalidInput, match="card number"):
        endpoints.create_endpoint(
            uow,
            till.merchant_id,
            url="https://erp.example.com/hooks/4111111111111111",
            event_types=["payment.*"],
            description=None,
            actor="test",
        )
