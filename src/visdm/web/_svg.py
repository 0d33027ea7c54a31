"""Pictures drawn on the server as inline SVG: histograms and horizontal bars.

No chart library and no script: the page stays readable without JavaScript, and each picture
carries a ``<title>`` and an ``aria-label`` that says in words what it shows, for screen
readers and for tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

__all__ = ["Histogram", "bars_svg", "histogram_svg"]

_BAR = "#3b6ea5"


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts of values in consecutive bins; ``edges`` has one more entry than ``counts``."""

    name: str
    edges: list[float]
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


def _fmt(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 10_000:
        return f"{value:.3g}"
    return f"{value:.2e}"


def histogram_svg(hist: Histogram, *, width: int = 320, height: int = 110) -> Markup:
    """A histogram of ``hist`` with its range under it."""
    label = f"histogram of {hist.name}: {hist.total} samples"
    if not hist.counts or hist.total == 0:
        return Markup(  # noqa: S704 - only escaped text is interpolated
            f'<p class="empty">no values of {escape(hist.name)}</p>'
        )
    top = max(hist.counts)
    plot_h = height - 22
    step = width / len(hist.counts)
    bars = []
    for i, count in enumerate(hist.counts):
        h = 0.0 if top == 0 else plot_h * count / top
        low, high = _fmt(hist.edges[i]), _fmt(hist.edges[i + 1])
        bars.append(
            f'<rect x="{i * step:.1f}" y="{plot_h - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{_BAR}"><title>{low} to {high}: {count}</title></rect>'
        )
    first, last = _fmt(hist.edges[0]), _fmt(hist.edges[-1])
    return Markup(  # noqa: S704 - numbers and escaped text only
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(label)}</title>'
        + "".join(bars)
        + f'<text x="0" y="{height - 6}" font-size="11">{first}</text>'
        f'<text x="{width}" y="{height - 6}" font-size="11" text-anchor="end">{last}</text>'
        "</svg>"
    )


def bars_svg(
    rows: Sequence[tuple[str, float]], *, title: str, unit: str = "", width: int = 420
) -> Markup:
    """Horizontal bars, one per ``(name, value)`` row, largest value full width."""
    if not rows:
        return Markup(  # noqa: S704 - escaped text only
            f'<p class="empty">{escape(title)}: nothing yet</p>'
        )
    line = 20
    height = line * len(rows) + 4
    top = max((v for _, v in rows), default=0) or 1
    label_w = 150
    parts = []
    for i, (name, value) in enumerate(rows):
        y = i * line + 2
        w = max((width - label_w - 90) * value / top, 0)
        shown = f"{_fmt(value)}{(' ' + unit) if unit else ''}"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" font-size="12" text-anchor="end">'
            f"{escape(name[:22])}</text>"
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{line - 6}" fill="{_BAR}">'
            f"<title>{escape(name)}: {escape(shown)}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="12">{escape(shown)}</text>'
        )
    label = f"{title}: " + ", ".join(f"{n} {_fmt(v)}" for n, v in rows[:20])
    return Markup(  # noqa: S704 - numbers and escaped text only
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
        + "".join(parts)
        + "</svg>"
    )
