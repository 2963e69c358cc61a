"""Small inline SVG charts, drawn on the server: no chart library, no external script
(the admin runs under a strict CSP) and readable on a phone."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def bar_chart(rows: Sequence[tuple[str, float]], *, title: str, unit: str = "") -> Markup:
    """Horizontal bars, one per (label, value): counts per area, category or channel. Each
    label is written whole on its own line above its bar ("Awarie i utrudnienia (woda, prąd,
    drogi)" had been cut to 17 letters beside it)."""
    width, bar_h, label_h, gap = 320, 14, 15, 9
    top = max((v for _, v in rows), default=0) or 1
    row_h = label_h + bar_h + gap
    height = len(rows) * row_h + 2
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value) in enumerate(rows):
        y = i * row_h
        w = max(1.0, (width - 60) * value / top) if value else 0.0
        parts.append(f'<text x="0" y="{y + label_h - 3}" class="chart-label">{escape(str(label))}</text>'
                     f'<rect x="0" y="{y + label_h}" width="{w:.1f}" height="{bar_h}" class="chart-bar"/>'
                     f'<text x="{w + 4:.1f}" y="{y + label_h + bar_h - 2}" class="chart-value">'
                     f'{value:g}{escape(unit)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(points: Sequence[tuple[str, float]], *, title: str) -> Markup:
    """Vertical bars over time (deliveries per minute): a send within one minute is one
    column, not a line up and down again (drawn as a line, it looked like a triangle)."""
    width, height, pad, foot = 320, 140, 28, 16
    if not points:
        return Markup(f'<p class="muted">{escape(title)}: —</p>')
    top = max(v for _, v in points) or 1
    slot = (width - pad) / len(points)
    bar = max(1.0, min(40.0, slot * 0.8))
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<line x1="{pad}" y1="{height - foot}" x2="{width}" y2="{height - foot}" class="chart-axis"/>',
             f'<text x="{pad - 4}" y="12" text-anchor="end" class="chart-value">{top:g}</text>',
             f'<text x="{pad - 4}" y="{height - foot}" text-anchor="end" class="chart-value">0</text>']
    for i, (label, value) in enumerate(points):
        h = (height - foot - 14) * value / top
        x = pad + i * slot + (slot - bar) / 2
        parts.append(f'<rect x="{x:.1f}" y="{height - foot - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                     f'class="chart-bar"><title>{escape(label)}: {value:g}</title></rect>')
    first, last = points[0][0], points[-1][0]
    parts.append(f'<text x="{pad}" y="{height - 3}" class="chart-label">{escape(first)}</text>')
    if last != first:
        parts.append(f'<text x="{width}" y="{height - 3}" text-anchor="end" class="chart-label">{escape(last)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(points: Sequence[tuple[str, float]], *, title: str) -> Markup:
    """A line over time (deliveries per minute, residents per day); labels on the ends."""
    width, height, pad = 320, 140, 24
    if not points:
        return Markup(f'<p class="muted">{escape(title)}: —</p>')
    top = max(v for _, v in points) or 1
    step = (width - 2 * pad) / max(1, len(points) - 1)
    coords = [(pad + i * step, height - pad - (height - 2 * pad) * v / top) for i, (_, v) in enumerate(points)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<polyline points="{path}" class="chart-line" fill="none"/>'
        f'<text x="{pad}" y="{height - 4}" class="chart-label">{escape(points[0][0])}</text>'
        f'<text x="{width - pad}" y="{height - 4}" text-anchor="end" class="chart-label">{escape(points[-1][0])}</text>'
        f'<text x="{pad}" y="12" class="chart-value">{top:g}</text></svg>')
