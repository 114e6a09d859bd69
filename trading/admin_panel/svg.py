"""Server-rendered SVG bar charts (no JavaScript library, no CDN)."""

from __future__ import annotations

from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe


def bar_chart(rows: list[tuple[str, Decimal]], *, title: str, width: int = 420, signed: bool = False) -> SafeString:
    """Horizontal bars, one per (label, value). `signed`: bars grow left (red) or right
    (green) from a zero line in the middle."""
    row_h, label_w, pad = 26, 110, 8
    height = pad * 2 + 20 + row_h * max(len(rows), 1)
    plot_w = width - label_w - 90
    biggest = max((abs(v) for _, v in rows), default=Decimal(0)) or Decimal(1)
    zero_x = label_w + (plot_w // 2 if signed else 0)
    span = plot_w // 2 if signed else plot_w
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="td-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{pad}" y="{pad + 12}" class="td-chart-title">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(rows):
        y = pad + 20 + i * row_h
        length = int(abs(value) / biggest * span)
        x = zero_x - length if (signed and value < 0) else zero_x
        colour = "#c0392b" if (signed and value < 0) else "#2e8b57" if signed else "#417690"
        parts.append(f'<text x="{pad}" y="{y + 16}" class="td-chart-label">{escape(label)}</text>')
        parts.append(f'<rect x="{x}" y="{y + 4}" width="{max(length, 1)}" height="{row_h - 10}" fill="{colour}"/>')
        parts.append(
            f'<text x="{label_w + plot_w + 6}" y="{y + 16}" class="td-chart-value">{escape(f"{value:,.2f}")}</text>'
        )
    if signed:
        parts.append(
            f'<line x1="{zero_x}" y1="{pad + 18}" x2="{zero_x}" y2="{height - pad}" stroke="#888" stroke-width="1"/>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
