"""What every filtered list page reads from its URL: a date range and a page, with errors in
words instead of exceptions, so a mistyped URL shows the page with a message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from werkzeug.datastructures import MultiDict


@dataclass
class PagedDateRange:
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1
    errors: list[str] = field(default_factory=list)

    def read_range_and_page(self, args: MultiDict[str, str]) -> None:
        self.date_from = self._date(args.get("from", ""), "From")
        self.date_to = self._date(args.get("to", ""), "To")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            self.errors.append("The From date is after the To date.")
        page = args.get("page", "1")
        self.page = int(page) if page.isdigit() and int(page) >= 1 else 1

    def _date(self, text: str, label: str) -> date | None:
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.errors.append(f"{label} date “{text}” is not a date like 2024-05-31.")
            return None
