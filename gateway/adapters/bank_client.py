"""The acquirer's API over HTTP (docs/bank-api.md), with requests.

One session with connection pooling; connect and read timeouts on every call; retries with
exponential backoff and jitter (urllib3's ``Retry``) for calls that are idempotent: GETs, and
POSTs, because every POST this client sends carries an ``Idempotency-Key`` (the client refuses
to send one without). Each call carries the current request's or job's id as ``X-Request-Id``.
Failures become :class:`BankUnavailable` (retry later) or
:class:`BankRejected` (don't).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from gateway.adapters import logging_setup
from gateway.errors import BankNotConfigured, BankRejected, BankUnavailable


@dataclass(frozen=True, slots=True)
class BankRefund:
    bank_refund_id: str
    refund_id: str
    status: str


class BankClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        if not base_url or not api_key:
            raise BankNotConfigured(
                "the bank URL or API key is not configured: set [bank] url and api_key "
                "(or start the sandbox bank, which writes var/sandbox-bank.json)"
            )
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff,
            backoff_jitter=backoff,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.session.headers["User-Agent"] = "kassa-gateway"

    def create_refund(
        self, *, refund_id: str, payment_reference: str, amount: str, currency: str
    ) -> BankRefund:
        """Ask the bank to refund; the refund id is also the idempotency key."""
        body = self._post(
            "/v1/refunds",
            {
                "refund_id": refund_id,
                "payment_reference": payment_reference,
                "amount": amount,
                "currency": currency,
            },
            idempotency_key=f"refund-{refund_id}",
        )
        return BankRefund(str(body["bank_refund_id"]), str(body["refund_id"]), str(body["status"]))

    def payment_status(self, reference: str) -> dict[str, Any] | None:
        """The payment the bank knows under this reference, or None if nobody has paid it."""
        return self._found_or_none(f"/v1/payments/{quote(reference, safe='')}")

    def refund_status(self, refund_id: str) -> dict[str, Any] | None:
        """The bank's refund for Kassa's ``refund_id``, or None if the bank does not know it."""
        return self._found_or_none(f"/v1/refunds/{quote(refund_id, safe='')}")

    def _found_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", path)
        except BankRejected as exc:
            if exc.extra.get("http_status") == 404:
                return None
            raise

    def download(self, url: str) -> bytes:
        """A settlement file the bank announced; only from the bank's own address."""
        if not url.startswith(self.base_url + "/"):
            raise BankRejected(f"refusing to download {url!r}: it is not under {self.base_url}")
        try:
            response = self.session.get(url, timeout=self.timeout, headers=_traced())
        except requests.RequestException as exc:
            raise BankUnavailable(
                f"the bank did not answer GET {url}: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise BankUnavailable(f"the bank answered {response.status_code} to GET {url}")
        if response.status_code >= 400:
            raise BankRejected(
                f"the bank refused GET {url} ({response.status_code})",
                http_status=response.status_code,
            )
        return response.content

    def _post(self, path: str, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        if not idempotency_key:
            raise ValueError("every POST to the bank needs an Idempotency-Key")
        return self._request("POST", path, json=body, headers={"Idempotency-Key": idempotency_key})

    def _request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        url = self.base_url + path
        kwargs["headers"] = {**_traced(), **(headers or {})}
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise BankUnavailable(
                f"the bank did not answer {method} {path}: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise BankUnavailable(
                f"the bank answered {response.status_code} to {method} {path}; will retry"
            )
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            detail = body.get("detail") or body.get("title") or response.reason
            raise BankRejected(
                f"the bank refused {method} {path} ({response.status_code}): {detail}",
                http_status=response.status_code,
            )
        return body


def _traced() -> dict[str, str]:
    """``X-Request-Id`` for the bank: the request or job this call is made for (the bank logs
    it and sends it back on the callbacks the call causes)."""
    chosen = logging_setup.outgoing_request_id()
    return {"X-Request-Id": chosen} if chosen else {}
