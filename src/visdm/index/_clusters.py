"""Near-duplicate counts and clusters, kept up to date by the samples each change touches.

Two figures per sample feed the duplicate filters of a search (:mod:`._filters`):

* ``link_count`` — its links to samples still in the market (the other sample indexed, its
  asset not withdrawn). Stored, so that ``max_duplicate_links`` compares a column instead of
  running a ``COUNT`` subquery for every candidate row (at 60k samples and 4M link rows that
  subquery made one search take seconds);
* ``link_distances`` — the distances of those links, ascending, packed four bits each into
  :data:`DISTANCE_SLOTS` slots (:func:`pack_distances`), so that "at most K links within d bits"
  is a test of one slot (the (K+1)-th smallest distance is over d) instead of a ``COUNT``
  subquery per candidate (6-10 s a search at 1M samples). ``NULL`` past 15 live links: the
  search counts those few samples' links as before;
* ``cluster_size`` and ``cluster_root`` — its connected component of the link graph over the
  samples of assets not withdrawn, and the component's id. A component's id is the root of a
  union by size, so it is stable but arbitrary (the first sample of the larger side).

New metadata only adds samples and links, so components only merge: :func:`after_metadata`
re-points the members of the smaller components at the largest one touched (each sample moves
O(log N) times over the index's life) and recounts the links of the samples a new link names.
A withdrawal can split a component, so :func:`rebuild_clusters` recomputes every component
(withdrawals are rare; the old code did this on every sync).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ._db import Database

__all__ = [
    "DISTANCE_SLOTS",
    "EMPTY_SLOT",
    "after_metadata",
    "after_withdrawal",
    "pack_distances",
    "rebuild_clusters",
    "recount_all_links",
]

# ids per IN (...) list: well under SQLite's and PostgreSQL's limits on parameters
_CHUNK = 500


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


#: slots of ``link_distances``: 15 four-bit slots fill 60 bits of a signed 64-bit integer
DISTANCE_SLOTS = 15
#: an empty slot, or a distance past 14 (no search asks for those: see ._search)
EMPTY_SLOT = 15


def pack_distances(distances: Iterable[int]) -> int | None:
    """``distances`` sorted, four bits each from the lowest, empty slots :data:`EMPTY_SLOT`;
    ``None`` when there are more than :data:`DISTANCE_SLOTS`."""
    ordered = sorted(min(int(d), EMPTY_SLOT) for d in distances)
    if len(ordered) > DISTANCE_SLOTS:
        return None
    ordered += [EMPTY_SLOT] * (DISTANCE_SLOTS - len(ordered))
    return sum(d << (4 * slot) for slot, d in enumerate(ordered))


def _recount(db: Database, sample_ids: Iterable[str]) -> None:
    """Count again the links to samples still in the market of these samples, and pack their
    distances: one read per chunk, then one update per sample (a correlated update made
    PostgreSQL plan a join per row)."""
    ids = sorted(set(sample_ids))
    distances: dict[str, list[int]] = {sample_id: [] for sample_id in ids}
    for chunk in _chunks(ids):
        for sample_id, distance in db.query(
            "SELECT l.sample_id, l.distance FROM sample_links l JOIN samples o "  # noqa: S608
            "ON o.sample_id = l.other_id JOIN assets oa ON oa.asset_id = o.asset_id "
            f"WHERE l.sample_id IN ({_marks(chunk)}) AND oa.status <> 'withdrawn'",
            chunk,
        ):
            distances[str(sample_id)].append(int(distance))
    db.executemany(
        "UPDATE samples SET link_count = ?, link_distances = ? WHERE sample_id = ?",
        [(len(ds), pack_distances(ds), sample_id) for sample_id, ds in distances.items()],
    )


def recount_all_links(db: Database) -> None:
    """:func:`_recount` for every sample of the index."""
    _recount(db, [str(r[0]) for r in db.query("SELECT sample_id FROM samples")])


def _samples_of(db: Database, asset_ids: Sequence[int]) -> list[str]:
    out: list[str] = []
    for chunk in _chunks(asset_ids):
        out += [
            str(r[0])
            for r in db.query(
                f"SELECT sample_id FROM samples WHERE asset_id IN ({_marks(chunk)})",  # noqa: S608
                chunk,
            )
        ]
    return out


def _linking(db: Database, sample_ids: Sequence[str]) -> set[str]:
    """The samples with a link to one of ``sample_ids``."""
    out: set[str] = set()
    for chunk in _chunks(sample_ids):
        out.update(
            str(r[0])
            for r in db.query(
                f"SELECT sample_id FROM sample_links WHERE other_id IN ({_marks(chunk)})",  # noqa: S608
                chunk,
            )
        )
    return out


def after_metadata(db: Database, asset_ids: Sequence[int]) -> None:
    """Bring counts and clusters up to date after indexing these assets' metadata."""
    new = _samples_of(db, asset_ids)
    if not new:
        return
    touched = set(new) | _linking(db, new)
    _recount(db, touched)
    _merge(db, sorted(touched))


def after_withdrawal(db: Database, asset_ids: Sequence[int]) -> None:
    """Bring counts and clusters up to date after these assets were withdrawn."""
    _recount(db, _linking(db, _samples_of(db, asset_ids)))
    rebuild_clusters(db)


def _active(db: Database, sample_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """``sample id -> (cluster root, size)`` of those of ``sample_ids`` in the market."""
    out: dict[str, tuple[str, int]] = {}
    for chunk in _chunks(sample_ids):
        for sid, root, size in db.query(
            "SELECT s.sample_id, s.cluster_root, s.cluster_size FROM samples s "  # noqa: S608
            "JOIN assets a ON a.asset_id = s.asset_id WHERE a.status <> 'withdrawn' "
            f"AND s.sample_id IN ({_marks(chunk)})",
            chunk,
        ):
            out[str(sid)] = (str(sid) if root is None else str(root), int(size))
    return out


def _merge(db: Database, touched: Sequence[str]) -> None:
    """Union the components the links of ``touched`` samples join (all in the market)."""
    active = _active(db, touched)
    parent: dict[str, str] = {}
    size: dict[str, int] = {}
    for root, n in active.values():
        parent[root] = root
        size[root] = n
    before = dict(size)

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for chunk in _chunks(sorted(active)):
        for a, b in db.query(
            f"SELECT sample_id, other_id FROM sample_links WHERE sample_id IN ({_marks(chunk)})",  # noqa: S608
            chunk,
        ):
            if str(b) not in active:
                continue
            ra, rb = find(active[str(a)][0]), find(active[str(b)][0])
            if ra == rb:
                continue
            if (size[ra], rb) < (size[rb], ra):  # the larger side keeps its id
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
    # every member of a component that grew: its root and size change, in one statement
    grown = sorted(r for r in parent if find(r) != r or size[r] != before[r])
    grown_set = set(grown)
    members = {sid: root for sid, (root, _) in active.items() if root in grown_set}
    for chunk in _chunks(grown):
        members.update(
            (str(sid), str(root))
            for sid, root in db.query(
                "SELECT sample_id, cluster_root FROM samples "  # noqa: S608 - only placeholders
                f"WHERE cluster_root IN ({_marks(chunk)})",
                chunk,
            )
        )
    db.executemany(
        "UPDATE samples SET cluster_root = ?, cluster_size = ? WHERE sample_id = ?",
        [(find(root), size[find(root)], sid) for sid, root in sorted(members.items())],
    )


def rebuild_clusters(db: Database) -> int:
    """Recompute every sample's component; returns how many rows changed.

    A component is one of the link graph restricted to samples of assets that are not
    withdrawn (union-find with path halving); a sample without links is a component of one,
    and so is every sample of a withdrawn asset.
    """
    active = {
        str(r[0])
        for r in db.query(
            "SELECT s.sample_id FROM samples s JOIN assets a ON a.asset_id = s.asset_id "
            "WHERE a.status <> 'withdrawn' AND EXISTS (SELECT 1 FROM sample_links l "
            "WHERE l.sample_id = s.sample_id)"
        )
    }
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in db.query("SELECT sample_id, other_id FROM sample_links WHERE sample_id < other_id"):
        if a in active and b in active:
            ra, rb = find(str(a)), find(str(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    sizes: dict[str, int] = {}
    for x in list(parent):
        root = find(x)
        sizes[root] = sizes.get(root, 0) + 1
    rows = db.query(
        "SELECT s.asset_id, s.sample_index, s.sample_id, s.cluster_size, s.cluster_root, "
        "a.status FROM samples s JOIN assets a ON a.asset_id = s.asset_id "
        "WHERE s.cluster_size <> 1 OR s.cluster_root IS NOT NULL OR EXISTS "
        "(SELECT 1 FROM sample_links l WHERE l.sample_id = s.sample_id)"
    )
    changes = []
    for asset_id, index, sample_id, size, root, status in rows:
        sid = str(sample_id)
        wanted, wanted_root = 1, None
        if status != "withdrawn" and sid in parent:
            wanted_root = find(sid)
            wanted = sizes[wanted_root]
        if (int(size), root) != (wanted, wanted_root):
            changes.append((wanted, wanted_root, asset_id, index))
    db.executemany(
        "UPDATE samples SET cluster_size = ?, cluster_root = ? "
        "WHERE asset_id = ? AND sample_index = ?",
        changes,
    )
    return len(changes)
