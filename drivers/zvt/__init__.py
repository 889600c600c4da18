"""ZVT card terminals (the German/European ECR–terminal protocol, PA00P015/PA00P016).

Layers, each its own module: ``apdu`` and ``tlv`` (codecs), ``framing`` (RS-232 frames or TCP),
``protocol`` (the dialogue and its timeouts), ``messages`` and ``codes`` (commands and what the
terminal says), ``terminal`` (:class:`CardTerminal`).

The terminal (and with it pyserial) is imported on first use of a name below, so the codecs
alone (``kassa zvt decode``) start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivers.zvt.terminal import CardResult, CardTerminal

__all__ = ["CardResult", "CardTerminal"]


def __getattr__(name: str) -> Any:  # PEP 562: the device layer loads when it is asked for
    if name in __all__:
        return getattr(importlib.import_module("drivers.zvt.terminal"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
