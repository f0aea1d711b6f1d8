"""Small inline SVG charts for the HTML report: lines, stacked columns, bars, box plots, intervals.

Plain strings, no library and no script: the report must open offline and render in any browser.
Every mark carries a <title>, so hovering shows the exact figure. Colours are Okabe and Ito's
palette, which stays distinguishable for the common kinds of colour blindness.
"""

from __future__ import annotations

import math
from html import escape
from typing import Callable, Sequence

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
GRID, INK, MUTED = "#d9dde3", "#1f2328", "#57606a"
W, H = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40

Fmt = Callable[[float], str]


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 5 x 10^k) up to at least `top`."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    rough = top / count
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _svg(body: list[str], label: str, height: int = H) -> str:
    return (f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{escape(label)}" '
            f'preserveAspectRatio="xMidYMid meet"><title>{escape(label)}</title>{"".join(body)}</svg>')


def empty(label: str, why: str = "no data in this window") -> str:
    return _svg([f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" fill="{MUTED}">{escape(why)}</text>'], label)


def _y_axis(ticks: list[float], fmt: Fmt, y: Callable[[float], float]) -> list[str]:
    out = []
    for tick in ticks:
        py = y(tick)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" font-size="11" fill="{MUTED}">'
                   f'{escape(fmt(tick))}</text>')
    return out


def _x_labels(labels: Sequence[str], x: Callable[[int], float]) -> list[str]:
    every = max(1, math.ceil(len(labels) / 8))
    return [f'<text x="{x(i):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" font-size="11" fill="{MUTED}">'
            f'{escape(label)}</text>' for i, label in enumerate(labels) if i % every == 0]


def legend(items: Sequence[tuple[str, str]]) -> str:
    """An HTML legend under a chart: (label, colour) pairs."""
    spans = "".join(f'<span><i style="background:{colour}"></i>{escape(label)}</span>' for label, colour in items)
    return f'<div class="legend">{spans}</div>'


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]], fmt: Fmt,
               label: str, *, shade: tuple[int, int, str] | None = None, dashed: Sequence[int] = ()) -> str:
    """One line per (name, colour, values); `shade` = (upper, lower, colour) fills the gap between two
    series (e.g. savings); `dashed` series are drawn thin and first, under the others."""
    if not labels or not any(any(values) for _, _, values in series):
        return empty(label)
    ticks = nice_ticks(max(max(values) for _, _, values in series))
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    x = (lambda i: LEFT + plot_w / 2) if len(labels) == 1 else (lambda i: LEFT + i * plot_w / (len(labels) - 1))
    y = lambda v: TOP + plot_h * (1 - v / ticks[-1])  # noqa: E731
    body = _y_axis(ticks, fmt, y) + _x_labels(labels, x)
    if shade is not None:
        upper, lower = series[shade[0]][2], series[shade[1]][2]
        points = [(x(i), y(v)) for i, v in enumerate(upper)] + [(x(i), y(v)) for i, v in reversed(list(enumerate(lower)))]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        body.append(f'<polygon points="{path}" fill="{shade[2]}" fill-opacity="0.18"/>')
    order = [i for i in range(len(series)) if i in dashed] + [i for i in range(len(series)) if i not in dashed]
    for name, colour, values in (series[i] for i in order):
        path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        thin = name in {series[i][0] for i in dashed}
        stroke = 'stroke-width="1.5" stroke-dasharray="5 4"' if thin else 'stroke-width="2.5"'
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" {stroke}/>')
        for i, v in enumerate(values):
            body.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                        f'<title>{escape(labels[i])} {escape(name)}: {escape(fmt(v))}</title></circle>')
    return _svg(body, label)


def stacked_columns(labels: Sequence[str], stacks: Sequence[tuple[str, str, Sequence[float]]], label: str) -> str:
    """Columns of counts, one segment per (name, colour, values)."""
    totals = [sum(values[i] for _, _, values in stacks) for i in range(len(labels))]
    if not totals or not any(totals):
        return empty(label)
    ticks = nice_ticks(max(totals))
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    slot = plot_w / len(labels)
    x = lambda i: LEFT + slot * (i + 0.5)  # noqa: E731
    y = lambda v: TOP + plot_h * (1 - v / ticks[-1])  # noqa: E731
    body = _y_axis(ticks, lambda v: f"{v:g}", y) + _x_labels(labels, x)
    width = max(1.0, slot * 0.7)
    for i, total in enumerate(totals):
        base = 0.0
        for name, colour, values in stacks:
            if not values[i]:
                continue
            share = f"{values[i] * 100 / total:.0f}%"
            body.append(f'<rect x="{x(i) - width / 2:.1f}" y="{y(base + values[i]):.1f}" width="{width:.1f}" '
                        f'height="{y(base) - y(base + values[i]):.1f}" fill="{colour}">'
                        f'<title>{escape(labels[i])} {escape(name)}: {values[i]:g} ({share})</title></rect>')
            base += values[i]
    return _svg(body, label)


def _x_axis(ticks: list[float], fmt: Fmt, x: Callable[[float], float], height: int) -> list[str]:
    out = []
    for tick in ticks:
        out.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{TOP}" y2="{height - BOTTOM}" stroke="{GRID}"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" font-size="11" '
                   f'fill="{MUTED}">{escape(fmt(tick))}</text>')
    return out


def _row_label(left: float, cy: float, name: str) -> str:
    return (f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" font-size="12" fill="{INK}">'
            f'{escape(name)}</text>')


def _hline(x1: float, x2: float, y: float, colour: str, width: float) -> str:
    return f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" stroke-width="{width}"/>'


def _row_height(rows: int) -> tuple[int, int]:
    step = 28
    return step, TOP + BOTTOM + step * rows


def hbars(rows: Sequence[tuple[str, float, str]], label: str, *, colour: str = PALETTE[3],
          top: float | None = None, fmt: Fmt = lambda v: f"{v:g}") -> str:
    """Horizontal bars: (name, value, text shown beside the bar)."""
    if not rows:
        return empty(label)
    step, height = _row_height(len(rows))
    left = 200
    ticks = nice_ticks(top if top is not None else max(value for _, value, _ in rows) or 1)
    x = lambda v: left + (W - left - RIGHT - 120) * v / ticks[-1]  # noqa: E731
    body = _x_axis(ticks, fmt, x, height)
    for i, (name, value, text) in enumerate(rows):
        cy = TOP + step * (i + 0.5)
        body.append(_row_label(left, cy, name))
        body.append(f'<rect x="{left}" y="{cy - 9:.1f}" width="{max(1.0, x(value) - left):.1f}" height="18" fill="{colour}">'
                    f'<title>{escape(name)}: {escape(text)}</title></rect>')
        body.append(f'<text x="{x(value) + 6:.1f}" y="{cy + 4:.1f}" font-size="12" fill="{INK}">{escape(text)}</text>')
    return _svg(body, label, height)


def box_plot(rows: Sequence[tuple[str, Sequence[float], int]], label: str, fmt: Fmt) -> str:
    """One box per (name, (p5, p25, p50, p75, p95), n): whiskers p5..p95, box p25..p75, line at the median."""
    if not rows:
        return empty(label)
    step, height = _row_height(len(rows))
    left = 200
    ticks = nice_ticks(max(q[-1] for _, q, _ in rows) or 1)
    x = lambda v: left + (W - left - RIGHT - 40) * v / ticks[-1]  # noqa: E731
    body = _x_axis(ticks, fmt, x, height)
    for i, (name, (p5, p25, p50, p75, p95), n) in enumerate(rows):
        cy, colour = TOP + step * (i + 0.5), PALETTE[i % len(PALETTE)]
        tip = f"{name}: p5 {fmt(p5)}, p25 {fmt(p25)}, median {fmt(p50)}, p75 {fmt(p75)}, p95 {fmt(p95)} ({n} answers)"
        body.append(_row_label(left, cy, name))
        body.append(f'<g><title>{escape(tip)}</title>'
                    + _hline(x(p5), x(p95), cy, colour, 2) +
                    f'<rect x="{x(p25):.1f}" y="{cy - 9:.1f}" width="{max(2.0, x(p75) - x(p25)):.1f}" height="18" '
                    f'fill="{colour}" fill-opacity="0.35" stroke="{colour}" stroke-width="1.5"/>'
                    f'<line x1="{x(p50):.1f}" x2="{x(p50):.1f}" y1="{cy - 9:.1f}" y2="{cy + 9:.1f}" stroke="{INK}" '
                    'stroke-width="2.5"/></g>')
    return _svg(body, label, height)


def intervals(rows: Sequence[tuple[str, float, float, float]], label: str, fmt: Fmt) -> str:
    """A dot and its 95% interval per (name, value, low, high): the A/B variants side by side."""
    if not rows:
        return empty(label)
    step, height = _row_height(len(rows))
    left = 120
    ticks = nice_ticks(max(high for _, _, _, high in rows) or 1)
    x = lambda v: left + (W - left - RIGHT - 40) * max(0.0, v) / ticks[-1]  # noqa: E731
    body = _x_axis(ticks, fmt, x, height)
    for i, (name, value, low, high) in enumerate(rows):
        cy, colour = TOP + step * (i + 0.5), PALETTE[i % len(PALETTE)]
        tip = f"{name}: {fmt(value)} (95% CI {fmt(low)} to {fmt(high)})"
        body.append(_row_label(left, cy, name))
        body.append(f'<g><title>{escape(tip)}</title>'
                    + _hline(x(low), x(high), cy, colour, 3) +
                    f'<circle cx="{x(value):.1f}" cy="{cy:.1f}" r="6" fill="{colour}"/></g>')
    return _svg(body, label, height)
