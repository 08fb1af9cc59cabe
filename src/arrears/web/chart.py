"""A small bar chart as inline SVG, drawn on the server (no script, no external library).

The page shows the same numbers as a table beside it, for screen readers and for anyone
who wants the figures; the SVG carries a title and a one-line summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 10, 28


@dataclass(frozen=True)
class Day:
    day: date
    suspensions: int
    restorations: int


def _nice_max(value: int) -> int:
    """The top of the scale: the smallest of 1, 2, 5, 10, 20, 50, ... at or above `value`."""
    magnitude = 1
    while True:
        for m in (1, 2, 5):
            if m * magnitude >= value:
                return m * magnitude
        magnitude *= 10


def bar_chart(days: list[Day], title: str, summary: str) -> Markup:
    """Suspensions and restorations per day, two bars per day."""
    top = _nice_max(max([1] + [max(d.suspensions, d.restorations) for d in days]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(days))
    bar = max(1.0, slot * 0.38)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(summary)}</desc>',
    ]
    for tick in (0, top // 2 if top >= 2 else None, top):
        if tick is None:
            continue
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            f'<line class="gridline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    for i, d in enumerate(days):
        x = LEFT + i * slot + (slot - 2 * bar) / 2
        for j, (count, css) in enumerate(((d.suspensions, "bar-suspend"), (d.restorations, "bar-restore"))):
            if count:
                h = plot_h * count / top
                parts.append(
                    f'<rect class="{css}" x="{x + j * bar:.1f}" y="{TOP + plot_h - h:.1f}" '
                    f'width="{bar:.1f}" height="{h:.1f}"><title>{d.day.isoformat()}: {count} '
                    f"{'suspension' if j == 0 else 'restoration'}{'s' if count != 1 else ''}</title></rect>"
                )
        # Every 7th day, counted back from the last, so the last day always has its label.
        if (len(days) - 1 - i) % 7 == 0:
            parts.append(
                f'<text class="axis" x="{LEFT + i * slot + slot / 2:.1f}" y="{HEIGHT - 8}" '
                f'text-anchor="middle">{d.day.strftime("%d %b")}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
