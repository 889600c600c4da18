"""What every filtered list page reads from its URL: a date range and a page, with errors in
words instead of exceptions, so a mistyped URL shows the page with a message (and a 422).

Numbers and dates are checked by the input guard's helpers, so a page of 10^20 or a year 9999
never reaches the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from werkzeug.datastructures import MultiDict

from gateway.adapters.i18n import gettext as _
from gateway.entrypoints import input_guard
from gateway.errors import InvalidInput

MAX_PAGE = 1_000_000


@dataclass
class PagedDateRange:
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1
    errors: list[str] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        """The page's HTTP status: 422 while the filters have a mistake."""
        return 422 if self.errors else 200

    def read_range_and_page(self, args: MultiDict[str, str]) -> None:
        self.date_from = self._date(args.get("from", ""), "From")
        self.date_to = self._date(args.get("to", ""), "To")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            self.errors.append(_("The From date is after the To date."))
        page = args.get("page", "1") or "1"
        try:
            self.page = input_guard.whole_number(page, "Page", low=1, high=MAX_PAGE)
        except InvalidInput as exc:
            self.errors.append(f"{exc.message}.")

    def _date(self, text: str, label: str) -> date | None:
        if not text:
            return None
        try:
            return input_guard.calendar_date(text, label)
        except InvalidInput:
            pass
        try:
            date.fromisoformat(text)
        except ValueError:
            self.errors.append(f"{label} date “{text}” is not a date like 2024-05-31.")
            return None
        self.errors.append(
            f"{label} date {text} is outside {input_guard.FIRST_DATE} to {input_guard.LAST_DATE}."
        )
        return None
