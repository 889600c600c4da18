"""Outbound webhooks to a merchant's own systems: which events an endpoint gets, what the
message looks like, and when a failed delivery is tried again.

Messages follow Standard Webhooks (https://www.standardwebhooks.com/): the body is JSON
``{"type": …, "timestamp": …, "data": {…}}``, the ``webhook-id`` names the event (the same on
every retry, so a receiver drops what it has already seen), and ``webhook-signature`` is
``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body`` with the endpoint's ``whsec_`` secret.

An endpoint subscribes to patterns: a family with a wildcard (``payment.*``) or one type
(``payment.paid``).

=================  ====================================================================
family             types
=================  ====================================================================
``payment``        ``payment.<status>``: pending, authorised, paid, settled, failed, expired,
                   cancelled, refunded, partially_refunded
``refund``         ``refund.<status>``: submitted, succeeded, failed
``settlement``     ``settlement.imported`` (a bank file), ``settlement.reconciled`` (a day)
``alert``          ``alert.raised``
``webhook``        ``webhook.test``: sent by a manager to one endpoint, never subscribed to
=================  ====================================================================

A delivery that fails (no answer, or not 2xx) is tried again after :data:`RETRY_DELAYS`, about
a day in all; a 410 Gone answer pauses the endpoint instead (the receiver says it is gone).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from gateway.domain.card_data import has_card_number, scrub_json
from gateway.errors import InvalidInput

FAMILIES = ("payment", "refund", "settlement", "alert")
TEST_EVENT = "webhook.test"
_TYPE = re.compile(r"^[a-z]+\.[a-z_]{1,40}$")
MAX_URL_LENGTH = 2000
# Waits before the 2nd, 3rd, … attempt: 11 attempts over about 21 hours.
RETRY_DELAYS = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=3),
    timedelta(hours=4),
    timedelta(hours=5),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
GONE = 410


def check_event_type(event_type: str) -> str:
    """``event_type`` if it is ``<family>.<name>`` of a known family (else a programming error)."""
    family = event_type.split(".", 1)[0]
    if not _TYPE.match(event_type) or family not in FAMILIES:
        raise InvalidInput(
            f"webhook event type {event_type!r} is not <family>.<name> with a family of "
            f"{', '.join(FAMILIES)}"
        )
    return event_type


def check_patterns(patterns: list[str]) -> list[str]:
    """The subscription patterns, cleaned: ``family.*`` or a full type, at least one."""
    cleaned: list[str] = []
    for raw in patterns:
        pattern = raw.strip().lower()
        if not pattern:
            continue
        family, _, name = pattern.partition(".")
        if family not in FAMILIES or not (name == "*" or _TYPE.match(pattern)):
            raise InvalidInput(
                f"“{raw}” is not an event type: use payment.*, refund.*, settlement.*, alert.* "
                "or one type such as payment.paid"
            )
        if pattern not in cleaned:
            cleaned.append(pattern)
    if not cleaned:
        raise InvalidInput("choose at least one kind of event to receive")
    return cleaned


def matches(patterns: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``patterns`` gets ``event_type``."""
    family = event_type.split(".", 1)[0]
    return any(p == event_type or p == f"{family}.*" for p in patterns)


def check_url(url: str) -> str:
    """An endpoint URL: absolute http(s) with a host, without credentials in it."""
    url = url.strip()
    if not url:
        raise InvalidInput("enter the URL Kassa should send events to")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise InvalidInput(f"“{url}” is not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput(f"“{url}” is not an http:// or https:// URL with a host name")
    if parts.username or parts.password:
        raise InvalidInput("put no user name or password in the URL; verify the signature instead")
    if has_card_number(url):  # stored, shown and logged with every delivery: never masked
        raise InvalidInput("the URL holds what looks like a card number; use another path")
    return url


def message_body(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The JSON text sent (and signed) for an event, the same bytes on every attempt.

    Every string in ``data`` is scrubbed of card numbers, whatever the caller put in.
    """
    body = {
        "type": event_type,
        "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": scrub_json(data),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)


def retry_delay(attempts: int) -> timedelta | None:
    """How long to wait after ``attempts`` failed attempts; None when there are no more."""
    if attempts < 1 or attempts > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempts - 1]


def succeeded(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300
