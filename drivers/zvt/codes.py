"""Codes a ZVT terminal reports, with sentences a person can read (PA00P015 13.08).

==============================  ==========================  =================================
table                           where it is used            source
==============================  ==========================  =================================
:data:`RESULT_CODES`            BMP 27, Abort 06 1E, 84 xx  chapter 10 "Error-Messages"
:data:`HOST_CODES`              result codes 01–63 hex      the acquirer's (ISO 8583) codes
:data:`INTERMEDIATE_STATUS`     04 FF                       §3.7, Table 17
:data:`TERMINAL_STATUS`         Completion after 05 01      chapter 11
==============================  ==========================  =================================
"""

from __future__ import annotations

RESULT_CODES: dict[int, str] = {
    0x00: "no error",
    0x64: "card not readable (LRC-/parity-error)",
    0x65: "card-data not present (neither track-data nor chip found)",
    0x66: "processing-error (also for problems with card-reader mechanism)",
    0x67: "function not permitted for ec- and Maestro-cards",
    0x68: "function not permitted for credit- and tank-cards",
    0x6A: "turnover-file full",
    0x6B: "function deactivated (PT not registered)",
    0x6C: "abort via timeout or abort-key",
    0x6E: "card in blocked-list",
    0x6F: "wrong currency",
    0x71: "credit not sufficient (chip-card)",
    0x72: "chip error",
    0x73: "card-data incorrect (e.g. country-key check, checksum-error)",
    0x74: "DUKPT engine exhausted",
    0x75: "text not authentic",
    0x76: "PAN not in white list",
    0x77: "end-of-day batch not possible",
    0x78: "card expired",
    0x79: "card not yet valid",
    0x7A: "card unknown",
    0x7B: "fallback to magnetic stripe for girocard not possible",
    0x7C: "fallback to magnetic stripe not possible",
    0x7D: "communication error (communication module does not answer or is not present)",
    0x7E: "fallback to magnetic stripe not possible, debit advice possible",
    0x83: "function not possible",
    0x85: "key missing",
    0x89: "PIN-pad defective",
    0x9A: "ZVT protocol error (e.g. parsing error, mandatory message element missing)",
    0x9B: "error from dial-up/communication fault",
    0x9C: "please wait",
    0xA0: "receiver not ready",
    0xA1: "remote station does not respond",
    0xA3: "no connection",
    0xA4: "submission of Geldkarte not possible",
    0xA5: "function not allowed due to PCI-DSS/P2PE rules",
    0xB1: "memory full",
    0xB2: "merchant-journal full",
    0xB4: "already reversed",
    0xB5: "reversal not possible",
    0xB7: "pre-authorisation incorrect (amount too high) or amount wrong",
    0xB8: "error pre-authorisation",
    0xBF: "voltage supply too low (external power supply)",
    0xC0: "card locking mechanism defective",
    0xC1: "merchant-card locked",
    0xC2: "diagnosis required",
    0xC3: "maximum amount exceeded",
    0xC4: "card-profile invalid; new card-profiles must be loaded",
    0xC5: "payment method not supported",
    0xC6: "currency not applicable",
    0xC8: "amount too small",
    0xC9: "max. transaction-amount too small",
    0xCB: "function only allowed in EURO",
    0xCC: "printer not ready",
    0xCD: "cashback not possible",
    0xD2: "function not permitted for service-cards/bank-customer-cards",
    0xDC: "card inserted",
    0xDD: "error during card-eject",
    0xDE: "error during card-insertion",
    0xE0: "remote-maintenance activated",
    0xE2: "card-reader does not answer / card-reader defective",
    0xE3: "shutter closed",
    0xE4: "terminal activation required",
    0xE7: "min. one goods-group not found",
    0xE8: "no goods-groups-table loaded",
    0xE9: "restriction-code not permitted",
    0xEA: "card-code not permitted",
    0xEB: "function not executable (PIN-algorithm unknown)",
    0xEC: "PIN-processing not possible",
    0xED: "PIN-pad defective",
    0xF0: "open end-of-day batch present",
    0xF1: "ec-cash/Maestro offline error",
    0xF5: "OPT-error",
    0xF6: "OPT-data not available (OPT personalisation required)",
    0xFA: "error transmitting offline-transactions (clearing error)",
    0xFB: "turnover data-set defective",
    0xFC: "necessary device not present or defective",
    0xFD: "baudrate not supported",
    0xFE: "register unknown",
    0xFF: "system error (other/unknown error), see TLV tags 1F16 and 1F17",
}

# Codes 01–63 hex (1–99) come from the network operator; the common ones are ISO 8583's.
HOST_CODES: dict[int, str] = {
    3: "invalid merchant",
    4: "pick up card",
    5: "do not honour",
    12: "invalid transaction",
    13: "invalid amount",
    14: "invalid card number",
    30: "format error",
    33: "card expired",
    41: "card reported lost",
    43: "card reported stolen",
    51: "insufficient funds",
    54: "card expired",
    55: "incorrect PIN",
    56: "card not on file",
    57: "transaction not permitted to cardholder",
    58: "transaction not permitted at this terminal",
    61: "amount limit exceeded",
    62: "restricted card",
    65: "withdrawal count exceeded",
    75: "PIN tries exceeded",
    91: "card issuer not reachable",
    96: "system malfunction at the host",
}

INTERMEDIATE_STATUS: dict[int, str] = {
    0x00: "PT is waiting for amount-confirmation",
    0x01: "Please watch PIN-Pad",
    0x02: "Please watch PIN-Pad",
    0x03: "Not accepted",
    0x04: "PT is waiting for response from FEP",
    0x05: "PT is sending auto-reversal",
    0x06: "PT is sending post-bookings",
    0x07: "Card not admitted",
    0x08: "Card unknown / undefined",
    0x09: "Expired card",
    0x0A: "Insert card",
    0x0B: "Please remove card!",
    0x0C: "Card not readable",
    0x0D: "Processing error",
    0x0E: "Please wait...",
    0x0F: "PT is commencing an automatic end-of-day batch",
    0x10: "Invalid card",
    0x11: "Balance display",
    0x12: "System malfunction",
    0x13: "Payment not possible",
    0x14: "Credit not sufficient",
    0x15: "Incorrect PIN",
    0x16: "Limit not sufficient",
    0x17: "Please wait...",
    0x18: "PIN try limit exceeded",
    0x19: "Card-data incorrect",
    0x1A: "Service-mode",
    0x1B: "Approved. Please fill-up",
    0x1C: "Approved. Please take goods",
    0x1D: "Declined",
    0x26: "PT is waiting for input of the mobile-number",
    0x27: "PT is waiting for repeat of mobile number",
    0x28: "Currency selection, please wait...",
    0x29: "Language selection, please wait...",
    0x2A: "For loading please insert card",
    0x2B: "Emergency transaction, please wait",
    0x2C: "Application selection, please wait",
    0x68: "PT has detected customer card insertion",
    0x69: "Please select DCC",
    0xC7: "PT is waiting for input of the mileage",
    0xC8: "PT is waiting for cashier",
    0xC9: "PT is commencing an automatic diagnosis",
    0xCA: "PT is commencing an automatic initialisation",
    0xCB: "Merchant-journal full",
    0xCC: "Debit advice not possible, PIN required",
    0xD2: "Connecting dial-up",
    0xD3: "Dial-up connection made",
    0xE0: "PT is waiting for application-selection",
    0xE1: "PT is waiting for language-selection",
    0xE2: "PT requests to use the cleaning card",
    0xF1: "Offline",
    0xF2: "Online",
    0xF3: "Offline transaction",
}
# 41–5D hex repeat 01–1D with "Please remove card!" added (Table 17).
INTERMEDIATE_STATUS.update(
    {
        code | 0x40: f"{INTERMEDIATE_STATUS[code]} Please remove card!"
        for code in range(0x01, 0x1E)
        if code not in (0x0A, 0x0B)
    }
)
INTERMEDIATE_STATUS[0x4B] = "Please remove card!"

TERMINAL_STATUS: dict[int, str] = {
    0x00: "PT ready",
    0x51: "Initialisation required",
    0x62: "Date/time incorrect",
    0x9C: "Please wait (e.g. software-update still running)",
    0x9D: "Partial issue of goods",
    0xB1: "Memory full",
    0xB2: "Merchant-journal full",
    0xBF: "Voltage supply too low",
    0xC0: "Card locking mechanism defect",
    0xC1: "Merchant card locked",
    0xC2: "Diagnosis required",
    0xC4: "Card-profile invalid",
    0xCC: "Printer not ready",
    0xDC: "Card inserted",
    0xDF: "Out-of-order",
    0xE0: "Remote-maintenance activated",
    0xE1: "Card not completely removed",
    0xE2: "Card-reader does not answer / card-reader defective",
    0xE3: "Shutter closed",
    0xE4: "Terminal activation required",
    0xF0: "Reconciliation required",
    0xF6: "OPT-data not available",
}


def result_message(code: int) -> str:
    """A sentence for a result code (BMP 27, Abort 06 1E or a negative 84 xx)."""
    if code in RESULT_CODES:
        return RESULT_CODES[code]
    if 0x01 <= code <= 0x63:
        reason = HOST_CODES.get(code, "see the acquirer's code list")
        return f"declined by the card issuer or network (host code {code:02d}: {reason})"
    return f"unknown result code {code:02X}"


def status_message(code: int) -> str:
    """A sentence for an intermediate status (04 FF) the cashier can show the customer."""
    return INTERMEDIATE_STATUS.get(code, f"Terminal status {code:02X}")
