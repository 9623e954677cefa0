"""Charts drawn on the server as inline SVG, and the same figures as CSV.

A chart is labels along the x axis and one or more series of numbers, one per label.
Bars of several series are stacked; lines are drawn one per series. Each drawing
carries a <title> and a <desc> that says the figures in words, a <title> on every bar
and point (read by screen readers and shown on hover), and a legend with each
series' total, so nothing is known only from a shape or a colour. No script, no
style sheet and nothing from outside the service: the markup is the chart.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 64  # room for the y axis' numbers, the x axis' labels and the legend
Y_TICKS = 4
CHARACTER_WIDTH = 6.5  # of an x axis label at font-size 11: labels that would overlap are thinned out
# Colours told apart with red-green colour blindness (Okabe and Ito).
COLOURS = ("#0072b2", "#d55e00", "#009e73", "#e69f00", "#56b4e9", "#cc79a7", "#000000", "#f0e442")


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.values)


@dataclass(frozen=True)
class Chart:
    """What one chart shows: `labels` along the x axis, each series a number per label."""

    slug: str  # names its CSV download
    title: str
    description: str
    x_label: str
    y_label: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    kind: str = "bar"  # "bar" (stacked when several series) or "line"
    totals: bool = True  # whether adding a series' values up means something (counts: yes; percentiles: no)

    @property
    def is_empty(self) -> bool:
        return not self.labels or not any(value for series in self.series for value in series.values)

    def rows(self) -> list[list]:
        """The figures as a table: a header, then one row per label."""
        header = [self.x_label, *(series.name for series in self.series)]
        return [header] + [
            [label, *(_number(series.values[index]) for series in self.series)]
            for index, label in enumerate(self.labels)
        ]


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def _text(value: float) -> str:
    value = _number(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.3g}" if value < 1000 else f"{value:,.0f}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def tick_count(top: float, *, whole: bool) -> int:
    """How many steps the y axis is divided in: Y_TICKS, or fewer or more so that counts get whole steps."""
    if not whole:
        return Y_TICKS
    return next(count for count in (Y_TICKS, 5, 2, 1) if float(top / count).is_integer())


def to_csv(chart: Chart) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(chart.rows())
    return buffer.getvalue()


def to_svg(chart: Chart) -> SafeString:
    """The chart as an <svg> element for inline use."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = len(chart.labels)
    if chart.kind == "bar":
        peak = max((sum(series.values[index] for series in chart.series) for index in range(count)), default=0)
    else:
        peak = max((value for series in chart.series for value in series.values), default=0)
    top = nice_ceiling(peak)
    whole = all(float(value).is_integer() for series in chart.series for value in series.values)
    ticks = tick_count(top, whole=whole)
    slot = plot_width / max(count, 1)

    def y(value: float) -> float:
        return TOP + plot_height - value / top * plot_height

    parts = [_axes(chart, top, ticks, y, slot, plot_width, plot_height)]
    parts.append(_bars(chart, y, slot) if chart.kind == "bar" else _lines(chart, y, slot))
    parts.append(_legend(chart))
    ident = f"chart-{chart.slug}"
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{}" viewBox="0 0 {} {}" width="100%" '
        'role="img" aria-labelledby="{}-title {}-desc" data-kind="{}">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        ident,
        WIDTH,
        HEIGHT,
        ident,
        ident,
        chart.kind,
        ident,
        chart.title,
        ident,
        describe(chart),
        mark_safe("".join(parts)),  # noqa: S308 - built by format_html above
    )


def describe(chart: Chart) -> str:
    """The figures in words, for the <desc>: what is shown, and each series' total and peak."""
    if chart.is_empty:
        return f"{chart.description} Nothing recorded."
    said = []
    for series in chart.series:
        peak = max(range(len(series.values)), key=lambda index: series.values[index])
        total = f"total {_text(series.total)}, " if chart.totals else ""
        said.append(f"{series.name}: {total}highest {_text(series.values[peak])} at {chart.labels[peak]}")
    return f"{chart.description} {chart.x_label} from {chart.labels[0]} to {chart.labels[-1]}. " + "; ".join(said) + "."


def _axes(chart: Chart, top: float, ticks: int, y, slot: float, plot_width: float, plot_height: float) -> str:
    bottom = TOP + plot_height
    ticks = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11" dominant-baseline="middle">{}</text>',
        (
            (LEFT, f"{y(value):.1f}", LEFT + plot_width, f"{y(value):.1f}", LEFT - 6, f"{y(value):.1f}", _text(value))
            for value in (top * step / ticks for step in range(ticks + 1))
        ),
    )
    # Every bar and point keeps its own <title> when its label is left out.
    widest = max((len(label) for label in chart.labels), default=0) * CHARACTER_WIDTH + 8
    every = max(1, math.ceil(len(chart.labels) * widest / plot_width))
    labels = format_html_join(
        "",
        '<text class="x-label" x="{}" y="{}" text-anchor="middle" font-size="11">{}</text>',
        (
            (f"{LEFT + slot * (index + 0.5):.1f}", bottom + 14, label)
            for index, label in enumerate(chart.labels)
            if index % every == 0
        ),
    )
    return format_html(
        '<g class="axes">{}<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#333"/>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#333"/>{}'
        '<text x="{}" y="{}" text-anchor="middle" font-size="11">{}</text>'
        '<text x="12" y="{}" text-anchor="middle" font-size="11" transform="rotate(-90 12 {})">{}</text></g>',
        ticks,
        LEFT,
        TOP,
        LEFT,
        bottom,
        LEFT,
        bottom,
        LEFT + plot_width,
        bottom,
        labels,
        LEFT + plot_width / 2,
        bottom + 30,
        chart.x_label,
        TOP + plot_height / 2,
        TOP + plot_height / 2,
        chart.y_label,
    )


def _bars(chart: Chart, y, slot: float) -> str:
    width = max(slot * 0.8, 1)
    bars = []
    for index, label in enumerate(chart.labels):
        below = 0.0
        for number, series in enumerate(chart.series):
            value = series.values[index]
            if not value:
                continue
            bars.append(
                format_html(
                    '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}" data-label="{}" '
                    'data-series="{}" data-value="{}"><title>{}, {}: {}</title></rect>',
                    f"{LEFT + slot * index + (slot - width) / 2:.1f}",
                    f"{y(below + value):.1f}",
                    f"{width:.1f}",
                    f"{y(below) - y(below + value):.1f}",
                    COLOURS[number % len(COLOURS)],
                    label,
                    series.name,
                    _number(value),
                    label,
                    series.name,
                    _text(value),
                )
            )
            below += value
    return "".join(bars)


def _lines(chart: Chart, y, slot: float) -> str:
    drawn = []
    for number, series in enumerate(chart.series):
        colour = COLOURS[number % len(COLOURS)]
        points = [(LEFT + slot * (index + 0.5), y(value)) for index, value in enumerate(series.values)]
        drawn.append(
            format_html(
                '<polyline class="line" fill="none" stroke="{}" stroke-width="2" points="{}" data-series="{}"/>',
                colour,
                " ".join(f"{x:.1f},{top:.1f}" for x, top in points),
                series.name,
            )
        )
        drawn.extend(
            format_html(
                '<circle class="point" cx="{}" cy="{}" r="2.5" fill="{}" data-label="{}" data-series="{}" '
                'data-value="{}"><title>{}, {}: {}</title></circle>',
                f"{x:.1f}",
                f"{top:.1f}",
                colour,
                label,
                series.name,
                _number(value),
                label,
                series.name,
                _text(value),
            )
            for (x, top), label, value in zip(points, chart.labels, series.values, strict=True)
        )
    return "".join(drawn)


def _legend(chart: Chart) -> str:
    entries, x = [], LEFT
    for number, series in enumerate(chart.series):
        text = f"{series.name} ({_text(series.total)})" if chart.totals else series.name
        entries.append(
            format_html(
                '<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>',
                x,
                HEIGHT - 16,
                COLOURS[number % len(COLOURS)],
                x + 14,
                HEIGHT - 7,
                text,
            )
        )
        x += 24 + 7 * len(text)
    return format_html('<g class="legend">{}</g>', mark_safe("".join(entries)))  # noqa: S308 - each from format_html
