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


LINE_COLOURS = ["#1f2d3d", "#417690", "#d68910", "#2e8b57", "#8e44ad", "#c0392b"]


def line_chart(
    series: list[tuple[str, list[Decimal]]], *, labels: list[str], title: str, width: int = 640, height: int = 220
) -> SafeString:
    """Lines over shared x `labels` (dates), one per (name, values); a zero line; the y range
    from the values; each line's last value printed in its legend as the tables print money."""
    pad, legend_h, axis_w = 8, 18, 70
    top, bottom = pad + 20, height - pad - 18 - legend_h
    left, right = pad + axis_w, width - pad
    values = [v for _, vs in series for v in vs] or [Decimal(0)]
    low, high = min(min(values), Decimal(0)), max(max(values), Decimal(0))
    if high == low:
        high = low + 1
    steps = max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return left + (right - left) * i / steps

    def y(v: Decimal) -> float:
        return bottom - float((v - low) / (high - low)) * (bottom - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="td-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{pad}" y="{pad + 12}" class="td-chart-title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{y(Decimal(0)):.1f}" x2="{right}" y2="{y(Decimal(0)):.1f}" stroke="#888"/>',
    ]
    for level, at in ((high, top), (low, bottom)):
        text = escape(f"{level:,.2f}")
        parts.append(f'<text x="{left - 6}" y="{at + 4}" text-anchor="end" class="td-chart-label">{text}</text>')
    if labels:
        parts.append(f'<text x="{left}" y="{bottom + 16}" class="td-chart-label">{escape(labels[0])}</text>')
        parts.append(
            f'<text x="{right}" y="{bottom + 16}" text-anchor="end" class="td-chart-label">{escape(labels[-1])}</text>'
        )
    legend_x = left
    for n, (name, vs) in enumerate(series):
        colour = LINE_COLOURS[n % len(LINE_COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs))
        if points:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        last = vs[-1] if vs else Decimal(0)
        legend = f"{name} {last:,.2f}"
        parts.append(f'<rect x="{legend_x}" y="{height - pad - 10}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - pad}" class="td-chart-label">{escape(legend)}</text>')
        legend_x += 24 + 7 * len(legend)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
