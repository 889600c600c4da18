"""The terminal's texts reach the cashier's live stream, end to end and in order.

The simulated ZVT terminal speaks the real protocol over a pty: after the command it sends
Intermediate Status Information 04 FF with the status codes 0A ("Insert card"), 01 ("Please
watch PIN-Pad") and 0E ("Please wait..."), as ZVT PA00P015 13.08 §3.7 lays them out (the texts
of Table 17 are drivers/zvt/codes.py's INTERMEDIATE_STATUS). The real device host drives the
terminal and writes each text to the payment; the cashier reads the payment's server-sent event
stream over real HTTP (a threaded server, a signed-in requests session). The terminal stays at
each step until the stream has shown its text, so no clock decides what the test sees.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import requests

from drivers.simulators.zvt import ZvtSimulator
from drivers.zvt.codes import INTERMEDIATE_STATUS
from gateway.adapters.db import Database
from tests.card_helpers import card_payment, close, first_till, host_for
from tests.integration.test_cashier_pages import staff

# The steps of the simulator's authorisation and the status code it sends at each (§3.7).
STEPS = (("card", 0x0A), ("pin", 0x01), ("online", 0x0E))
HTTP_CEILING = 90  # seconds: a ceiling for a loaded machine, not a speed


class StepByStepTerminal(ZvtSimulator):
    """A simulated terminal that, after each intermediate status was acknowledged, waits for
    the test to let that step go on (``go_on[step].set()``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.go_on = {step: threading.Event() for step, _ in STEPS}

    def _goes_silent(self, step: str) -> bool:
        if step in self.go_on:
            while not self.go_on[step].wait(0.05) and not self.stopping:
                pass
        return super()._goes_silent(step)


def signed_in(base: str, demo: dict[str, Any]) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/cashier/login", timeout=HTTP_CEILING).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None, page
    username, password = staff(demo, "cashier")
    answer = session.post(
        f"{base}/cashier/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=HTTP_CEILING,
    )
    assert answer.status_code == 303
    return session


def status_events(response: requests.Response) -> Iterator[dict[str, Any]]:
    """The data of each ``status`` event, as it arrives (comments and ``retry`` skipped)."""
    name = None
    for line in response.iter_lines(chunk_size=1, decode_unicode=True):
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name == "status":
            yield json.loads(line[len("data: ") :])
        elif not line:
            name = None


def test_each_terminal_text_reaches_the_stream_in_order(
    db: Database, demo: dict[str, Any], live_server: Any
) -> None:
    till = first_till(db, demo)
    session = signed_in(live_server.url, demo)
    with StepByStepTerminal(baudrate=115200) as simulator:
        simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.0
        host = host_for(db, till, simulator.port)
        stop = threading.Event()

        def drive() -> None:
            while not stop.is_set():
                if not host.step():
                    stop.wait(0.02)

        driver = threading.Thread(target=drive, daemon=True)
        payment_id = card_payment(db, till, "12.34")
        response = session.get(
            f"{live_server.url}/cashier/payments/{payment_id}/events",
            stream=True,
            timeout=HTTP_CEILING,
        )
        try:
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = status_events(response)
            shown = [next(events)["display_text"]]
            assert shown == ["Sending to the terminal…"]
            driver.start()
            for step, code in STEPS:
                while shown[-1] != INTERMEDIATE_STATUS[code]:
                    shown.append(next(events)["display_text"])
                simulator.go_on[step].set()
            final = None
            for state in events:  # the stream ends by itself once the payment is settled
                shown.append(state["display_text"])
                final = state
        finally:
            response.close()
            stop.set()
            driver.join(30)
            close(host)
    assert final is not None and (final["screen"], final["open"]) == ("paid", False)
    texts = [INTERMEDIATE_STATUS[code] for _, code in STEPS]
    changes = [t for i, t in enumerate(shown) if i == 0 or t != shown[i - 1]]
    assert [t for t in changes if t in texts] == texts  # each once, in the terminal's order
    assert shown[-1] == "Approved"
    assert [b.amount_minor for b in simulator.journal] == [1234]
