"""Facet counts and value histograms of a search's matches, for the search page.

The matches are exactly those of :func:`visdm.index.search_index` for the same filters: the
query reuses the index's own ``WHERE`` clause. One pass over the matching rows gives every
facet (labels, resolutions, formats, duplicates, regions, licence purposes) and the histograms
of brightness, contrast, sharpness and past value.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from visdm.config import Settings
from visdm.index import SearchFilters, open_index
from visdm.index._search import _FROM, _where

from ._svg import Histogram

__all__ = ["Facets", "facets"]

_BINS = 16
_TOP = 12


@dataclass(frozen=True, slots=True)
class Facets:
    """What the matches of a search are made of, facet by facet."""

    total: int
    labels: list[tuple[str, int]]
    resolutions: list[tuple[str, int]]
    formats: list[tuple[str, int]]
    duplicates: list[tuple[str, int]]
    regions: list[tuple[str, int]]
    purposes: list[tuple[str, int]]
    scored: list[tuple[str, int]]
    histograms: list[Histogram] = field(default_factory=list)


def _linear(name: str, values: Sequence[float] | np.ndarray) -> Histogram:
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Histogram(name, [], [])
    low, high = float(data.min()), float(data.max())
    if high <= low:
        return Histogram(name, [low, low + 1], [int(data.size)])
    counts, edges = np.histogram(data, bins=_BINS, range=(low, high))
    return Histogram(name, [float(e) for e in edges], [int(c) for c in counts])


def _log(name: str, values: Sequence[float]) -> Histogram:
    """A histogram over log10 of positive values (sharpness spans orders of magnitude)."""
    data = np.asarray(values, dtype=np.float64)
    hist = _linear(name, np.log10(data[data > 0]))
    return Histogram(name, [10**e for e in hist.edges], hist.counts)


def _top(counter: Counter[str]) -> list[tuple[str, int]]:
    return counter.most_common(_TOP)


def facets(
    settings: Settings, filters: SearchFilters, *, url: str | None = None, now: int | None = None
) -> Facets:
    """Facet counts and histograms of the samples ``filters`` match in the index."""
    at = int(time.time()) if now is None else now
    db = open_index(settings, url)
    try:
        where, params = _where(db, filters, at)
        rows = db.query(
            "SELECT s.asset_id, s.label, s.width, s.height, s.format, s.cluster_size, "
            f"s.brightness, s.contrast, s.blur, sc.score {_FROM} WHERE {where}",
            params,
        )
        region_rows = db.query(
            "SELECT ar.asset_id, r.name FROM asset_regions ar JOIN regions r "
            "ON r.region = ar.region"
        )
        purpose_rows = db.query("SELECT asset_id, purpose FROM asset_purposes")
    finally:
        db.close()
    per_asset: Counter[int] = Counter()
    labels: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    dups: Counter[str] = Counter()
    brightness, contrast, sharpness, scores = [], [], [], []
    for r in rows:
        per_asset[int(r[0])] += 1
        labels[str(r[1])] += 1
        sizes[f"{r[2]}x{r[3]}"] += 1
        formats[str(r[4] or "unknown")] += 1
        dups["in a near-duplicate cluster" if int(r[5]) > 1 else "no near-duplicate"] += 1
        brightness.append(float(r[6]))
        contrast.append(float(r[7]))
        sharpness.append(float(r[8]))
        if r[9] is not None:
            scores.append(float(r[9]))
    regions: Counter[str] = Counter()
    for asset_id, name in region_rows:
        regions[str(name)] += per_asset.get(int(asset_id), 0)
    purposes: Counter[str] = Counter()
    for asset_id, purpose in purpose_rows:
        purposes[str(purpose)] += per_asset.get(int(asset_id), 0)
    return Facets(
        total=len(rows),
        labels=_top(labels),
        resolutions=_top(sizes),
        formats=_top(formats),
        duplicates=_top(dups),
        regions=[(k, n) for k, n in _top(regions) if n],
        purposes=[(k, n) for k, n in _top(purposes) if n],
        scored=[("scored", len(scores)), ("never scored", len(rows) - len(scores))],
        histograms=[
            _linear("brightness", brightness),
            _linear("contrast", contrast),
            _log("sharpness", sharpness),
            _linear("past value", scores),
        ],
    )
