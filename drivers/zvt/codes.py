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


def N_(sentence: str) -> str:
    """Marks a sentence for Kassa's catalogues (``make translations`` extracts ``N_``) without
    translating it: the driver speaks English, the cashier screen shows it in its language."""
    return sentence


RESULT_CODES: dict[int, str] = {
    0x00: N_("no error"),
    0x64: N_("card not readable (LRC-/parity-error)"),
    0x65: N_("card-data not present (neither track-data nor chip found)"),
    0x66: N_("processing-error (also for problems with card-reader mechanism)"),
    0x67: N_("function not permitted for ec- and Maestro-cards"),
    0x68: N_("function not permitted for credit- and tank-cards"),
    0x6A: N_("turnover-file full"),
    0x6B: N_("function deactivated (PT not registered)"),
    0x6C: N_("abort via timeout or abort-key"),
    0x6E: N_("card in blocked-list"),
    0x6F: N_("wrong currency"),
    0x71: N_("credit not sufficient (chip-card)"),
    0x72: N_("chip error"),
    0x73: N_("card-data incorrect (e.g. country-key check, checksum-error)"),
    0x74: N_("DUKPT engine exhausted"),
    0x75: N_("text not authentic"),
    0x76: N_("PAN not in white list"),
    0x77: N_("end-of-day batch not possible"),
    0x78: N_("card expired"),
    0x79: N_("card not yet valid"),
    0x7A: N_("card unknown"),
    0x7B: N_("fallback to magnetic stripe for girocard not possible"),
    0x7C: N_("fallback to magnetic stripe not possible"),
    0x7D: N_("communication error (communication module does not answer or is not present)"),
    0x7E: N_("fallback to magnetic stripe not possible, debit advice possible"),
    0x83: N_("function not possible"),
    0x85: N_("key missing"),
    0x89: N_("PIN-pad defective"),
    0x9A: N_("ZVT protocol error (e.g. parsing error, mandatory message element missing)"),
    0x9B: N_("error from dial-up/communication fault"),
    0x9C: N_("please wait"),
    0xA0: N_("receiver not ready"),
    0xA1: N_("remote station does not respond"),
    0xA3: N_("no connection"),
    0xA4: N_("submission of Geldkarte not possible"),
    0xA5: N_("function not allowed due to PCI-DSS/P2PE rules"),
    0xB1: N_("memory full"),
    0xB2: N_("merchant-journal full"),
    0xB4: N_("already reversed"),
    0xB5: N_("reversal not possible"),
    0xB7: N_("pre-authorisation incorrect (amount too high) or amount wrong"),
    0xB8: N_("error pre-authorisation"),
    0xBF: N_("voltage supply too low (external power supply)"),
    0xC0: N_("card locking mechanism defective"),
    0xC1: N_("merchant-card locked"),
    0xC2: N_("diagnosis required"),
    0xC3: N_("maximum amount exceeded"),
    0xC4: N_("card-profile invalid; new card-profiles must be loaded"),
    0xC5: N_("payment method not supported"),
    0xC6: N_("currency not applicable"),
    0xC8: N_("amount too small"),
    0xC9: N_("max. transaction-amount too small"),
    0xCB: N_("function only allowed in EURO"),
    0xCC: N_("printer not ready"),
    0xCD: N_("cashback not possible"),
    0xD2: N_("function not permitted for service-cards/bank-customer-cards"),
    0xDC: N_("card inserted"),
    0xDD: N_("error during card-eject"),
    0xDE: N_("error during card-insertion"),
    0xE0: N_("remote-maintenance activated"),
    0xE2: N_("card-reader does not answer / card-reader defective"),
    0xE3: N_("shutter closed"),
    0xE4: N_("terminal activation required"),
    0xE7: N_("min. one goods-group not found"),
    0xE8: N_("no goods-groups-table loaded"),
    0xE9: N_("restriction-code not permitted"),
    0xEA: N_("card-code not permitted"),
    0xEB: N_("function not executable (PIN-algorithm unknown)"),
    0xEC: N_("PIN-processing not possible"),
    0xED: N_("PIN-pad defective"),
    0xF0: N_("open end-of-day batch present"),
    0xF1: N_("ec-cash/Maestro offline error"),
    0xF5: N_("OPT-error"),
    0xF6: N_("OPT-data not available (OPT personalisation required)"),
    0xFA: N_("error transmitting offline-transactions (clearing error)"),
    0xFB: N_("turnover data-set defective"),
    0xFC: N_("necessary device not present or defective"),
    0xFD: N_("baudrate not supported"),
    0xFE: N_("register unknown"),
    0xFF: N_("system error (other/unknown error), see TLV tags 1F16 and 1F17"),
}

# Codes 01–63 hex (1–99) come from the network operator; the common ones are ISO 8583's.
HOST_CODES: dict[int, str] = {
    3: N_("invalid merchant"),
    4: N_("pick up card"),
    5: N_("do not honour"),
    12: N_("invalid transaction"),
    13: N_("invalid amount"),
    14: N_("invalid card number"),
    30: N_("format error"),
    33: N_("card expired"),
    41: N_("card reported lost"),
    43: N_("card reported stolen"),
    51: N_("insufficient funds"),
    54: N_("card expired"),
    55: N_("incorrect PIN"),
    56: N_("card not on file"),
    57: N_("transaction not permitted to cardholder"),
    58: N_("transaction not permitted at this terminal"),
    61: N_("amount limit exceeded"),
    62: N_("restricted card"),
    65: N_("withdrawal count exceeded"),
    75: N_("PIN tries exceeded"),
    91: N_("card issuer not reachable"),
    96: N_("system malfunction at the host"),
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


# The sentences around a code number, marked like the tables' (the number itself stays).
HOST_DECLINED = N_("declined by the card issuer or network (host code %(code)s: %(reason)s)")
HOST_CODE_UNLISTED = N_("see the acquirer's code list")
UNKNOWN_RESULT = N_("unknown result code %(code)s")


def result_message(code: int) -> str:
    """A sentence for a result code (BMP 27, Abort 06 1E or a negative 84 xx)."""
    if code in RESULT_CODES:
        return RESULT_CODES[code]
    if 0x01 <= code <= 0x63:
        reason = HOST_CODES.get(code, HOST_CODE_UNLISTED)
        return HOST_DECLINED % {"code": f"{code:02d}", "reason": reason}
    return UNKNOWN_RESULT % {"code": f"{code:02X}"}


def status_message(code: int) -> str:
    """A sentence for an intermediate status (04 FF) the cashier can show the customer."""
    return INTERMEDIATE_STATUS.get(code, f"Terminal status {code:02X}")
