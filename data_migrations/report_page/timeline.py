"""The freeze window drawn as inline SVG: one bar per part, each starting where the one
before it ended, on one scale of seconds; the presyncs before the freeze above it, each
on the same scale, and the verify after it."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from data_migrations.report_page.words import word

WIDTH, LABEL, FIGURE, ROW = 760, 170, 90, 26
BAR_AREA = WIDTH - LABEL - FIGURE
COLOURS = {"presync": "#8a9bb0", "preflight": "#e0a030", "rows": "#3a7bd5",
           "files": "#2e9e6a", "paths": "#8e5cc4", "between steps": "#b0b0b0",
           "verify": "#d0546a", "run": "#3a7bd5"}


@dataclass(frozen=True)
class Bar:
    step: str  # preflight, rows, files, paths, between steps, presync, verify, run
    seconds: float
    note: str = ""  # when it ran, for a bar outside the freeze
    chained: bool = True  # starts where the chained bar before it ended


def svg(bars: list[Bar], language: str) -> str:
    """The bars as an SVG drawing with a label and a time on each row."""
    scale = BAR_AREA / max(sum(b.seconds for b in bars if b.chained),
                           max((b.seconds for b in bars), default=0.0), 1e-9)
    rows, offset = [], 0.0
    for index, bar in enumerate(bars):
        start = offset if bar.chained else 0.0
        rows.append(_row(index, bar, start * scale, bar.seconds * scale, language))
        if bar.chained:
            offset += bar.seconds
    height = ROW * len(bars) + 6
    return (f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
            f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">'
            + "".join(rows) + "</svg>")


def _row(index: int, bar: Bar, x: float, width: float, language: str) -> str:
    y = index * ROW + 4
    label = word(f"step.{bar.step}", language) + (f" {bar.note}" if bar.note else "")
    return (f'<g class="part" data-step="{escape(bar.step)}">'
            f'<text x="0" y="{y + 15}" font-size="12">{escape(label)}</text>'
            f'<rect class="bar" x="{LABEL + x:.1f}" y="{y}" width="{max(width, 1.0):.1f}" '
            f'height="{ROW - 8}" fill="{COLOURS.get(bar.step, "#666")}"/>'
            f'<text x="{WIDTH - FIGURE + 6}" y="{y + 15}" font-size="12">'
            f"{bar.seconds:,.1f} s</text></g>")
