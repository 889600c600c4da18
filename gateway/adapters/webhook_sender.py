"""Sends one signed webhook over HTTP (requests): Standard Webhooks headers, short timeouts,
no redirects followed, and what came back in a form the delivery log keeps."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import requests
from standardwebhooks.webhooks import Webhook

from gateway.domain.card_data import scrub_card_numbers

USER_AGENT = "Kassa-Webhooks/1"
SNIPPET_CHARS = 500


@dataclass(frozen=True, slots=True)
class SendResult:
    """One attempt's outcome: the HTTP status (None if no answer came) or the error."""

    status_code: int | None
    latency_ms: int
    error: str | None
    response_snippet: str | None


def signed_headers(secret: str, message_id: str, sent_at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` signed at ``sent_at`` (whole seconds)."""
    sent_at = sent_at.replace(microsecond=0)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, sent_at, body),
    }


def send(
    url: str,
    secret: str,
    message_id: str,
    body: str,
    sent_at: datetime,
    *,
    connect_timeout: float = 3.0,
    read_timeout: float = 10.0,
    allow_private: bool = False,
) -> SendResult:
    """POST ``body`` to ``url``, signed with ``secret``; never raises for the network's sake.

    Unless ``allow_private``, a host that resolves to a loopback, private, link-local or other
    non-public address is refused before anything is sent.
    """
    headers = signed_headers(secret, message_id, sent_at, body)
    started = time.perf_counter()
    refusal = None if allow_private else _non_public(url)
    if refusal:
        return SendResult(None, _since(started), _clean(refusal), None)
    try:
        response = requests.post(
            url,
            data=body.encode("utf-8"),
            headers=headers,
            timeout=(connect_timeout, read_timeout),
            allow_redirects=False,
            stream=True,
        )
    except requests.RequestException as exc:
        return SendResult(None, _since(started), _clean(f"{type(exc).__name__}: {exc}"), None)
    try:
        head = response.raw.read(SNIPPET_CHARS * 4, decode_content=True) or b""
    except Exception as exc:  # a receiver that answers and then breaks the connection
        head = f"(the answer could not be read: {type(exc).__name__})".encode()
    finally:
        response.close()
    snippet = _clean(head.decode("utf-8", errors="replace")) or None
    ok = 200 <= response.status_code < 300
    error = None if ok else f"HTTP {response.status_code} {response.reason or ''}".strip()
    return SendResult(response.status_code, _since(started), error, snippet)


def _non_public(url: str) -> str | None:
    """Why ``url``'s host may not be sent to, or None. (requests resolves the name again, so
    a name whose answer changes between the two look-ups is not caught here.)"""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        return f"ConnectionError: cannot resolve {host}: {exc}"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            return (
                f"not sent: {host} is {address}, not a public address "
                "([webhooks] allow_private_addresses is off)"
            )
    return None


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _clean(text: str) -> str:
    return scrub_card_numbers(text)[:SNIPPET_CHARS].replace("\x00", "\\x00")
