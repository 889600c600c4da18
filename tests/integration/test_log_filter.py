"""No card number in a log line: the filter on the root handlers masks messages, arguments,
exception texts and stacks, in this process and in a fresh one (Python's own stderr output)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gateway.adapters.log_filter import CardNumberFilter, install_card_number_filter


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("kassa.test.cards")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    install_card_number_filter()
    yield out
    logger.removeHandler(handler)


def test_messages_arguments_and_tracebacks_are_masked(stream: io.StringIO) -> None:
    logger = logging.getLogger("kassa.test.cards")
    logger.info("card 4111111111111111 paid")
    logger.warning("row %s: %r", 7, "5500.0000.0000.0004")
    try:
        raise ValueError("bad date '4111_1111_1111_1111'")
    except ValueError:
        logger.exception("import failed for %s", "4111 1111 1111 1111")
    logger.info("IBAN DE89370400440532013000, ref 20261125000123456789012, EUR 12.50")
    text = stream.getvalue()
    assert "card 411111******1111 paid" in text
    assert "'5500.00**.****.0004'" in text
    assert "4111_11**_****_1111" in text and "import failed for 4111 11** **** 1111" in text
    assert "DE89370400440532013000, ref 20261125000123456789012, EUR 12.50" in text
    for pan in ("4111111111111111", "5500.0000.0000.0004", "4111_1111_1111_1111"):
        assert pan not in text


def test_installing_twice_adds_one_filter(stream: io.StringIO) -> None:
    install_card_number_filter()
    [handler] = logging.getLogger("kassa.test.cards").handlers
    assert sum(isinstance(f, CardNumberFilter) for f in handler.filters) == 1


def test_a_fresh_process_logs_masked_on_stderr() -> None:
    code = (
        "import logging\n"
        "from gateway.adapters.log_filter import install_card_number_filter\n"
        "install_card_number_filter()\n"
        "logging.getLogger('kassa.worker').error('job failed: card %s', '4111111111111111')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "job failed: card 411111******1111" in result.stderr
    assert "4111111111111111" not in result.stderr
