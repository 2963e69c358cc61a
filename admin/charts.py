"""Small inline SVG charts, drawn on the server: no chart library, no external script
(the admin runs under a strict CSP) and readable on a phone."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def bar_chart(rows: Sequence[tuple[str, float]], *, title: str, unit: str = "") -> Markup:
    """Horizontal bars, one per (label, value): counts per area, category or channel."""
    width, bar_h, gap, label_w = 320, 18, 8, 120
    top = max((v for _, v in rows), default=0) or 1
    height = len(rows) * (bar_h + gap) + gap
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = (width - label_w - 50) * value / top
        text = str(label) if len(str(label)) <= 18 else str(label)[:17] + "…"  # cut before escaping
        parts.append(f'<text x="0" y="{y + bar_h - 5}" class="chart-label">{escape(text)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" class="chart-bar"/>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 5}" class="chart-value">'
                     f'{value:g}{escape(unit)}</text>')
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
