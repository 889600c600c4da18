"""PN532 NFC reader over HSU (UART): frames → link protocol → :class:`NfcReader`.

The link and the reader (and with them pyserial) are imported on first use of a name below, so
the frame codec alone (``kassa pn532 decode``) starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivers.pn532.protocol import Link, NoResponse
    from drivers.pn532.reader import FirmwareVersion, NfcReader, TagEvent, Target

_HOMES = {
    "Link": "drivers.pn532.protocol",
    "NoResponse": "drivers.pn532.protocol",
    "FirmwareVersion": "drivers.pn532.reader",
    "NfcReader": "drivers.pn532.reader",
    "TagEvent": "drivers.pn532.reader",
    "Target": "drivers.pn532.reader",
}
__all__ = ["FirmwareVersion", "Link", "NfcReader", "NoResponse", "TagEvent", "Target"]


def __getattr__(name: str) -> Any:  # PEP 562: the device layer loads when it is asked for
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
