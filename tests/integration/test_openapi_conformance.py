"""The OpenAPI document is exact: schemathesis runs against a live server, on SQLite and
PostgreSQL, and every one of its checks passes (``schemathesis run --checks all``).

Its engine runs as its command line does (examples, coverage, fuzzing and stateful phases),
through the Python API and bounded: a fixed number of examples per operation (a few hundred
requests in all), Hypothesis without a deadline. The checks: not a server error; status codes,
content types, headers and bodies as documented; invalid data refused and valid data accepted;
required headers; 405 with ``Allow`` for a method the path does not have; and the stateful ones.

One allowance, in ``positive_data_acceptance``: a request the schema allows may still get a 422
for rules JSON Schema cannot state: an amount's decimal places depend on its currency, the
currencies a merchant accepts on the configuration, and control characters are refused anywhere.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.engine import events

from tests.conftest import LiveServer

EXAMPLES = int(os.environ.get("KASSA_OPENAPI_EXAMPLES", "10"))


def every_check() -> dict[str, dict[str, Any]]:
    load_all_checks()
    enabled: dict[str, dict[str, Any]] = {
        name: {"enabled": True} for name in CHECKS.get_all_names()
    }
    enabled["positive_data_acceptance"]["expected-statuses"] = [
        "2xx",
        "401",
        "403",
        "404",
        "409",
        "422",
    ]
    return enabled


# A few hundred requests through a live server (about 90 s alone, over two minutes while the
# machine's two cores are shared): the suite's 120-s default per test is no budget for it.
@pytest.mark.timeout(600)
def test_the_api_answers_as_its_openapi_document_says(live_server: LiveServer, demo: Any) -> None:
    base_url = f"{live_server.url}/api/v1"
    config = schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "headers": {"Authorization": f"Bearer {demo['tills'][0]['api_key']}"},
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "checks": every_check(),
        }
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    failures: list[str] = []
    requests = 0
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            requests += len(recorder.interactions)
            for nodes in recorder.checks.values():
                for node in nodes:
                    if node.failure_info is not None:
                        failure = node.failure_info.failure
                        failures.append(f"{recorder.label} {node.name}: {failure.title}\n{failure}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"error: {event}")
        elif isinstance(event, events.EngineFinished):
            failures.extend(f"after the run: {failure}" for failure in event.failures)
    assert not failures, "\n\n".join(sorted(set(failures))[:20])
    assert requests > 100  # it ran: a few hundred requests


def test_every_api_route_is_in_the_document(app: Any) -> None:
    """Generated from the URL map: a route added under /api/v1 without its operation in the
    document (as the bank-money answers once were) fails here, before schemathesis runs."""
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        served |= {(path, method) for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    assert served - documented == set()
    assert documented - served == set()
