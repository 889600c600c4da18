"""ISO 20022 settlement files: camt.053.001.08 statement and camt.054.001.08 notification.

Both carry one entry (``Ntry``) per settlement batch, booked on the settlement date, for the
net amount credited (or debited, when refunds outweigh the day's sales). The entry's details
hold the batch (``Btch``) and one ``TxDtls`` per payment or refund:

==========================  ========================================================
``Refs/EndToEndId``         the payment's reference label (EMV tag 62-05)
``Refs/AcctSvcrRef``        ``bank_payment_id`` (payments) or ``bank_refund_id`` (refunds)
``Refs/InstrId``            the gateway's ``refund_id`` (refunds only)
``Refs/TxId``               ``bank_payment_id``
``Amt`` + ``CdtDbtInd``     net amount of the line (payment less fee, or refund)
``AmtDtls/InstdAmt``        gross amount the wallet paid or got back
``AmtDtls/TxAmt``           net amount, as ``Amt``
``Chrgs``                   the fee, included in (deducted from) ``Amt``
``RmtInf/Ustrd``            reference, bill number and terminal, for people
==========================  ========================================================

Amounts are never negative in ISO 20022 (``ActiveOrHistoricCurrencyAndAmount`` has
``minInclusive 0``); the sign lives in ``CdtDbtInd``. Amounts carry the currency's decimals.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from sandbox_bank.settlement import SettlementBatch, SettlementLine

CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
CAMT054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
# Bank transaction code (ISO external code set): Payments / Merchant Card Transactions /
# Point-of-Sale Payment — the family acquirers use for settled acceptance batches.
BANK_TRANSACTION_CODE = ("PMNT", "MCRD", "POSP")


def camt053(batch: SettlementBatch) -> str:
    """The end-of-day statement of the merchant's settlement account (BkToCstmrStmt)."""
    xml = _Xml(CAMT053)
    message = xml.sub(xml.root, "BkToCstmrStmt")
    xml.group_header(message, batch, "053")
    statement = xml.sub(message, "Stmt")
    xml.account_header(statement, batch)
    xml.balance(statement, "OPBD", batch.opening_balance_minor, batch)
    xml.balance(statement, "CLBD", batch.closing_balance_minor, batch)
    if batch.lines:
        xml.entry(statement, batch)
    return xml.text()


def camt054(batch: SettlementBatch) -> str:
    """The debit/credit notification of the same batch (BkToCstmrDbtCdtNtfctn)."""
    xml = _Xml(CAMT054)
    message = xml.sub(xml.root, "BkToCstmrDbtCdtNtfctn")
    xml.group_header(message, batch, "054")
    notification = xml.sub(message, "Ntfctn")
    xml.account_header(notification, batch)
    if batch.lines:
        xml.entry(notification, batch)
    return xml.text()


def _indicator(minor: int) -> str:
    return "DBIT" if minor < 0 else "CRDT"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Xml:
    """An ElementTree document in one namespace, with the camt building blocks."""

    def __init__(self, namespace: str) -> None:
        # Unqualified tags under a default xmlns: ElementTree's default_namespace option
        # refuses the unqualified Ccy attributes, and this serialises the same document.
        self.root = ET.Element("Document", xmlns=namespace)

    def sub(
        self, parent: ET.Element, tag: str, text: str | None = None, **attrs: str
    ) -> ET.Element:
        element = ET.SubElement(parent, tag, attrs)
        if text is not None:
            element.text = text
        return element

    def path(self, parent: ET.Element, tags: str, text: str | None = None) -> ET.Element:
        """Nested elements in one go: ``path(p, "BookgDt/Dt", "2026-11-25")``."""
        *outer, last = tags.split("/")
        for tag in outer:
            parent = self.sub(parent, tag)
        return self.sub(parent, last, text)

    def amount(self, parent: ET.Element, tag: str, minor: int, batch: SettlementBatch) -> None:
        self.sub(parent, tag, batch.amount(abs(minor)), Ccy=batch.currency)

    def text(self) -> str:
        ET.indent(self.root)
        body = ET.tostring(self.root, encoding="unicode")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"

    def group_header(self, message: ET.Element, batch: SettlementBatch, kind: str) -> None:
        header = self.sub(message, "GrpHdr")
        self.sub(header, "MsgId", f"{batch.settlement_id}-{kind}")
        self.sub(header, "CreDtTm", _timestamp(batch.created_at))

    def account_header(self, parent: ET.Element, batch: SettlementBatch) -> None:
        self.sub(parent, "Id", batch.settlement_id)
        self.sub(parent, "CreDtTm", _timestamp(batch.created_at))
        period = self.sub(parent, "FrToDt")
        day = batch.settlement_date.isoformat()
        self.sub(period, "FrDtTm", f"{day}T00:00:00Z")
        self.sub(period, "ToDtTm", f"{day}T23:59:59Z")
        account = self.sub(parent, "Acct")
        self.path(account, "Id/IBAN", batch.iban)
        self.sub(account, "Ccy", batch.currency)
        self.path(account, "Ownr/Nm", batch.merchant_name)

    def balance(self, statement: ET.Element, code: str, minor: int, batch: SettlementBatch) -> None:
        balance = self.sub(statement, "Bal")
        self.path(balance, "Tp/CdOrPrtry/Cd", code)
        self.amount(balance, "Amt", minor, batch)
        self.sub(balance, "CdtDbtInd", _indicator(minor))
        self.path(balance, "Dt/Dt", batch.settlement_date.isoformat())

    def entry(self, parent: ET.Element, batch: SettlementBatch) -> None:
        day = batch.settlement_date.isoformat()
        entry = self.sub(parent, "Ntry")
        self.sub(entry, "NtryRef", batch.settlement_id)
        self.amount(entry, "Amt", batch.net_minor, batch)
        self.sub(entry, "CdtDbtInd", _indicator(batch.net_minor))
        self.path(entry, "Sts/Cd", "BOOK")
        self.path(entry, "BookgDt/Dt", day)
        self.path(entry, "ValDt/Dt", day)
        self.sub(entry, "AcctSvcrRef", batch.settlement_id)
        self.bank_transaction_code(entry)
        self.charges(entry, batch.fees_minor, batch)
        details = self.sub(entry, "NtryDtls")
        self.batch(details, batch)
        for line in batch.lines:
            self.transaction(details, line, batch)
        self.sub(
            entry,
            "AddtlNtryInf",
            f"Kassa sandbox settlement {day}: {len(batch.payments)} payments,"
            f" {len(batch.refunds)} refunds",
        )

    def bank_transaction_code(self, entry: ET.Element) -> None:
        domain, family, sub_family = BANK_TRANSACTION_CODE
        code = self.path(entry, "BkTxCd/Domn")
        self.sub(code, "Cd", domain)
        fmly = self.sub(code, "Fmly")
        self.sub(fmly, "Cd", family)
        self.sub(fmly, "SubFmlyCd", sub_family)

    def charges(self, parent: ET.Element, fee: int, batch: SettlementBatch) -> None:
        if fee == 0:
            return
        charges = self.sub(parent, "Chrgs")
        self.amount(charges, "TtlChrgsAndTaxAmt", fee, batch)
        record = self.sub(charges, "Rcrd")
        self.amount(record, "Amt", fee, batch)
        self.sub(record, "CdtDbtInd", "DBIT")
        self.sub(record, "ChrgInclInd", "true")

    def batch(self, details: ET.Element, batch: SettlementBatch) -> None:
        info = self.sub(details, "Btch")
        self.sub(info, "PmtInfId", batch.settlement_id)
        self.sub(info, "NbOfTxs", str(len(batch.lines)))
        self.amount(info, "TtlAmt", batch.net_minor, batch)
        self.sub(info, "CdtDbtInd", _indicator(batch.net_minor))

    def transaction(
        self, details: ET.Element, line: SettlementLine, batch: SettlementBatch
    ) -> None:
        tx = self.sub(details, "TxDtls")
        refs = self.sub(tx, "Refs")
        self.sub(refs, "AcctSvcrRef", line.transaction_id)
        if line.refund_id:
            self.sub(refs, "InstrId", line.refund_id)
        self.sub(refs, "EndToEndId", line.reference)
        self.sub(refs, "TxId", line.bank_payment_id)
        self.amount(tx, "Amt", line.net_minor, batch)
        self.sub(tx, "CdtDbtInd", _indicator(line.net_minor))
        amounts = self.sub(tx, "AmtDtls")
        self.amount(self.sub(amounts, "InstdAmt"), "Amt", line.amount_minor, batch)
        self.amount(self.sub(amounts, "TxAmt"), "Amt", line.net_minor, batch)
        self.charges(tx, line.fee_minor, batch)
        self.path(tx, "RmtInf/Ustrd", line.remittance[:140])
