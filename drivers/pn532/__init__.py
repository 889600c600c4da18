"""PN532 NFC reader over HSU (UART): frames → link protocol → :class:`NfcReader`."""

from drivers.pn532.protocol import Link, NoResponse
from drivers.pn532.reader import FirmwareVersion, NfcReader, TagEvent, Target

__all__ = ["FirmwareVersion", "Link", "NfcReader", "NoResponse", "TagEvent", "Target"]
