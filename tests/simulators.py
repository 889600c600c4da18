"""Test-side knobs on the device simulators, for steps a test must catch in the act."""

from __future__ import annotations

import threading
from typing import Any

from drivers.simulators.zvt import ZvtSimulator


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
