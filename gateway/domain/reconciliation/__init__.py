"""Reconciliation: match settlement-file lines to Kassa's payments and refunds (pure domain).

``reconcile(payments, refunds, lines, fees=…, as_of=…)`` judges every settleable payment, every
refund and every bank line exactly once; see ``matching`` for the order of the rules and
``model`` for the values and outcomes.
"""

from gateway.domain.reconciliation.matching import reconcile
from gateway.domain.reconciliation.model import (
    SETTLEABLE,
    BankLine,
    DaySummary,
    FeeRate,
    FeeSchedule,
    KassaPayment,
    KassaRefund,
    ManualDecision,
    Outcome,
    Reconciliation,
    Result,
)

__all__ = [
    "SETTLEABLE",
    "BankLine",
    "DaySummary",
    "FeeRate",
    "FeeSchedule",
    "KassaPayment",
    "KassaRefund",
    "ManualDecision",
    "Outcome",
    "Reconciliation",
    "Result",
    "reconcile",
]
