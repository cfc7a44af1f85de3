"""Inline SVG charts for the demo's HTML report: bars, lines and a timeline.

Plain SVG strings, so the report is one self-contained file with no plotting
library to install (and its bytes are deterministic for the same numbers, which
the golden tests rely on). Each function draws one chart in a 640 x 260 box.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 44
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _frame(title: str, body: list[str], y_max: float, y_label: str) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    ticks = []
    for i in range(5):
        value = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        ticks.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="10">{_fmt(value)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">'
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>'
        f'<text x="12" y="{TOP + plot_h / 2}" font-size="10" transform="rotate(-90 12 '
        f'{TOP + plot_h / 2})" text-anchor="middle">{escape(y_label)}</text>'
        + "".join(ticks)
        + "".join(body)
        + "</svg>"
    )


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _legend(names: Sequence[str]) -> list[str]:
    items = []
    for i, name in enumerate(names):
        x = LEFT + 8 + i * 150
        items.append(
            f'<rect x="{x}" y="{TOP + 2}" width="10" height="10" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/><text x="{x + 14}" y="{TOP + 11}" '
            f'font-size="10">{escape(name)}</text>'
        )
    return items


def bar_chart(
    title: str, categories: Sequence[str], series: Mapping[str, Sequence[float]], y_label: str
) -> str:
    """Grouped bars: one group per category, one bar per series.

    Examples:
        >>> svg = bar_chart("t", ["a", "b"], {"v1": [1, 2]}, "count")
        >>> svg.startswith("<svg") and svg.count("<rect") == 3
        True
    """
    y_max = max((max(v, default=0.0) for v in series.values()), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(len(categories), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    body: list[str] = []
    for s, values in enumerate(series.values()):
        for c, value in enumerate(values):
            h = plot_h * value / y_max
            x = LEFT + c * group_w + group_w * 0.1 + s * bar_w
            body.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[s % len(PALETTE)]}"/>'
            )
    step = max(1, math.ceil(len(categories) / 12))
    for c, name in enumerate(categories):
        if c % step == 0:
            x = LEFT + c * group_w + group_w / 2
            body.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
                f'font-size="9">{escape(name)}</text>'
            )
    return _frame(title, body + _legend(list(series)), y_max, y_label)


def line_chart(
    title: str,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    y_label: str,
    x_label: str,
    markers: Mapping[str, float] | None = None,
) -> str:
    """Lines over a shared x axis, with labelled vertical markers (e.g. the drift).

    Examples:
        >>> svg = line_chart("t", [0, 1, 2], {"ks": [0.0, 0.1, 0.5]}, "ks", "day", {"drift": 1})
        >>> svg.count("<polyline"), "drift" in svg
        (1, True)
    """
    finite = [v for values in series.values() for v in values if math.isfinite(v)]
    y_max = max(finite, default=0.0) or 1.0
    x_min, x_max = (min(x), max(x)) if x else (0.0, 1.0)
    span = (x_max - x_min) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(value: float) -> float:
        return LEFT + plot_w * (value - x_min) / span

    body: list[str] = []
    for s, values in enumerate(series.values()):
        points = " ".join(
            f"{px(xv):.1f},{TOP + plot_h - plot_h * yv / y_max:.1f}"
            for xv, yv in zip(x, values, strict=True)
            if math.isfinite(yv)
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{PALETTE[s % len(PALETTE)]}" '
            'stroke-width="1.5"/>'
        )
    for name, where in (markers or {}).items():
        mx = px(where)
        body.append(
            f'<line x1="{mx:.1f}" y1="{TOP}" x2="{mx:.1f}" y2="{TOP + plot_h}" stroke="#555" '
            f'stroke-dasharray="4 3"/><text x="{mx + 3:.1f}" y="{TOP + plot_h - 4}" '
            f'font-size="10">{escape(name)}</text>'
        )
    for i in range(5):
        value = x_min + span * i / 4
        body.append(
            f'<text x="{px(value):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
            f'font-size="10">{_fmt(value)}</text>'
        )
    body.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" '
        f'font-size="10">{escape(x_label)}</text>'
    )
    return _frame(title, body + _legend(list(series)), y_max, y_label)


def timeline_chart(title: str, events: Sequence[tuple[float, str]]) -> str:
    """Events on a wall-clock axis (seconds), labels staggered so they do not collide.

    Examples:
        >>> svg = timeline_chart("t", [(0.0, "up"), (10.0, "drift"), (20.0, "promoted")])
        >>> svg.count("<circle")
        3
    """
    t_max = max((t for t, _ in events), default=0.0) or 1.0
    plot_w = WIDTH - LEFT - RIGHT - 60
    axis_y = HEIGHT - BOTTOM
    body = [
        f'<line x1="{LEFT}" y1="{axis_y}" x2="{LEFT + plot_w}" y2="{axis_y}" stroke="#333"/>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" '
        'font-size="10">seconds since the demo started</text>',
    ]
    for i, (t, label) in enumerate(events):
        x = LEFT + plot_w * t / t_max
        y = TOP + 14 + (i % 8) * 22
        body.append(
            f'<line x1="{x:.1f}" y1="{y + 3}" x2="{x:.1f}" y2="{axis_y}" stroke="#bbb"/>'
            f'<circle cx="{x:.1f}" cy="{axis_y}" r="4" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 3:.1f}" y="{y}" font-size="10">{escape(label)} ({t:.0f} s)</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">'
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )
