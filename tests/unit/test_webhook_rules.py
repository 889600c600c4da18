"""The pure rules of outbound webhooks: subscriptions, URLs, the body, the retry schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain import webhooks
from gateway.errors import InvalidInput


def test_a_family_wildcard_or_an_exact_type_matches() -> None:
    assert webhooks.matches(["payment.*"], "payment.paid")
    assert webhooks.matches(["refund.succeeded"], "refund.succeeded")
    assert not webhooks.matches(["refund.succeeded"], "refund.failed")
    assert not webhooks.matches(["payment.*"], "refund.succeeded")
    assert not webhooks.matches(["payment.*"], "paymentx.paid")


def test_patterns_are_cleaned_and_checked() -> None:
    assert webhooks.check_patterns([" Payment.* ", "payment.*", "alert.raised"]) == [
        "payment.*",
        "alert.raised",
    ]
    for bad in (["*"], ["orders.*"], ["payment."], ["webhook.test"]):
        with pytest.raises(InvalidInput):
            webhooks.check_patterns(bad)
    with pytest.raises(InvalidInput, match="at least one"):
        webhooks.check_patterns(["", " "])


def test_event_types_are_family_dot_name() -> None:
    assert webhooks.check_event_type("settlement.reconciled") == "settlement.reconciled"
    for bad in ("payment", "payment.*", "orders.created", "Payment.Paid", "payment.paid.now"):
        with pytest.raises(InvalidInput):
            webhooks.check_event_type(bad)


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example/", "https://", "/relative", "https://user:pw@x.example/", "http://x:99999/"],
)
def test_an_endpoint_url_must_be_plain_http_or_https(url: str) -> None:
    with pytest.raises(InvalidInput):
        webhooks.check_url(url)


def test_a_good_url_is_kept_as_typed() -> None:
    assert (
        webhooks.check_url(" https://erp.example:8443/k?x=1 ") == "https://erp.example:8443/k?x=1"
    )


def test_the_body_has_type_timestamp_and_scrubbed_data() -> None:
    at = datetime(2026, 12, 6, 12, 0, 1, tzinfo=UTC)
    body = webhooks.message_body("payment.paid", {"note": "card 4111111111111111", "n": 1}, at)
    assert json.loads(body) == {
        "type": "payment.paid",
        "timestamp": "2026-12-06T12:00:01Z",
        "data": {"note": "card 411111******1111", "n": 1},
    }


def test_retries_back_off_for_about_a_day_then_stop() -> None:
    delays = [webhooks.retry_delay(n) for n in range(1, webhooks.MAX_ATTEMPTS + 1)]
    assert delays[-1] is None and all(d is not None for d in delays[:-1])
    waits = [d for d in delays if d is not None]
    assert waits == sorted(waits) and waits[0] == timedelta(seconds=30)
    assert timedelta(hours=18) <= sum(waits, timedelta()) <= timedelta(hours=26)
    assert webhooks.retry_delay(0) is None


def test_only_2xx_is_success() -> None:
    assert [webhooks.succeeded(c) for c in (None, 199, 200, 204, 299, 300, 410, 500)] == [
        False, False, True, True, True, False, False, False,
    ]  # fmt: skip
