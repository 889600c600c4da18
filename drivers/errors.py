"""The drivers' exception hierarchy: each says what happened at the device and what to do."""

from __future__ import annotations


class DeviceError(Exception):
    """Base of every error a driver raises on purpose."""


class DeviceUnavailable(DeviceError):
    """The port could not be opened (missing, busy with another process, no permission)."""


class DeviceDisconnected(DeviceError):
    """The device went away while in use (unplugged, the TCP peer closed)."""


class DeviceTimeout(DeviceError):
    """The device did not answer within the protocol's time limit."""


class ProtocolError(DeviceError):
    """Bytes that break the protocol: bad checksum, wrong length, an unexpected message."""


class DecodeError(ProtocolError):
    """Bytes that cannot be decoded (used by codecs and the ``kassa … decode`` commands)."""


class DeviceBusy(DeviceError):
    """The device is already doing something for someone else."""


class DeviceDeclined(DeviceError):
    """The device (or the card issuer behind it) refused the operation; carries its result code."""

    def __init__(self, message: str, result_code: int | None = None) -> None:
        super().__init__(message)
        self.result_code = result_code
