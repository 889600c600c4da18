"""Kassa's configuration as typed, frozen settings: one model per TOML section, checked at load.

:func:`gateway.config.load_config` merges the layers (defaults, ``KASSA_CONFIG``, ``KASSA_*``
variables, overrides) and checks the result here, so a misspelt key, a port of
``"eighty"`` or a minimum expiry above the maximum stops the process at start with a message that
names the section and the key, instead of failing on the first request that reads it. Reading
settings has no side effects: nothing is created or written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import ConfigurationError


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PathSettings(Section):
    """Where Kassa writes by itself; relative to the project directory."""

    var_dir: str = Field("var", min_length=1)


class DatabaseSettings(Section):
    url: str = Field(min_length=1)
    echo: bool = False
    # PostgreSQL connections a process keeps open for reuse: one per thread that may hold one
    # at once (`kassa serve` runs 16 per worker and raises this to its --threads). With fewer,
    # a busy web process opened and closed a connection every few dozen requests.
    pool_size: int = Field(16, ge=1, le=256)


class WebSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    secret_key: str = ""
    secure_cookies: bool = False
    # A card payment's screen gets the terminal's texts live (server-sent events); each stream
    # ends after this many seconds and reconnects. 0: off, the screen polls once a second.
    event_stream_seconds: float = Field(60, ge=0)
    # GET /metrics (Prometheus): with a token, only `Authorization: Bearer <token>`; empty, only
    # from a loopback address and not through a proxy.
    metrics_token: str = ""
    # Log lines: "json" (one object a line), "plain", or "auto" (plain on a terminal, else JSON).
    log_format: Literal["auto", "json", "plain"] = "auto"


class SecuritySettings(Section):
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)
    # Staff identity: TOTP secrets' encryption key, step-up window, sign-in throttling,
    # till key rotation, the proxy whose X-Forwarded-* headers are believed.
    mfa_key: str = ""
    step_up_seconds: int = Field(300, ge=0)
    step_up_budget_minor: int = Field(50_000, ge=0)
    login_free_failures: int = Field(5, ge=1)
    login_lockout_failures: int = Field(10, ge=1)
    login_address_free_failures: int = Field(20, ge=1)
    login_address_lockout_failures: int = Field(100, ge=1)
    login_max_delay_seconds: int = Field(60, ge=1)
    login_lockout_seconds: int = Field(900, ge=1)
    key_grace_seconds: int = Field(86400, ge=0)
    trusted_proxies: int = Field(0, ge=0)


CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class AcceptedCurrencies(Section):
    """The currencies a merchant or one of its stores takes payments in: ``[payments.currencies]``.

    Keyed by the merchant's and the store's name; a store's list replaces its merchant's. A
    merchant or store not named takes its merchant's default currency only.
    """

    merchants: dict[str, tuple[CurrencyCode, ...]] = Field(default_factory=dict)
    stores: dict[str, tuple[CurrencyCode, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> AcceptedCurrencies:
        from gateway.domain.money import currency
        from gateway.errors import InvalidMoney

        for codes in (*self.merchants.values(), *self.stores.values()):
            if not codes:
                raise ValueError("a list of accepted currencies may not be empty")
            for code in codes:
                try:
                    currency(code)
                except InvalidMoney as exc:
                    raise ValueError(exc.message) from None
        return self


class PaymentSettings(Section):
    """How long a dynamic QR stays payable, Kassa's expiry template's identifier, and which
    currencies each merchant and store accepts."""

    default_expiry_seconds: int = Field(300, ge=1)
    min_expiry_seconds: int = Field(30, ge=1)
    max_expiry_seconds: int = Field(3600, ge=1)
    expiry_gui: str = Field("IO.KASSA", min_length=1, max_length=32)
    # Asking the bank (GET /v1/payments/{reference}) when no callback came: first after this
    # many seconds (0: never; the expiry still asks once), then at intervals growing by
    # bank_poll_backoff up to bank_poll_max_interval_seconds, until the payment ends.
    bank_poll_after_seconds: float = Field(20, ge=0)
    bank_poll_backoff: float = Field(1.5, ge=1)
    bank_poll_max_interval_seconds: float = Field(120, gt=0)
    # How often the expiry asks a bank that does not answer before it expires without its word.
    expiry_bank_attempts: int = Field(5, ge=1)
    currencies: AcceptedCurrencies = AcceptedCurrencies()

    @model_validator(mode="after")
    def _ordered(self) -> PaymentSettings:
        if not self.min_expiry_seconds <= self.default_expiry_seconds <= self.max_expiry_seconds:
            raise ValueError(
                "default_expiry_seconds must lie between min_expiry_seconds and max_expiry_seconds"
            )
        return self


class WorkerSettings(Section):
    poll_interval_ms: int = Field(500, ge=1)
    lease_seconds: int = Field(60, ge=1)
    max_attempts: int = Field(8, ge=1)
    threads: int = Field(4, ge=1, le=64)


class BankSettings(Section):
    url: str = Field(min_length=1)
    merchant_id: str = ""
    api_key: str = ""
    webhook_secret: str = ""
    secrets_file: str = "sandbox-bank.json"
    callback_tolerance_seconds: int = Field(300, ge=1)
    connect_timeout_seconds: float = Field(3, gt=0)
    read_timeout_seconds: float = Field(10, gt=0)


class WebhookSettings(Section):
    """Outbound webhooks to merchants' systems (gateway.services.webhooks)."""

    connect_timeout_seconds: float = Field(3, gt=0)
    read_timeout_seconds: float = Field(10, gt=0)
    # Send to loopback, private, link-local or other non-public addresses too (an ERP inside
    # the merchant's own network when Kassa runs there). Off: such endpoints are refused, so a
    # portal user cannot make the worker reach services next to Kassa.
    allow_private_addresses: bool = False


class TillDeviceSettings(Section):
    """One till's devices on this device host; an empty URL means no such device."""

    store: str
    till: str
    terminal_url: str = ""
    terminal_password: str = "000000"  # noqa: S105 - ZVT terminals ship with this default
    terminal_baudrate: int = Field(9600, ge=1)
    terminal_link: Literal["serial", "tcp"] | None = None
    reader_url: str = ""
    reader_baudrate: int = Field(115200, ge=1)
    end_of_day_time: str | None = Field(None, pattern=r"^$|^\d{2}:\d{2}$")
    terminal_currency: str = Field("", pattern=r"^$|^[A-Z]{3}$")
    terminal_timeout_seconds: float | None = Field(None, gt=0)


class DeviceSettings(Section):
    simulated: bool = True
    heartbeat_seconds: float = Field(2, gt=0)
    probe_seconds: float = Field(2, gt=0)
    end_of_day_time: str = Field("23:00", pattern=r"^$|^\d{2}:\d{2}$")
    tag_token_key: str = ""
    log_dir: str = "device-logs"
    log_max_bytes: int = Field(1_048_576, ge=1024)
    log_backups: int = Field(3, ge=0)
    # A card payment no device host has begun within card_pickup_seconds fails (nothing was
    # sent: no money taken); one whose attempt began card_attempt_seconds ago without an answer
    # becomes "outcome unknown". Either way the till is free.
    card_pickup_seconds: float = Field(30, gt=0)
    card_attempt_seconds: float = Field(300, gt=0)
    # A card refund or reversal the terminal could not be sent within card_refund_wait_seconds
    # fails (no money went back; refund again); one sent without an answer becomes "unknown".
    card_refund_wait_seconds: float = Field(120, gt=0)
    tills: tuple[TillDeviceSettings, ...] = ()


class DemoSettings(Section):
    credentials_file: str = "demo-credentials.json"


class SettlementSettings(Section):
    store_max_bytes: int = Field(16 * 1024 * 1024, ge=0)
    archive_dir: str = "settlement-files"
    # Checked by the CSV reader, which knows what a mapping needs (gateway.adapters).
    csv_mappings: dict[str, dict[str, Any]] = Field(default_factory=dict)


class PromotionSettings(Section):
    identity_key: str = ""
    lapsed_after_days: int = Field(90, ge=1)
    tap_window_seconds: int = Field(120, ge=1)
    keep_quotes_days: int = Field(7, ge=1)
    timezone: str = ""

    @property
    def lapsed_after(self) -> timedelta:
        return timedelta(days=self.lapsed_after_days)

    @property
    def tap_window(self) -> timedelta:
        return timedelta(seconds=self.tap_window_seconds)


class ReceiptSettings(Section):
    # How long a receipt's link opens it, in days.
    link_days: int = Field(30, ge=1, le=3650)
    # Where customers open receipts: the web tier's public address ("" : the request's own).
    public_url: str = ""


class PrivacySettings(Section):
    # Promotions that need a profile (points, referrals, targeted or A/B tested offers, gifts
    # after N purchases) apply only to customers who agreed to marketing.
    profiles_need_consent: bool = True
    # A customer who has not bought for this many days is anonymised by the worker (0: never).
    inactive_customer_days: int = Field(730, ge=0)


class FeeSettings(Section):
    percent_bp: int = Field(ge=0, le=10_000)
    fixed_minor: int = Field(ge=0)


class ReconciliationSettings(Section):
    window_days: int = Field(3, ge=0)
    unsettled_after_days: int = Field(2, ge=0)
    fees: dict[str, FeeSettings] = Field(default_factory=dict)
    # The scheduled runs split a day of at least parts_from payments into this many partitions,
    # run by whichever workers are free (1: never).
    parts: int = Field(1, ge=1, le=256)
    parts_from: int = Field(1_000_000, ge=0)


class ApprovalSettings(Section):
    """When a supervisor must approve at the till (defaults; an owner sets their own limits
    in the portal). Amounts are in minor units of the payment's currency."""

    refund_above_minor: int = Field(5_000, ge=0)  # a refund or void above this
    payment_above_minor: int = Field(250_000, ge=0)  # a QR or card payment above this
    token_seconds: int = Field(120, ge=10, le=3600)  # how long an API approval token lives


class MonitoringSettings(Section):
    """The anomaly rules' default thresholds (gateway/domain/monitoring.py says what each
    means); a manager sets a merchant's own in the portal. 0 turns a rule off."""

    refund_ratio_percent: int = Field(30, ge=0, le=1_000_000)
    refund_ratio_min_refunds: int = Field(3, ge=0, le=1_000_000)
    refund_ratio_window_minutes: int = Field(60, ge=1, le=1_000_000)
    voids_per_till: int = Field(3, ge=0, le=1_000_000)
    voids_window_minutes: int = Field(60, ge=1, le=1_000_000)
    card_declines: int = Field(3, ge=0, le=1_000_000)
    card_declines_window_minutes: int = Field(30, ge=1, le=1_000_000)
    qr_payments_per_minute: int = Field(10, ge=0, le=1_000_000)
    refunds_per_minute: int = Field(3, ge=0, le=1_000_000)
    large_ticket_factor: int = Field(5, ge=0, le=1_000_000)
    large_ticket_statistic: Literal["median", "p95"] = "p95"
    large_ticket_min_history: int = Field(20, ge=0, le=1_000_000)
    large_ticket_history_days: int = Field(30, ge=1, le=3650)
    outside_hours_grace_minutes: int = Field(0, ge=0, le=1440)
    login_failures_per_user: int = Field(5, ge=0, le=1_000_000)
    login_failures_per_source: int = Field(20, ge=0, le=1_000_000)
    login_window_minutes: int = Field(15, ge=1, le=1_000_000)
    attention_flags: int = Field(3, ge=0, le=1_000_000)
    attention_flags_per_store: int = Field(5, ge=0, le=1_000_000)
    attention_window_minutes: int = Field(60, ge=1, le=1_000_000)


class Settings(Section):
    """The whole configuration. ``sandbox_bank`` is read by the sandbox's own settings."""

    paths: PathSettings = PathSettings()
    database: DatabaseSettings
    web: WebSettings = WebSettings()
    security: SecuritySettings = SecuritySettings()
    payments: PaymentSettings = PaymentSettings()
    worker: WorkerSettings = WorkerSettings()
    bank: BankSettings
    devices: DeviceSettings = DeviceSettings()
    demo: DemoSettings = DemoSettings()
    settlement: SettlementSettings = SettlementSettings()
    promotions: PromotionSettings = PromotionSettings()
    reconciliation: ReconciliationSettings = ReconciliationSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    webhooks: WebhookSettings = WebhookSettings()
    receipts: ReceiptSettings = ReceiptSettings()
    privacy: PrivacySettings = PrivacySettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    sandbox_bank: dict[str, Any] = Field(default_factory=dict)


def settings_from(config: Mapping[str, Any]) -> Settings:
    """Check a merged configuration; a wrong one raises :class:`ConfigurationError` naming
    every wrong ``[section] key`` and what was expected."""
    try:
        return Settings.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ConfigurationError(f"configuration is not valid: {problems}") from None


def _problem(error: Mapping[str, Any]) -> str:
    where = [str(part) for part in error.get("loc", ())]
    section, key = (where[0], ".".join(where[1:])) if where else ("", "")
    place = f"[{section}] {key}".strip() if key else f"[{section}]"
    return f"{place}: {error.get('msg', 'is not valid')}"
