"""Card numbers never reach a log: a filter on every handler of the root logger (and of the
loggers that keep their own handlers, such as granian's) masks them in each record's message,
its exception text and its stack (:mod:`gateway.domain.card_data` is the rule).

Every Kassa process installs it at start: the ``kassa`` command (worker, device host, sandbox
bank, imports …) and the WSGI entry points the web server loads.
"""

from __future__ import annotations

import logging

from gateway.domain.card_data import scrub_card_numbers


class CardNumberFilter(logging.Filter):
    """Masks card numbers in a record before any handler formats it; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        # Kept as rendered (masked or not): the formatter does not render the message again.
        record.msg, record.args = scrub_card_numbers(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_card_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_card_numbers(record.stack_info)
        return True


def install_card_number_filter() -> None:
    """Put the filter on every handler there is now; give the root logger a handler (what
    Python would print anyway: warnings and worse on stderr) if it has none."""
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.setLevel(logging.WARNING)
        root.addHandler(stderr)
    known = list(logging.root.manager.loggerDict.values())
    for logger in [root, *(x for x in known if isinstance(x, logging.Logger))]:
        for handler in logger.handlers:
            if not any(isinstance(f, CardNumberFilter) for f in handler.filters):
                handler.addFilter(CardNumberFilter())


__all__ = ["CardNumberFilter", "install_card_number_filter"]
