"""`kassa devices`: the one process that owns a store's or till's serial ports.

It takes the jobs queued for its tills (``device:<till id>``: card charge, refund, reversal,
end of day, resolving an unknown outcome), runs them one at a time per terminal, writes the
results back, polls the NFC readers for taps while idle, and writes a heartbeat per device
that the portal shows. Each time it opens a terminal it registers (ZVT 06 00) with the till's
currency; idle devices are probed every few seconds so their state is true; each terminal's
next scheduled end of day is kept queued. Before a terminal books anything new, the till's
unknown outcomes are settled from its last receipt, while that receipt still tells.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from drivers.errors import DeviceDeclined, DeviceDisconnected, DeviceError
from drivers.transport import Transport
from drivers.zvt.framing import LinkTimings
from drivers.zvt.protocol import Timeouts
from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import (
    CustomerTap,
    DeviceStatus,
    Job,
    Payment,
    Refund,
    Store,
    Till,
    utcnow,
)
from gateway.domain.card_data import scrub_card_numbers
from gateway.domain.money import currency
from gateway.domain.payment import PaymentStatus
from gateway.domain.sentences import say
from gateway.errors import ConfigurationError, Conflict
from gateway.services import jobs
from gateway.services.devices import cards, end_of_day, outcomes, refund_outcomes
from gateway.services.payments import refunds
from gateway.settings import Settings, TillDeviceSettings

log = logging.getLogger(__name__)
TAP_DEBOUNCE = timedelta(seconds=3)
UNIDENTIFIED_TAP = ""  # the token of a tap that names nobody (see identity_token)
# ZVT result code B4, "already reversed" (PA00P015 chapter 10; drivers/zvt/codes.py).
ALREADY_REVERSED = 0xB4


@dataclass
class TillDevices:
    """One till's devices as configured (URLs may be empty: no such device)."""

    till_id: int
    label: str
    terminal_url: str = ""
    terminal_password: str = "000000"  # noqa: S105 - ZVT terminals ship with this default
    terminal_baudrate: int = 9600
    # "serial": RS-232 framing (DLE STX … ETX, CRC, ACK), also through a serial device server;
    # "tcp": ZVT over TCP/IP, unframed APDUs (a terminal's own LAN port, usually 20007).
    terminal_link: str = "serial"
    reader_url: str = ""
    reader_baudrate: int = 115200
    # The store's time zone: ZVT terminals report local time without a zone.
    timezone: str = "UTC"
    store: str = ""  # the store's name, for the device log's folder
    # The currency the terminal takes (ISO 4217 alphabetic); the merchant's by default.
    terminal_currency: str = "EUR"
    # When the terminal's batch is closed each day, on the store's clock; None: never by itself.
    end_of_day_at: dt_time | None = None
    # The ZVT dialogue's timeouts (T3, T4) and the serial link's (T2): the protocol's defaults
    # unless configured.
    timeouts: Timeouts | None = None
    link_timings: LinkTimings | None = None
    # run time
    terminal: Any = None
    reader: Any = None
    states: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    last_tap: tuple[str, datetime] | None = None
    next_probe: float = 0.0  # monotonic time of the next idle liveness check

    @property
    def queue(self) -> str:
        return cards.device_queue(self.till_id)


def terminal_link(entry: TillDeviceSettings) -> str:
    """The ZVT link of a configured terminal: as set, else "tcp" for a socket:// URL (a
    terminal's LAN port) and "serial" for everything else."""
    return entry.terminal_link or (
        "tcp" if entry.terminal_url.startswith("socket://") else "serial"
    )


def configured_tills(db: Database, settings: Settings) -> list[TillDevices]:
    """Resolve ``[[devices.tills]]`` (store name + till label) to the database's tills."""
    out = []
    with db.unit_of_work(readonly=True) as uow:
        for entry in settings.devices.tills:
            till = uow.session.scalar(
                select(Till).join(Store).where(Store.name == entry.store, Till.label == entry.till)
            )
            if till is None:
                raise ConfigurationError(
                    f"[[devices.tills]]: no till {entry.till!r} in store {entry.store!r}"
                )
            eod = (
                entry.end_of_day_time
                if entry.end_of_day_time is not None
                else settings.devices.end_of_day_time
            )
            out.append(
                TillDevices(
                    till.id,
                    till.label,
                    terminal_url=entry.terminal_url,
                    terminal_password=entry.terminal_password,
                    terminal_baudrate=entry.terminal_baudrate,
                    terminal_link=terminal_link(entry),
                    reader_url=entry.reader_url,
                    reader_baudrate=entry.reader_baudrate,
                    store=entry.store,
                    timezone=till.store.timezone,
                    terminal_currency=entry.terminal_currency
                    or till.store.merchant.default_currency,
                    end_of_day_at=end_of_day.parse_local_time(eod) if eod else None,
                    timeouts=Timeouts(t4=entry.terminal_timeout_seconds)
                    if entry.terminal_timeout_seconds
                    else None,
                )
            )
    return out


class DeviceHost:
    def __init__(
        self,
        db: Database,
        tills: list[TillDevices],
        *,
        token_key: bytes,
        heartbeat_seconds: float = 2.0,
        probe_seconds: float = 2.0,
        host: str = "",
        log_dir: Path | None = None,
        log_max_bytes: int = 1_048_576,
        log_backups: int = 3,
    ) -> None:
        self.db = db
        self.tills = tills
        self.token_key = token_key
        self.heartbeat_seconds = heartbeat_seconds
        self.probe_seconds = probe_seconds
        self.host = host or jobs.worker_name()
        self._next_heartbeat = 0.0
        self.log_dir = log_dir
        self.log_limits = (log_max_bytes, log_backups)
        self._next_schedule = 0.0

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        self.take_over_interrupted_jobs()
        while not stop():
            if not self.step():
                time.sleep(0.05)
        for till in self.tills:
            self._close(till)

    def step(self) -> bool:
        """One pass: heartbeat when due, one job per till, a reader poll; True if work was done."""
        if time.monotonic() >= self._next_heartbeat:
            self.heartbeat()
            self._next_heartbeat = time.monotonic() + self.heartbeat_seconds
        if time.monotonic() >= self._next_schedule:  # also after a scheduled run gave up
            self.schedule_end_of_day()
            self._next_schedule = time.monotonic() + 60
        worked = False
        for till in self.tills:
            busy = self._run_one_job(till)
            if not busy and time.monotonic() >= till.next_probe:
                self.probe(till)
                till.next_probe = time.monotonic() + self.probe_seconds
            if till.reader_url:
                busy |= self._poll_reader(till)
            worked |= busy
        return worked

    def probe(self, till: TillDevices) -> None:
        """Ask idle devices whether they are there (terminal: Status Enquiry 05 01; reader:
        GetFirmwareVersion), so a dead one shows disconnected and a live one connected; a dead
        one is opened again at the next probe, so it comes back by itself."""
        if till.terminal_url:
            try:
                self.terminal(till).probe()
                self._state(till, "card_terminal", "connected", None)
            except DeviceDeclined:  # it answered, if only to say no: it is there
                self._state(till, "card_terminal", "connected", None)
            except DeviceError as exc:
                self._state(till, "card_terminal", "disconnected", str(exc))
                self._drop(till, "terminal")
        if till.reader_url:
            try:
                self.reader(till).firmware_version()
                self._state(till, "nfc_reader", "connected", None)
            except DeviceError as exc:
                self._state(till, "nfc_reader", "disconnected", str(exc))
                self._drop(till, "reader")

    def _drop(self, till: TillDevices, which: str) -> None:
        device = getattr(till, which)
        transport = getattr(device, "transport", None)
        if transport is not None:
            transport.close()
        setattr(till, which, None)

    def take_over_interrupted_jobs(self) -> int:
        """Jobs on our queues left running by a device host that died: ours now, due at once.

        Only this process owns these tills' ports, so whoever ran them is gone.
        """
        with self.db.unit_of_work() as uow:
            result = uow.session.execute(
                update(Job)
                .where(Job.queue.in_([t.queue for t in self.tills]), Job.status == "running")
                .values(status="pending", locked_by=None, locked_until=None, run_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            uow.commit()
            return int(getattr(result, "rowcount", 0) or 0)

    def schedule_end_of_day(self) -> None:
        """Make sure each terminal's next scheduled end of day is queued (each run queues the
        next one, so this matters only at the first start or after a day without a host)."""
        with self.db.unit_of_work() as uow:
            for till in self.tills:
                if till.terminal_url and till.end_of_day_at is not None:
                    end_of_day.schedule_end_of_day(
                        uow, till.till_id, till.end_of_day_at, till.timezone
                    )
            uow.commit()

    def _run_one_job(self, till: TillDevices) -> bool:
        handlers = {
            cards.CHARGE_JOB: self._charge(till),
            cards.REFUND_JOB: self._refund(till),
            cards.REVERSE_JOB: self._reverse(till),
            cards.END_OF_DAY_JOB: self._end_of_day(till),
            outcomes.RESOLVE_JOB: self._resolve(till),
        }
        return (
            jobs.run_due_jobs(
                self.db,
                handlers,
                worker=self.host,
                limit=1,
                queues=(till.queue,),
                lease_seconds=300,
            )
            > 0
        )

    # -- devices ----------------------------------------------------------------------------

    def terminal(self, till: TillDevices) -> Any:
        if till.terminal is None:
            from drivers.zvt.terminal import CardTerminal

            if not till.terminal_url:
                raise DeviceError(f"till {till.label} has no card terminal configured")
            transport = Transport(till.terminal_url, baudrate=till.terminal_baudrate).open()
            link = "zvt-tcp" if till.terminal_link == "tcp" else "zvt-serial"
            transport.tap = self.device_log(till, "card_terminal", link)
            terminal = CardTerminal(
                transport,
                password=till.terminal_password,
                currency=currency(till.terminal_currency).numeric,
                tcp=till.terminal_link == "tcp",
                timeouts=till.timeouts,
                timings=till.link_timings,
            )
            try:
                self._register(till, terminal)
            except DeviceError:
                transport.close()
                raise
            till.terminal = terminal
            self._state(till, "card_terminal", "connected", None)
        return till.terminal

    def _register(self, till: TillDevices, terminal: Any) -> None:
        """Registration (06 00) with the till's currency and configuration, at every (re)connect;
        a terminal that says it takes another currency is a configuration error to fix."""
        completion = terminal.register()
        said = completion.get("currency")
        if said and said.lstrip("0") != terminal.currency.lstrip("0"):
            takes = currency(said).code
            raise DeviceError(
                f"the terminal at till {till.label} takes {takes}, but its terminal_currency "
                f"is {till.terminal_currency}: set terminal_currency = '{takes}' in "
                "[[devices.tills]]"
            )

    def reader(self, till: TillDevices) -> Any:
        if till.reader is None:
            from drivers.pn532.reader import NfcReader

            transport = Transport(till.reader_url, baudrate=till.reader_baudrate).open()
            transport.tap = self.device_log(till, "nfc_reader", "pn532")
            reader = NfcReader(transport)
            reader.wake_up()
            reader.sam_configuration()
            till.reader = reader
            self._state(till, "nfc_reader", "connected", None)
        return till.reader

    def device_log(self, till: TillDevices, kind: str, protocol: str) -> Any:
        """The support log of one device (every byte, masked), or None without a log folder."""
        if self.log_dir is None:
            return None
        from drivers.device_log import DeviceLog, device_directory

        folder = device_directory(self.log_dir, till.store or str(till.till_id), till.label)
        max_bytes, backups = self.log_limits
        return DeviceLog(folder / f"{kind}.log", protocol, max_bytes=max_bytes, backups=backups)

    def close_devices(self, till: TillDevices) -> None:
        """Close the till's ports (at the end, or for a reconnect)."""
        self._close(till)

    def _close(self, till: TillDevices) -> None:
        for device in (till.terminal, till.reader):
            transport = getattr(device, "transport", None)
            if transport is not None:
                transport.close()
                if hasattr(transport.tap, "flush"):
                    transport.tap.flush()
        till.terminal = till.reader = None

    def _with_terminal(self, till: TillDevices, work: Callable[[Any], Any]) -> Any:
        """Run ``work`` on the terminal, marking it busy; a lost line is closed for a reconnect."""
        terminal = self.terminal(till)
        self._state(till, "card_terminal", "busy", None)
        try:
            result = work(terminal)
        except DeviceError as exc:
            self._state(till, "card_terminal", "error", str(exc))
            if isinstance(exc, DeviceDisconnected):
                self._state(till, "card_terminal", "disconnected", str(exc))
            terminal.transport.close()  # the next use reconnects (and registers again)
            till.terminal = None
            raise
        self._state(till, "card_terminal", "connected", None)
        return result

    # -- job handlers -----------------------------------------------------------------------

    def _charge(self, till: TillDevices) -> jobs.Handler:
        """Charge at the terminal. Nothing sent (terminal unreachable): failed, say so. Sent and
        then no conclusive answer: outcome unknown, resolved from the terminal's records. An
        attempt a dead device host left behind is such an unknown too: never charged again."""

        def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
            payment_id = payload["payment_id"]
            actor = f"terminal:{till.label}"
            with self.db.unit_of_work(readonly=True) as first:
                payment = first.session.get_one(Payment, payment_id)
                if payment.status != PaymentStatus.PENDING:
                    return
                asked, amount = payment.currency, payment.amount_minor
                interrupted = outcomes.attempt_started(payment) is not None
            if asked != till.terminal_currency:  # never a byte to the terminal
                cards.apply_charge(uow, payment_id, _wrong_currency(till, asked), actor)
                return
            if interrupted:
                outcomes.mark_unknown(uow, payment_id, "the device host stopped mid-payment", actor)
                return  # its resolution job asks the terminal next
            try:
                self.terminal(till)
                self.answer_open_questions(till)
            except DeviceError as exc:
                cards.apply_charge(uow, payment_id, _unreachable(till, exc), actor)
                return
            with self.db.unit_of_work() as first:
                try:
                    cards.begin_attempt(first, payment_id)
                except Conflict:
                    return  # the watch gave up on it before it was sent: it never will be
                first.commit()
            shown = self._shower(payment_id)
            try:
                result = self._with_terminal(till, lambda t: _charge(t, amount, shown))
            except DeviceError as exc:
                outcomes.mark_unknown(uow, payment_id, str(exc), actor)
                return
            outcome = _outcome(result, till.timezone)
            if outcome is None:
                outcomes.mark_unknown(uow, payment_id, "the terminal gave no result", actor)
                return
            outcomes.apply_answer(uow, payment_id, outcome, actor)

        return handle

    def _resolve(self, till: TillDevices) -> jobs.Handler:
        """Ask the terminal for its last receipt to settle the till's unknown payments; while it
        does not answer, the job is tried again later (a DeviceError)."""

        def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
            self.answer_open_questions(till)

        return handle

    def answer_open_questions(self, till: TillDevices) -> None:
        """Settle the till's unknown payments from the terminal's last receipt, before the
        terminal books anything else (after that, its last receipt no longer tells)."""
        with self.db.unit_of_work() as uow:
            outcomes.settle_never_sent(uow, till.till_id, f"terminal:{till.label}")
            asked = bool(outcomes.open_questions(uow, till.till_id)) or bool(
                refund_outcomes.open_questions(uow, till.till_id)
            )
            uow.commit()
        if not asked:
            return
        last = _outcome(self._with_terminal(till, lambda t: t.repeat_last_receipt()), till.timezone)
        actor = f"terminal:{till.label}"
        with self.db.unit_of_work() as uow:  # at most one of them is the newest attempt
            outcomes.resolve_from_receipt(uow, till.till_id, last, actor)
            refund_outcomes.resolve_from_receipt(uow, till.till_id, last, actor)
            uow.commit()

    def _shower(self, payment_id: str) -> Callable[[str], None]:
        def show(text: str) -> None:
            with self.db.unit_of_work() as uow:
                cards.show(uow, payment_id, text)
                uow.commit()

        return show

    def _refund(self, till: TillDevices) -> jobs.Handler:
        """Refund at the terminal. A terminal that cannot be reached leaves the refund
        requested, flagged for the manager and the cashier, and tried again until the watch
        fails it (nothing was sent); an attempt that may have reached the terminal without a
        conclusive answer makes it unknown, settled from the terminal's last receipt, never
        sent twice."""

        def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
            refund_id = payload["refund_id"]
            with self.db.unit_of_work(readonly=True) as first:
                payment_id = first.session.get_one(Refund, refund_id).payment_id
            with self._waiting(till, payment_id, refund_id):
                self._refund_at_terminal(till, uow, refund_id)
            self._answered(uow, till, payment_id, refund_id)

        return handle

    def _refund_at_terminal(self, till: TillDevices, uow: UnitOfWork, refund_id: str) -> None:
        self.answer_open_questions(till)
        with self.db.unit_of_work(readonly=True) as first:
            refund = first.session.get_one(Refund, refund_id)
            if refund.status != "requested":
                return
            amount, refund_currency = refund.amount_minor, refund.currency
        if refund_currency != till.terminal_currency:  # never a byte to the terminal
            refunds.record_bank_result(
                uow, refund_id=refund_id, succeeded=False, bank_refund_id=None,
                amount_minor=amount, currency=refund_currency,
                reason=_wrong_currency(till, refund_currency).message,
                actor=f"terminal:{till.label}",
            )  # fmt: skip
            return
        self.terminal(till)  # reachable before the attempt is recorded: else nothing was sent
        actor = f"terminal:{till.label}"
        with self.db.unit_of_work() as first:
            try:
                earlier = cards.begin_refund_attempt(first, refund_id)
            except Conflict:
                return  # the watch gave up on it before it was sent: it never will be
            first.commit()
        if earlier is not None:  # an earlier attempt may have refunded: ask, never redo
            why = "the device host stopped mid-refund"
            refund_outcomes.mark_unknown(uow, refund_id, why, actor)
            return  # its resolution job asks the terminal's last receipt next
        try:
            result = self._with_terminal(till, lambda t: t.refund(amount))
        except DeviceError as exc:
            refund_outcomes.mark_unknown(uow, refund_id, str(exc), actor)
            return
        outcome = _outcome(result, till.timezone)
        if outcome is None:
            refund_outcomes.mark_unknown(uow, refund_id, "the terminal gave no result", actor)
            return
        refunds.record_bank_result(
            uow,
            refund_id=refund_id,
            succeeded=outcome.approved,
            bank_refund_id=cards.refund_receipt_id(outcome.receipt_number),
            amount_minor=amount,
            currency=refund_currency,
            reason=None if outcome.approved else outcome.message,
            actor=f"terminal:{till.label}",
        )

    @contextmanager
    def _waiting(self, till: TillDevices, payment_id: str, refund_id: str | None) -> Iterator[None]:
        """A terminal that cannot be reached now: say so on the payment (in its own
        transaction, as the job's is rolled back), and let the job try again later."""
        try:
            yield
        except DeviceError as exc:
            with self.db.unit_of_work() as uow:
                cards.terminal_waited(
                    uow, payment_id, refund_id, str(exc), f"terminal:{till.label}"
                )
                uow.commit()
            raise

    def _answered(
        self, uow: UnitOfWork, till: TillDevices, payment_id: str, refund_id: str | None
    ) -> None:
        cards.terminal_answered(uow, payment_id, refund_id, f"terminal:{till.label}")

    def _reverse(self, till: TillDevices) -> jobs.Handler:
        def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
            refund_id = payload.get("refund_id")
            with self.db.unit_of_work(readonly=True) as first:
                payment = first.session.get_one(Payment, payload["payment_id"])
                receipt = (payment.card or {}).get("receipt_number")
                in_batch = payment.status == PaymentStatus.AUTHORISED
            actor = f"terminal:{till.label}"
            if not in_batch or receipt is None:  # closed meanwhile: a waiting refund fails
                cards.apply_reversal(uow, payload["payment_id"], None, actor, refund_id=refund_id)
                self._answered(uow, till, payload["payment_id"], refund_id)
                return
            with self._waiting(till, payload["payment_id"], refund_id):
                outcome = self._reverse_at_terminal(
                    till, payload["payment_id"], int(receipt), refund_id
                )
            if outcome is None:  # the refund it carries out is settled apart (or was given up)
                self._answered(uow, till, payload["payment_id"], refund_id)
                return
            cards.apply_reversal(uow, payload["payment_id"], outcome, actor, refund_id=refund_id)
            self._answered(uow, till, payload["payment_id"], refund_id)

        return handle

    def _reverse_at_terminal(
        self, till: TillDevices, payment_id: str, receipt: int, refund_id: str | None = None
    ) -> cards.TerminalOutcome | None:
        """Reverse the receipt; after an interrupted attempt, first see whether it did. A
        reversal carrying out a refund that may have reached the terminal without a conclusive
        answer makes the refund unknown (None: nothing more to apply here)."""
        self.answer_open_questions(till)
        self.terminal(till)  # reachable before the attempt is recorded
        with self.db.unit_of_work() as first:
            try:
                earlier = cards.begin_reversal_attempt(first, payment_id, refund_id)
            except Conflict:
                return None  # its refund was given up before it was sent: never sent now
            first.commit()
        if refund_id is not None:
            return self._reverse_for_refund(till, receipt, refund_id, earlier is not None)
        if earlier is not None:
            last = self._with_terminal(till, lambda t: t.repeat_last_receipt())
            with self.db.unit_of_work(readonly=True) as uow:
                done = cards.recovered_reversal(
                    uow, payment_id, earlier, _outcome(last, till.timezone)
                )
            if done is not None:
                return done
        outcome = _outcome(self._with_terminal(till, lambda t: t.reverse(receipt)), till.timezone)
        if outcome is None:
            raise DeviceError(f"the terminal at till {till.label} gave no reversal result")
        if earlier is not None and outcome.result_code == ALREADY_REVERSED:
            # The attempt whose answer was lost reversed it (or someone did at the terminal):
            # either way the receipt is out of the batch, and the payment with it.
            return replace(outcome, approved=True, message="Reversed (the terminal had done it)")
        return outcome

    def _reverse_for_refund(
        self, till: TillDevices, receipt: int, refund_id: str, interrupted: bool
    ) -> cards.TerminalOutcome | None:
        """The reversal that carries out a refund: any attempt without a conclusive answer
        makes the refund unknown, settled from the terminal's records, never sent twice."""
        actor = f"terminal:{till.label}"
        why = "the device host stopped mid-reversal"
        outcome = None
        if not interrupted:
            try:
                outcome = _outcome(
                    self._with_terminal(till, lambda t: t.reverse(receipt)), till.timezone
                )
                why = "the terminal gave no reversal result"
            except DeviceError as exc:
                why = str(exc)
        if outcome is None:
            with self.db.unit_of_work() as uow:
                refund_outcomes.mark_unknown(uow, refund_id, why, actor)
                uow.commit()
        return outcome

    def _reverse_before_close(self, till: TillDevices) -> None:
        """Cancels waiting (sent without an answer, or never sent) and refunds' reversals sent
        without an answer are carried out before the close, each committed on its own: else
        the batch would capture a payment the cashier cancelled or the terminal may have
        reversed (:func:`cards.reversals_before_close`). Their jobs then find nothing to do."""
        with self.db.unit_of_work(readonly=True) as uow:
            waiting = cards.reversals_before_close(uow, till.till_id)
        reverse = self._reverse(till)
        for payload in waiting:
            with self.db.unit_of_work() as uow:
                reverse(uow, payload)
                uow.commit()

    def _end_of_day(self, till: TillDevices) -> jobs.Handler:
        def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
            self.answer_open_questions(till)
            self._reverse_before_close(till)
            result = self._with_terminal(till, lambda t: t.end_of_day())
            if not result.approved:
                raise DeviceError(f"end of day at till {till.label} failed: {result.message}")
            end_of_day.close_batch(
                uow,
                till.till_id,
                terminal_totals(result),
                till.terminal_currency,
                f"terminal:{till.label}",
            )
            if payload.get("scheduled") and till.end_of_day_at is not None:
                end_of_day.schedule_end_of_day(
                    uow,
                    till.till_id,
                    till.end_of_day_at,
                    till.timezone,
                    after=date.fromisoformat(payload["day"]),
                )

        return handle

    # -- NFC --------------------------------------------------------------------------------

    def _poll_reader(self, till: TillDevices) -> bool:
        try:
            event = self.reader(till).poll(timeout=0.1)
        except DeviceError as exc:
            self._state(till, "nfc_reader", "disconnected", str(exc))
            self._drop(till, "reader")
            return False
        if event is None:
            return False
        token = self.identity_token(event)
        now = utcnow()
        if till.last_tap and till.last_tap[0] == token and now - till.last_tap[1] < TAP_DEBOUNCE:
            return False
        till.last_tap = (token, now)
        with self.db.unit_of_work() as uow:
            uow.session.add(
                CustomerTap(
                    till_id=till.till_id,
                    token=token,
                    kind=event.kind,
                    seen_at=now,
                    applications=[label for _aid, label in getattr(event, "applications", ())],
                )
            )
            uow.commit()
        return True

    def tag_token(self, uid: bytes) -> str:
        """A keyed hash of a tag's UID: stable per customer, useless without the key."""
        return hmac.new(self.token_key, uid, hashlib.sha256).hexdigest()

    def identity_token(self, event: Any) -> str:
        """Who tapped, as a keyed hash of something stable, or "" for nobody we can know.

        A phone or bank card (ISO-DEP) names a customer only through Kassa's loyalty
        application (its member id); its UID is random at every tap (ISO/IEC 14443-3: 4 bytes
        starting 08), or, when fixed, is the bank's card, not our customer's. Store-issued
        loyalty cards (MIFARE, NTAG) with a fixed UID are known by their UID's keyed hash.
        """
        member_id = getattr(event, "member_id", None)
        if member_id:
            return hmac.new(
                self.token_key, b"member\x1f" + member_id.encode(), "sha256"
            ).hexdigest()
        if event.kind == "iso_dep" or getattr(event, "random_uid", False):
            return UNIDENTIFIED_TAP
        return self.tag_token(bytes(event.uid))

    # -- heartbeat --------------------------------------------------------------------------

    def _state(self, till: TillDevices, kind: str, state: str, error: str | None) -> None:
        before = till.states.get(kind)
        till.states[kind] = (
            state,
            error or (before[1] if before and state != "connected" else None),
        )
        if before is None or before[0] != state:
            self._write_status(till, kind)

    def heartbeat(self) -> None:
        for till in self.tills:
            for kind, url in (
                ("card_terminal", till.terminal_url),
                ("nfc_reader", till.reader_url),
            ):
                if url:
                    till.states.setdefault(kind, ("disconnected", None))
                    self._write_status(till, kind)

    def _write_status(self, till: TillDevices, kind: str) -> None:
        state, error = till.states[kind]
        url = till.terminal_url if kind == "card_terminal" else till.reader_url
        with self.db.unit_of_work() as uow:
            row = uow.session.scalar(
                select(DeviceStatus)
                .where(DeviceStatus.till_id == till.till_id, DeviceStatus.kind == kind)
                .with_for_update()
            )
            if row is None:
                row = DeviceStatus(till_id=till.till_id, kind=kind)
                uow.session.add(row)
            row.url, row.state, row.host, row.last_seen_at = url, state, self.host, utcnow()
            if kind == "card_terminal":
                row.currency = till.terminal_currency
            if error:
                row.last_error = scrub_card_numbers(error)
            uow.commit()


def _charge(terminal: Any, amount_minor: int, show: Callable[[str], None]) -> Any:
    terminal.on_status = show
    try:
        return terminal.charge(amount_minor)
    finally:
        terminal.on_status = None


def _unreachable(till: TillDevices, error: DeviceError) -> cards.TerminalOutcome:
    """The answer to a charge that never reached the terminal: nothing was charged."""
    return cards.TerminalOutcome(
        approved=False,
        result_code=-1,
        message=cards.NOT_REACHED,  # what went wrong goes in the history, not on the screen
        extra={"error": str(error)},
    )


def _wrong_currency(till: TillDevices, asked: str) -> cards.TerminalOutcome:
    """The answer, without asking the terminal, to a charge or refund in another currency."""
    return cards.TerminalOutcome(
        approved=False,
        result_code=0x6F,  # ZVT "wrong currency"
        message=say(cards.WRONG_CURRENCY, terminal=till.terminal_currency, asked=asked),
    )


def terminal_totals(result: Any) -> end_of_day.TerminalTotals:
    """A driver's End-of-Day result as the batch's totals."""
    totals = result.totals
    return end_of_day.TerminalTotals(
        total_minor=totals.total_minor if totals else result.amount_minor,
        count=totals.count if totals else None,
        count_saturated=bool(totals and totals.saturated),
        by_card_type=tuple(
            {"card_type": t.card_type, "count": t.count, "amount_minor": t.amount_minor}
            for t in (totals.by_card_type if totals else ())
        ),
        receipt_text=str(result.receipt_text or ""),
        receipts=(
            (totals.receipt_from, totals.receipt_to)
            if totals and totals.receipt_from is not None and totals.receipt_to is not None
            else None
        ),
    )


def _outcome(result: Any, timezone: str = "UTC") -> cards.TerminalOutcome | None:
    """A driver's CardResult in the services' words (None stays None)."""
    if result is None:
        return None
    stamp = getattr(result, "timestamp", None)
    if isinstance(stamp, datetime) and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)
    return cards.TerminalOutcome(
        approved=bool(result.approved),
        result_code=int(result.result_code),
        message=str(result.message),
        amount_minor=getattr(result, "amount_minor", None),
        receipt_number=getattr(result, "receipt_number", None),
        trace_number=getattr(result, "trace_number", None),
        terminal_id=getattr(result, "terminal_id", None),
        card_name=getattr(result, "card_name", None),
        masked_pan=getattr(result, "masked_pan", None),
        aid=getattr(result, "aid", None),
        timestamp=stamp if isinstance(stamp, datetime) else None,
        receipt_text=str(getattr(result, "receipt_text", "") or ""),
    )
