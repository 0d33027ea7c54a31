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

__all__ = ["Histogram", "bars_svg", "delegation_svg", "histogram_svg"]

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


_REJECT = str(2**256 - 1)
#: columns of the delegation graph: delegation chains are short (the market resolves a few hops)
_MAX_COLUMNS = 6


def _vote_word(ask: str | None) -> str:
    if ask is None:
        return ""
    if ask == _REJECT:
        return "rejects"
    return "accepts" if ask == "0" else "asks"


def delegation_svg(
    weights: dict[str, int], edges: Sequence[tuple[str, str]], votes: dict[str, str]
) -> Markup:
    """Owners of a selection (their samples) on the left, each delegation an arrow to the
    right, every node with its vote if it cast one."""
    if not weights:
        return Markup('<p class="empty">no selection indexed yet</p>')
    depth = {a.lower(): 0 for a in weights}
    names = {a.lower(): a for a in weights}
    for _ in range(len(edges) + 1):  # chains are short: relax until nothing moves
        moved = False
        for a, b in edges:
            names.setdefault(b.lower(), b)
            want = min(depth.get(a.lower(), 0) + 1, _MAX_COLUMNS - 1)
            if depth.get(b.lower(), -1) < want:  # a delegate sits right of all who use it
                depth[b.lower()] = want
                moved = True
        if not moved:
            break
    columns: dict[int, list[str]] = {}
    for key, col in sorted(depth.items(), key=lambda kv: (kv[1], kv[0])):
        columns.setdefault(col, []).append(key)
    place = {k: (20 + c * 230, 24 + r * 28) for c, ks in columns.items() for r, k in enumerate(ks)}
    vote_of = {v.lower(): a for v, a in votes.items()}
    weight_of = {w.lower(): n for w, n in weights.items()}
    width = 20 + (max(columns) + 1) * 230
    height = 24 + max(len(ks) for ks in columns.values()) * 28
    parts = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#5a6472"/></marker>'
        "</defs>"
    ]
    for a, b in edges:
        (x1, y1), (x2, y2) = place[a.lower()], place[b.lower()]
        parts.append(
            f'<line x1="{x1 + 6}" y1="{y1}" x2="{x2 - 8}" y2="{y2}" stroke="#5a6472" '
            'marker-end="url(#arrow)"/>'
        )
    for key, (x, y) in place.items():
        word = _vote_word(vote_of.get(key))
        samples = f" · {weight_of[key]} samples" if key in weight_of else ""
        fill = {"rejects": "#a3231a", "accepts": "#1f6b3a", "asks": "#b07d10"}.get(word, "#fff")
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="6" fill="{fill}" stroke="#3b6ea5"/>'
            f'<text x="{x + 10}" y="{y + 4}" font-size="11">{escape(names[key][:10])}…'
            f"{escape(samples)}{(' · ' + word) if word else ''}</text>"
        )
    label = (
        f"delegation graph: {len(weights)} owners of selected samples, {len(edges)} "
        f"delegations, {len(votes)} votes"
    )
    return Markup(  # noqa: S704 - numbers and escaped text only
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(label)}</title>'
        + "".join(parts)
        + "</svg>"
    )
