"""Test-side knobs on the device simulators, for steps a test must catch in the act."""

from __future__ import annotations

import threading
from typing import Any

from drivers.simulators.zvt import ZvtSimulator
from drivers.zvt.apdu import Apdu


class PinPadTerminal(ZvtSimulator):
    """A simulated terminal whose customer, at the PIN step, waits for ``pin_typed``.

    A fixed ``pin_delay`` is a race with the clock: a loaded machine may not see the PIN step (or
    kill a process inside it) before the delay is over. Here the step lasts until the test has
    done what it wanted to do during it and calls ``pin_typed.set()``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pin_typed = threading.Event()

    def _wait(self, seconds: float) -> bool:
        if self.phase == "pin":
            while not self.pin_typed.wait(0.05) and not self.stopping:
                pass
        return super()._wait(seconds)


class SteppedTerminal(ZvtSimulator):
    """A simulated terminal that stops at one step of its next payment (``hold_at``: "command"
    before its 80 00; "card", "pin", "online" once that intermediate status was acknowledged;
    "status" before the Status-Information; "completion" after it, booked) until the test calls
    ``go_on.set()``; ``held`` is set once it stops there, ``over`` once that command is done
    with (booked or given up). No clock decides what the test sees.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold_at: str | None = None
        self.held = threading.Event()
        self.go_on = threading.Event()
        self.over = threading.Event()

    def _dispatch(self, apdu: Apdu) -> None:
        try:
            super()._dispatch(apdu)
        finally:
            if self.held.is_set():
                self.over.set()

    def _goes_silent(self, step: str) -> bool:
        if step == self.hold_at:
            self.hold_at = None
            self.held.set()
            while not self.go_on.wait(0.05) and not self.stopping:
                pass
        return super()._goes_silent(step)
