"""The portal's inline SVG charts: round axes, escaped labels, one mark per value."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from merchant_portal.charts import (
    Interval,
    Series,
    bar_chart,
    interval_chart,
    line_chart,
    nice_ticks,
)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0, 97, [0, 50, 100]),
        (0, 81, [0, 50, 100]),
        (0, 79, [0, 20, 40, 60, 80]),
        (0, 1, [0, 0.5, 1]),
        (-130, 40, [-150, -100, -50, 0, 50]),
        (0, 0, [0, 0.5, 1]),
    ],
)
def test_ticks_are_round_and_cover_the_values(low: float, high: float, ticks: list[float]) -> None:
    assert nice_ticks(low, high) == ticks


def test_bar_chart_is_valid_svg_with_one_bar_per_value_and_escaped_labels() -> None:
    svg = bar_chart(
        "Turnover <EUR>", ["01", "02", "03"],
        [Series("QR & co", [100, 0, 250]), Series("Card", [50, 75, -20])],
        stacked=True,
    )  # fmt: skip
    root = ET.fromstring(str(svg))  # well-formed XML: every label was escaped
    assert root.tag == f"{SVG}svg" and root.find(f"{SVG}title").text == "Turnover <EUR>"
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 6
    assert bars[0].find(f"{SVG}title").text == "01 · QR & co: 100"


def test_line_and_interval_charts() -> None:
    line = ET.fromstring(str(line_chart("Ticket", ["a", "b"], [Series("x", [1.5, 3])])))
    assert len(list(line.iter(f"{SVG}circle"))) == 2
    rows = [Interval("conversion", 5, 1, 9), Interval("ticket", -2, -math.inf, 3)]
    chart = ET.fromstring(str(interval_chart("CI", rows)))
    assert len(list(chart.iter(f"{SVG}circle"))) == 2
    assert all(math.isfinite(float(line.get("x1"))) for line in chart.iter(f"{SVG}line"))
