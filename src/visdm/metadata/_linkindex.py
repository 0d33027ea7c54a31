"""The node's index of active samples: near-duplicate links, bounded per sample, and clusters.

Design section 3.2 step 7 links every new sample to the active samples whose pHash lies within
a Hamming radius (default 8 bits). Linking to *every* such sample makes the metadata grow as
N²: small, centred images such as Fashion-MNIST's share coarse pHashes, and at 70k samples
radius 8 held 2.82M pairs, so that a 5,000-sample asset's document reached 66 MB. The index
can therefore keep, per new sample, at most ``max_links`` links — the nearest, then the
oldest (:data:`DEFAULT_MAX_LINKS` is what a node passes) — and gives each sample a
**cluster**: the cluster of its nearest linked sample (the first link), or the sample itself
when it links to nothing. A cluster is a tree whose every edge is
a link within the radius, rooted at its first sample; the root never changes (samples only
join existing trees), so a cluster id, once attested, stays right, and a reader can group
the samples of a selection that copy one another even when the copies they link to were not
selected (:func:`selection_links`). Metadata, index rows and clusters all grow linearly with
the samples. The bound and the clusters go together: with bounded links alone, copies of one
image beyond the first ``max_links`` link only to the oldest ones, and a selection without
those would pay each copy. So the default keeps every link, as before; a node that bounds the
links publishes each sample's cluster, and valuation groups by :func:`selection_links`.

Search is :func:`._hamming.find_cross_pairs` between the batch and the active samples (its
block count measured on the actual hashes), plus the pairs inside the batch: never the pairs
among active samples, which a joint all-pairs search used to form and throw away.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from visdm.errors import InvalidInputError

from ._describe import read_cluster
from ._hamming import (
    DEFAULT_DUPLICATE_RADIUS,
    HashesLike,
    _as_hashes,
    _check_radius,
    find_cross_pairs,
    find_duplicate_pairs,
    popcount64,
)

__all__ = ["DEFAULT_MAX_LINKS", "HammingIndex", "Neighbour", "selection_links"]

#: links a node that publishes clusters keeps per new sample (the nearest, then the oldest)
DEFAULT_MAX_LINKS = 8

IdT = TypeVar("IdT", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Neighbour(Generic[IdT]):
    """One near-duplicate: which sample, and how many bits its hash differs."""

    sample_id: IdT
    distance: int


def _check_max_links(max_links: int | None) -> int | None:
    if max_links is None:
        return None
    if isinstance(max_links, bool) or not isinstance(max_links, int) or max_links < 1:
        raise InvalidInputError(
            f"max_links must be a positive integer (or None for every link), got {max_links!r}"
        )
    return max_links


class HammingIndex(Generic[IdT]):
    """The pHashes of the active samples, searchable by Hamming radius, with their clusters.

    Ids are any hashable value (the marketplace uses :data:`~visdm.types.SampleId`); an id is
    held at most once. Results list neighbours by distance, then by insertion order.
    ``max_links`` bounds the links :meth:`link` returns per new sample (``None``: all).
    """

    def __init__(
        self,
        *,
        radius: int = DEFAULT_DUPLICATE_RADIUS,
        max_links: int | None = None,
    ) -> None:
        self._radius = _check_radius(radius)
        self._max_links = _check_max_links(max_links)
        self._ids: list[IdT | None] = []
        self._row: dict[IdT, int] = {}
        # the cluster of every row ever added; kept after a removal, since it names a tree
        self._clusters: list[IdT] = []
        self._hashes = np.zeros(64, dtype=np.uint64)
        self._active = np.zeros(64, dtype=bool)

    @property
    def radius(self) -> int:
        return self._radius

    @property
    def max_links(self) -> int | None:
        return self._max_links

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._row

    def cluster_of(self, sample_id: IdT) -> IdT:
        """The cluster (its first sample's id) of a sample the index holds."""
        row = self._row.get(sample_id)
        if row is None:
            raise InvalidInputError(f"sample {_show(sample_id)} is not in the index")
        return self._clusters[row]

    def add(
        self,
        sample_ids: Sequence[IdT],
        hashes: HashesLike,
        *,
        clusters: Sequence[IdT] | None = None,
    ) -> None:
        """Add samples; refuses an id already held or repeated in the call.

        ``clusters`` restores the clusters attested for them (default: each its own).
        """
        values = _as_hashes(hashes)
        ids = list(sample_ids)
        if len(ids) != values.size:
            raise InvalidInputError(f"{len(ids)} sample ids but {values.size} hashes")
        roots = list(ids) if clusters is None else list(clusters)
        if len(roots) != len(ids):
            raise InvalidInputError(f"{len(ids)} sample ids but {len(roots)} clusters")
        seen: set[IdT] = set()
        for sample_id in ids:
            if sample_id in self._row or sample_id in seen:
                raise InvalidInputError(
                    f"sample {_show(sample_id)} is already in the index: remove it first"
                )
            seen.add(sample_id)
        start = len(self._ids)
        self._grow(start + len(ids))
        self._hashes[start : start + len(ids)] = values
        self._active[start : start + len(ids)] = True
        for offset, sample_id in enumerate(ids):
            self._ids.append(sample_id)
            self._row[sample_id] = start + offset
        self._clusters.extend(roots)

    def remove(self, sample_ids: Sequence[IdT]) -> None:
        """Deactivate samples (a withdrawn asset); refuses ids the index does not hold."""
        missing = [s for s in sample_ids if s not in self._row]
        if missing:
            raise InvalidInputError(
                f"{len(missing)} sample(s) are not in the index, e.g. {_show(missing[0])}"
            )
        for sample_id in sample_ids:
            row = self._row.pop(sample_id)
            self._active[row] = False
            self._ids[row] = None

    def query(self, phash: int, *, radius: int | None = None) -> list[Neighbour[IdT]]:
        """Every active sample within ``radius`` (default: the index's) of ``phash``."""
        value = _as_hashes([phash])[0]
        r = self._radius if radius is None else _check_radius(radius)
        size = len(self._ids)
        dist = popcount64(self._hashes[:size] ^ value)
        rows = np.flatnonzero((dist <= r) & self._active[:size])
        rows = rows[np.argsort(dist[rows], kind="stable")]
        return [Neighbour(self._id(row), int(dist[row])) for row in rows.tolist()]

    def link(
        self,
        sample_ids: Sequence[IdT],
        hashes: HashesLike,
        *,
        radius: int | None = None,
        max_links: int | None = -1,
    ) -> list[tuple[IdT, IdT, int]]:
        """Link new samples to the active samples and to each other, then add them.

        Returns ``(new id, other id, distance)`` for the pairs within ``radius``, ordered by
        the new sample's position, then distance, then the other's age; a pair of two new
        samples appears once, with the later one first. Each new sample keeps its first
        ``max_links`` (default: the index's; ``None``: all) and joins the cluster of its first
        link (:meth:`cluster_of`). With no bound the result is the same as querying each new
        hash against everything added before it.
        """
        values = _as_hashes(hashes)
        ids = list(sample_ids)
        r = self._radius if radius is None else _check_radius(radius)
        bound = self._max_links if max_links == -1 else _check_max_links(max_links)
        if len(ids) != values.size:
            raise InvalidInputError(f"{len(ids)} sample ids but {values.size} hashes")
        size = len(self._ids)
        old_rows = np.flatnonzero(self._active[:size])
        n_old = old_rows.size
        self.add(ids, values)  # validates the ids before any work
        # (new position, other's rank, distance); an old sample's rank is its position among
        # the active rows, a new sample's is n_old + its position in this batch
        cross = find_cross_pairs(values, self._hashes[old_rows], radius=r)
        inner = find_duplicate_pairs(values, radius=r)
        new_pos = np.concatenate([cross.first, inner.second])
        rank = np.concatenate([cross.second, n_old + inner.first])
        dist = np.concatenate([cross.distance, inner.distance]).astype(np.int64)
        order = np.lexsort((rank, dist, new_pos))
        new_pos, rank, dist = new_pos[order], rank[order], dist[order]
        if bound is not None and new_pos.size:
            starts = np.searchsorted(new_pos, new_pos, side="left")
            keep = np.arange(new_pos.size) - starts < bound
            new_pos, rank, dist = new_pos[keep], rank[keep], dist[keep]
        first_row = size  # add() put the batch at the end, in order
        out: list[tuple[IdT, IdT, int]] = []
        previous = -1
        for p, q, d in zip(new_pos.tolist(), rank.tolist(), dist.tolist(), strict=True):
            other_row = int(old_rows[q]) if q < n_old else first_row + q - n_old
            if p != previous:  # the first link is the nearest: the new sample joins its tree
                self._clusters[first_row + p] = self._clusters[other_row]
                previous = p
            out.append((ids[p], self._id(other_row), d))
        return out

    def _id(self, row: int) -> IdT:
        sample_id = self._ids[row]
        if sample_id is None:  # pragma: no cover - rows are filtered by the active mask
            raise InvalidInputError(f"row {row} of the index is not active")
        return sample_id

    def _grow(self, needed: int) -> None:
        capacity = self._hashes.size
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        hashes = np.zeros(capacity, dtype=np.uint64)
        active = np.zeros(capacity, dtype=bool)
        hashes[: len(self._ids)] = self._hashes[: len(self._ids)]
        active[: len(self._ids)] = self._active[: len(self._ids)]
        self._hashes, self._active = hashes, active


def _show(sample_id: object) -> str:
    if isinstance(sample_id, bytes):
        return "0x" + sample_id.hex()
    return repr(sample_id)


def selection_links(
    documents: Iterable[Mapping[str, object]], *, selected: Collection[str] | None = None
) -> list[tuple[str, str]]:
    """The near-duplicate pairs ``(sample id, other id)`` to value a selection with, from the
    parsed metadata documents of its assets: every duplicate link, and, per cluster, a link
    from each of its samples to the first of them (in document order) — so that copies are
    one player even when the samples they were linked to were not selected.

    ``selected`` (``0x`` ids) keeps the cluster links among the selected samples (without
    it, a cluster's first sample may be one the round leaves out, and its links then count
    for nothing). Refuses a document whose ``cluster`` field is not a sample id.
    """
    pairs: list[tuple[str, str]] = []
    first_of: dict[str, str] = {}
    for document in documents:
        samples = document.get("samples", [])
        links = document.get("duplicateLinks", [])
        if not isinstance(samples, list) or not isinstance(links, list):
            raise InvalidInputError("metadata document: samples and duplicateLinks must be lists")
        for link in links:
            if not isinstance(link, Mapping):
                raise InvalidInputError("metadata document: a duplicate link is not an object")
            pairs.append((str(link.get("sampleId")), str(link.get("otherId"))))
        for position, sample in enumerate(samples):
            if not isinstance(sample, Mapping):
                raise InvalidInputError(f"metadata sample #{position} is not an object")
            cluster = read_cluster(sample, where=f"metadata sample #{position}")
            sample_id = str(sample.get("sampleId"))
            if cluster is None or (selected is not None and sample_id not in selected):
                continue
            first = first_of.setdefault(cluster, sample_id)
            if first != sample_id:
                pairs.append((sample_id, first))
    return pairs
