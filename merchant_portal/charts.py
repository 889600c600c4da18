"""Charts drawn on the server as inline SVG: no script, no network, nothing to download.

Three shapes cover the portal: bars (grouped or stacked, negative values allowed), lines, and
intervals (an estimate with its confidence interval against a zero line). Every chart carries a
``<title>`` for screen readers and one per mark for the pointer; colours are SVG presentation
attributes, so a strict Content-Security-Policy (no inline ``style``) is kept. The numbers
themselves are always printed beside the chart by the page, so the picture is never the only
way to read them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 34
# Colour-blind-safe (Okabe–Ito) palette, one colour per series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
_ids = itertools.count(1)

Formatter = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]


@dataclass(frozen=True, slots=True)
class Interval:
    label: str
    estimate: float
    low: float
    high: float


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round axis values (1, 2 or 5 × 10^k apart) covering ``[low, high]``, 0 included."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value < high + step / 2:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return ticks


def _frame(title: str, body: list[str], height: int = HEIGHT) -> Markup:
    ident = f"chart-{next(_ids)}"
    # Every text inside was escaped where it was put in; numbers are formatted floats.
    return Markup(  # noqa: S704
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{ident}" preserveAspectRatio="xMidYMid meet">'
        f'<title id="{ident}">{escape(title)}</title>{"".join(body)}</svg>'
    )


def _y_axis(ticks: list[float], scale: Callable[[float], float], fmt: Formatter) -> list[str]:
    out = []
    for tick in ticks:
        y = scale(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#666" if tick == 0 else "#ddd"}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#444">{escape(fmt(tick))}</text>'
        )
    return out


def _x_labels(labels: Sequence[str], centre: Callable[[int], float]) -> list[str]:
    every = max(1, math.ceil(len(labels) / 12))
    return [
        f'<text x="{centre(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
        f'font-size="11" fill="#444">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def _legend(series: Sequence[Series]) -> list[str]:
    if len(series) < 2:
        return []
    out, x = [], LEFT
    for i, s in enumerate(series):
        out.append(
            f'<rect x="{x}" y="{HEIGHT - 12}" width="10" height="10" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/><text x="{x + 14}" y="{HEIGHT - 3}" '
            f'font-size="11" fill="#222">{escape(s.name)}</text>'
        )
        x += 24 + 7 * len(s.name)
    return out


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Formatter = lambda v: f"{v:g}",
    *,
    stacked: bool = False,
) -> Markup:
    """Bars per label, one per series side by side (or stacked), from a zero line."""
    if stacked:
        tops = [sum(max(s.values[i], 0) for s in series) for i in range(len(labels))]
        bottoms = [sum(min(s.values[i], 0) for s in series) for i in range(len(labels))]
    else:
        tops = [max([s.values[i] for s in series] + [0]) for i in range(len(labels))]
        bottoms = [min([s.values[i] for s in series] + [0]) for i in range(len(labels))]
    ticks = nice_ticks(min(bottoms, default=0), max(tops, default=0))
    scale = _scale(ticks[0], ticks[-1])
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    body = _y_axis(ticks, scale, fmt)
    width = slot * 0.8 / (1 if stacked else max(len(series), 1))
    for i, label in enumerate(labels):
        up, down = 0.0, 0.0
        for j, s in enumerate(series):
            value = s.values[i]
            if stacked:
                start = up if value >= 0 else down
                end = start + value
                up, down = (end, down) if value >= 0 else (up, end)
                x = LEFT + slot * i + slot * 0.1
            else:
                start, end = 0.0, value
                x = LEFT + slot * i + slot * 0.1 + width * j
            y1, y2 = sorted((scale(start), scale(end)))
            body.append(
                f'<rect x="{x:.1f}" y="{y1:.1f}" width="{max(width - 1, 1):.1f}" '
                f'height="{max(y2 - y1, 0.5):.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(label)} · {escape(s.name)}: {escape(fmt(value))}</title></rect>"
            )
    body += _x_labels(labels, lambda i: LEFT + slot * (i + 0.5))
    return _frame(title, body + _legend(series))


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Formatter = lambda v: f"{v:g}",
) -> Markup:
    """One line per series across the labels, with a dot (and tooltip) at each value."""
    values = [v for s in series for v in s.values]
    ticks = nice_ticks(min(values, default=0), max(values, default=0))
    scale = _scale(ticks[0], ticks[-1])
    step = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    body = _y_axis(ticks, scale, fmt)
    for j, s in enumerate(series):
        colour = PALETTE[j % len(PALETTE)]
        points = [(LEFT + step * (i + 0.5), scale(v)) for i, v in enumerate(s.values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body += [
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>'
            f"{escape(labels[i])} · {escape(s.name)}: {escape(fmt(s.values[i]))}</title></circle>"
            for i, (x, y) in enumerate(points)
        ]
    body += _x_labels(labels, lambda i: LEFT + step * (i + 0.5))
    return _frame(title, body + _legend(series))


def interval_chart(
    title: str, rows: Sequence[Interval], fmt: Formatter = lambda v: f"{v:g}"
) -> Markup:
    """Each row's estimate (a dot) and interval (a bar) on one horizontal axis through zero;
    an unbounded side is drawn to the edge with an arrow-like open end."""
    finite = [v for r in rows for v in (r.low, r.high, r.estimate) if math.isfinite(v)]
    ticks = nice_ticks(min(finite, default=-1), max(finite, default=1))
    lo, hi = ticks[0], ticks[-1]
    left, right, row_h = 170, WIDTH - 16, 28
    height = TOP + row_h * len(rows) + 30

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return left + (v - lo) / (hi - lo) * (right - left)

    body = []
    for tick in ticks:
        body.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{TOP}" y2="{height - 24}" '
            f'stroke="{"#666" if tick == 0 else "#ddd"}"/><text x="{x(tick):.1f}" '
            f'y="{height - 8}" text-anchor="middle" font-size="11" fill="#444">'
            f"{escape(fmt(tick))}</text>"
        )
    for i, row in enumerate(rows):
        y = TOP + row_h * i + row_h / 2
        tip = f"{row.label}: {fmt(row.estimate)} [{fmt(row.low)}, {fmt(row.high)}]"
        colour = PALETTE[0] if row.low > 0 or row.high < 0 else "#777"
        body.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="#222">{escape(row.label)}</text>'
            f'<line x1="{x(row.low):.1f}" x2="{x(row.high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-width="4"><title>{escape(tip)}</title></line>'
            f'<circle cx="{x(row.estimate):.1f}" cy="{y:.1f}" r="5" fill="{colour}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    return _frame(title, body, height)


def _scale(low: float, high: float) -> Callable[[float], float]:
    bottom, top = HEIGHT - BOTTOM, TOP

    def y(value: float) -> float:
        return bottom - (value - low) / (high - low) * (bottom - top)

    return y
