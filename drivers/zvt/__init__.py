"""ZVT card terminals (the German/European ECR–terminal protocol, PA00P015/PA00P016).

Layers, each its own module: ``apdu`` and ``tlv`` (codecs), ``framing`` (RS-232 frames or TCP),
``protocol`` (the dialogue and its timeouts), ``messages`` and ``codes`` (commands and what the
terminal says), ``terminal`` (:class:`CardTerminal`).
"""

from drivers.zvt.terminal import CardResult, CardTerminal

__all__ = ["CardResult", "CardTerminal"]
