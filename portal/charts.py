"""Bar charts drawn on the server as inline SVG: the pages need no script and no chart library,
and the content security policy (nothing inline, styles from this origin only) holds, because
the charts are styled by classes of portal.css and SVG attributes, never a style attribute.

Every label and tooltip is escaped: supplier and brand names come from the suppliers. Values
are exact ``Decimal``s; coordinates are floats, for drawing only. Each chart is an
``<svg role="img">`` named by ``aria-label``, each bar carries a ``<title>`` (its tooltip) with
the exact figure, and the page shows the same figures as a table or a CSV.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

PALETTE_SIZE = 8  # classes chart-s0 … chart-s7 in portal.css; further series reuse them
TICKS = 4
FONT = 12  # px, in portal.css: the width of a label is estimated from it


@dataclass(frozen=True)
class Series:
    """One named row of values, one per category (a supplier's spend per month)."""

    name: str
    values: Sequence[Decimal]


def _nice_top(largest: Decimal) -> Decimal:
    """The top of the value axis: the smallest 1, 2, 2.5 or 5 × 10ⁿ step times TICKS that
    reaches ``largest``."""
    if largest <= 0:
        return Decimal(TICKS)
    raw = largest / TICKS
    power = Decimal(10) ** raw.adjusted()
    for multiple in (1, 2, Decimal("2.5"), 5, 10):
        if power * multiple >= raw:
            return power * multiple * TICKS
    raise AssertionError("unreachable: 10 × 10ⁿ exceeds raw")


def _label_width(text: str) -> float:
    return len(text) * FONT * 0.6


def _svg(width: float, height: float, label: str, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg">{}</svg>',
        label, f"{width:.0f}", f"{height:.0f}", f"{width:.0f}", f"{height:.0f}", body)


def stacked_bars(*, label: str, categories: Sequence[str], series: Sequence[Series],
                 value_text: Callable[[Decimal], str], height: int = 260) -> SafeString:
    """Vertical bars, one per category, stacked by series, with a value axis and a legend."""
    top = _nice_top(max((sum((s.values[i] for s in series), Decimal(0))
                         for i in range(len(categories))), default=Decimal(0)))
    axis_width = max(_label_width(value_text(top * k / TICKS)) for k in range(TICKS + 1)) + 8
    bar, gap, plot_top, plot_height = 36.0, 16.0, 10.0, float(height - 60)
    width = axis_width + len(categories) * (bar + gap) + gap
    legend_y = plot_top + plot_height + 36
    parts = []
    for k in range(TICKS + 1):
        y = plot_top + plot_height * (1 - k / TICKS)
        parts.append(format_html(
            '<line class="chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
            '<text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>',
            f"{axis_width:.1f}", f"{width:.1f}", f"{y:.1f}", f"{y:.1f}",
            f"{axis_width - 4:.1f}", f"{y + 4:.1f}", value_text(top * k / TICKS)))
    for i, category in enumerate(categories):
        x = axis_width + gap + i * (bar + gap)
        base = plot_top + plot_height
        for n, s in enumerate(series):
            value = s.values[i]
            if not value:
                continue
            h = plot_height * float(value / top)
            base -= h
            parts.append(format_html(
                '<rect class="chart-s{}" x="{}" y="{}" width="{}" height="{}">'
                '<title>{} · {}: {}</title></rect>',
                n % PALETTE_SIZE, f"{x:.1f}", f"{base:.1f}", f"{bar:.1f}", f"{h:.1f}",
                s.name, category, value_text(value)))
        parts.append(format_html(
            '<text class="chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
            f"{x + bar / 2:.1f}", f"{plot_top + plot_height + 16:.1f}", category))
    x = axis_width
    for n, s in enumerate(series):
        parts.append(format_html(
            '<rect class="chart-s{}" x="{}" y="{}" width="10" height="10"/>'
            '<text class="chart-legend" x="{}" y="{}">{}</text>',
            n % PALETTE_SIZE, f"{x:.1f}", f"{legend_y - 9:.1f}", f"{x + 14:.1f}",
            f"{legend_y:.1f}", s.name))
        x += 14 + _label_width(s.name) + 16
    return _svg(max(width, x), height, label, format_html_join("", "{}", ((p,) for p in parts)))


def horizontal_bars(*, label: str, labels: Sequence[str], values: Sequence[Decimal],
                    value_text: Callable[[Decimal], str], width: int = 640) -> SafeString:
    """One horizontal bar per label, longest first as given, the figure at its end."""
    row, bar = 24.0, 16.0
    label_width = max((_label_width(text) for text in labels), default=0) + 8
    figure_width = max((_label_width(value_text(v)) for v in values), default=0) + 8
    plot_width = max(width - label_width - figure_width, 80)
    largest = max(values, default=Decimal(0))
    rows = format_html_join("", (
        '<text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>'
        '<rect class="chart-s0" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>'
        '<text class="chart-axis" x="{}" y="{}">{}</text>'
    ), (
        (f"{label_width - 6:.1f}", f"{i * row + bar - 3:.1f}", text,
         f"{label_width:.1f}", f"{i * row:.1f}", f"{w:.1f}", f"{bar:.1f}", text,
         value_text(value), f"{label_width + w + 4:.1f}", f"{i * row + bar - 3:.1f}",
         value_text(value))
        for i, (text, value) in enumerate(zip(labels, values, strict=True))
        for w in [plot_width * float(value / largest) if largest else 0.0]
    ))
    return _svg(label_width + plot_width + figure_width, max(len(labels), 1) * row, label, rows)


def rate_bar(fraction: Decimal, *, label: str) -> SafeString:
    """A small bar for a table cell: ``fraction`` (0 to 1) of its width filled."""
    filled = 60 * min(max(float(fraction), 0.0), 1.0)
    return format_html(
        '<svg class="chart chart-rate" role="img" aria-label="{}" width="60" height="8" '
        'viewBox="0 0 60 8" xmlns="http://www.w3.org/2000/svg">'
        '<rect class="chart-track" width="60" height="8"/>'
        '<rect class="chart-s0" width="{}" height="8"/></svg>',
        label, f"{filled:.1f}")

