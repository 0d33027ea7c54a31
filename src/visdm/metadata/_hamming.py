"""Exact Hamming-radius search over 64-bit hashes: all pairs, and pairs between two sets.

Design section 3.2 step 7 links every new sample to every *active* sample whose pHash lies
within a Hamming radius (default 8 bits). The answer must be exact — the same pairs a linear
scan finds — because duplicate links decide who is paid (design section 4).

**All pairs** (:func:`find_duplicate_pairs`) uses multi-index hashing with the generalised
pigeonhole principle (Manku, Jain & Das Sarma, "Detecting near-duplicates for web crawling",
WWW 2007; Norouzi, Punjani & Fleet, "Fast search in Hamming space with multi-index hashing",
CVPR 2012): split the 64 bits into ``m > r`` disjoint blocks; two hashes at distance ``≤ r``
differ in at most ``r`` blocks, so they agree *exactly* on at least ``k = m − r`` blocks. For
each of the ``C(m, k)`` block combinations, sort the hashes by those blocks and take every
pair inside a run of equal keys as a candidate; verify each candidate's full distance. Every
true pair is a candidate in at least one table, and verification drops the rest, so the result
is exactly the linear scan's. A pair agreeing on several combinations is reported only by the
first such combination in lexicographic order (the one made of its first ``k`` agreeing
blocks), so no pair is produced twice. ``m`` is chosen by a cost model (sorts versus expected
candidates); for small inputs a blocked linear scan is cheaper and is used instead.

**Between two sets** (:func:`find_cross_pairs`, what linking a new asset against the active
samples needs) the same argument joins queries with a table. Its cost model is *measured*:
real pHashes are far from uniform (Fashion-MNIST's crowd into few keys: at 1M active samples
one key table gave 35 times the candidates a uniform model predicts), so for each block
count the first table is built and its candidates counted exactly, and the cheapest of those
and a linear scan is run. Long runs of equal keys are verified as one contiguous slice of
the sorted table each. :class:`._linkindex.HammingIndex` keeps the active samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import NDArray

from visdm.errors import InvalidInputError

__all__ = [
    "DEFAULT_DUPLICATE_RADIUS",
    "DuplicatePairs",
    "find_cross_pairs",
    "find_duplicate_pairs",
    "hamming_distance",
    "popcount64",
]

#: the default Hamming radius (bits) within which two pHashes are near-duplicates
DEFAULT_DUPLICATE_RADIUS = 8
_BITS = 64
_MAX_RADIUS = 32  # beyond this the multi-index tables cannot beat a linear scan
_POPCOUNT16 = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.uint8)
_POPCOUNT16.setflags(write=False)
# cost model, in rough nanoseconds on one core (only the ratios matter)
_NS_PER_LINEAR_PAIR = 12.0
_NS_PER_SORTED_ELEMENT = 110.0
_NS_PER_CANDIDATE = 40.0
_NS_PER_SEARCH = 250.0  # two binary searches of a query key in a sorted table
_CANDIDATES_PER_CHUNK = 1 << 22
_LINEAR_BLOCK_ELEMENTS = 1 << 22

# a run of equal keys at least this long is verified as one slice rather than by gathering
_HEAVY_RUN = 512
# the block counts whose first table is measured, beyond the smallest (radius + 1)
_MEASURED_BLOCKS = 2
#: 64-bit hashes: a uint64 (or non-negative integer) array, or a sequence of Python ints
HashesLike = NDArray[Any] | Sequence[int]


def popcount64(values: NDArray[np.uint64]) -> NDArray[np.uint8]:
    """The number of set bits of every uint64 (any shape)."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0: one instruction per word
        counted: NDArray[np.uint8] = np.bitwise_count(values)
        return counted
    halves = values.view(np.uint16).reshape(*values.shape, 4)
    counts: NDArray[np.uint8] = _POPCOUNT16[halves[..., 0]]
    counts += _POPCOUNT16[halves[..., 1]]
    counts += _POPCOUNT16[halves[..., 2]]
    counts += _POPCOUNT16[halves[..., 3]]
    return counts


def hamming_distance(a: int, b: int) -> int:
    """The number of bits in which two 64-bit hashes differ."""
    pair = _as_hashes([a, b])
    return int(pair[0] ^ pair[1]).bit_count()


@dataclass(frozen=True, slots=True)
class DuplicatePairs:
    """Pairs ``(first[p], second[p])`` of positions (``first < second``) and their distances,
    sorted by ``(first, second)``."""

    first: NDArray[np.int64]
    second: NDArray[np.int64]
    distance: NDArray[np.uint8]
    #: how the pairs were found: ``"linear"`` or ``"multi-index(m=…)"``
    method: str

    def __len__(self) -> int:
        return int(self.first.size)

    def as_set(self) -> set[tuple[int, int]]:
        """The pairs as a set of ``(i, j)`` tuples (for tests and small inputs)."""
        return set(zip(self.first.tolist(), self.second.tolist(), strict=True))

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        yield from zip(
            self.first.tolist(), self.second.tolist(), self.distance.tolist(), strict=True
        )


def _as_hashes(values: HashesLike) -> NDArray[np.uint64]:
    """A 1-D uint64 array from a uint64 (or non-negative integer) array or a sequence of ints."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise InvalidInputError(f"hashes must be a 1-D array, got shape {values.shape}")
        if values.dtype == np.uint64:
            return np.ascontiguousarray(values)
        if np.issubdtype(values.dtype, np.integer):
            if values.size and int(values.min()) < 0:
                raise InvalidInputError(
                    f"hash {int(values.min())} is not an unsigned 64-bit integer"
                )
            return values.astype(np.uint64)
        raise InvalidInputError(
            f"hashes must be unsigned 64-bit integers, got an array of {values.dtype}"
        )
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInputError(
            f"hashes must be a sequence of integers, got {type(values).__name__}"
        )
    items = list(values)
    for item in items:
        if (
            isinstance(item, bool | np.bool_)
            or not isinstance(item, int | np.integer)
            or not 0 <= int(item) < 1 << 64
        ):
            raise InvalidInputError(
                f"hash {item!r} is not an unsigned 64-bit integer: pass pHashes as ints "
                "in 0..2**64-1 or as a uint64 array"
            )
    return np.array([int(item) for item in items], dtype=np.uint64)


def _check_radius(radius: int) -> int:
    if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= _BITS:
        raise InvalidInputError(f"Hamming radius must be an integer in 0..{_BITS}, got {radius!r}")
    return radius


# --- block layout --------------------------------------------------------------------------
def _block_masks(m: int) -> list[int]:
    """``m`` disjoint masks covering the 64 bits, the first ``64 % m`` one bit wider."""
    base, extra = divmod(_BITS, m)
    masks, start = [], 0
    for b in range(m):
        width = base + (1 if b < extra else 0)
        masks.append(((1 << width) - 1) << start)
        start += width
    return masks


def _table_cost(n: int, radius: int, m: int) -> float:
    k = m - radius
    tables = math.comb(m, k)
    base, extra = divmod(_BITS, m)
    key_bits = k * base + min(k, extra)
    candidates = tables * (n * (n - 1) / 2) * 2.0 ** (-key_bits)
    return tables * n * _NS_PER_SORTED_ELEMENT + candidates * _NS_PER_CANDIDATE


def _best_table_blocks(n: int, radius: int) -> tuple[int, float]:
    """The block count ``m`` with the lowest estimated multi-index cost, and that cost."""
    best_m, best_cost = radius + 1, _table_cost(n, radius, radius + 1)
    for m in range(radius + 2, min(_BITS, radius + 6) + 1):
        if math.comb(m, m - radius) > 2000:
            break
        cost = _table_cost(n, radius, m)
        if cost < best_cost:
            best_m, best_cost = m, cost
    return best_m, best_cost


def _choose_blocks(n: int, radius: int) -> int | None:
    """The cheapest block count ``m``, or ``None`` when a linear scan is estimated cheaper."""
    if radius > _MAX_RADIUS or n < 2:
        return None
    m, cost = _best_table_blocks(n, radius)
    return m if cost < n * (n - 1) / 2 * _NS_PER_LINEAR_PAIR else None


# --- all pairs -----------------------------------------------------------------------------
def find_duplicate_pairs(
    hashes: HashesLike, *, radius: int = DEFAULT_DUPLICATE_RADIUS, method: str = "auto"
) -> DuplicatePairs:
    """Every pair of positions ``i < j`` with ``popcount(hashes[i] ^ hashes[j]) <= radius``.

    ``method`` is ``"auto"`` (cost model), ``"linear"`` or ``"multi-index"``; all three give
    identical pairs. Memory is linear in the input plus the pairs found.
    """
    values = _as_hashes(hashes)
    radius = _check_radius(radius)
    if method not in ("auto", "linear", "multi-index"):
        raise InvalidInputError(f"unknown method {method!r}: use 'auto', 'linear' or 'multi-index'")
    n = values.size
    m: int | None
    if method == "linear" or n < 2:
        m = None
    elif method == "multi-index":
        if radius > _MAX_RADIUS:
            raise InvalidInputError(
                f"multi-index search supports radius <= {_MAX_RADIUS}, got {radius}: "
                "use method='linear'"
            )
        m = _best_table_blocks(n, radius)[0]
    else:
        m = _choose_blocks(n, radius)
    if m is None:
        first, second, dist = _linear_pairs(values, radius)
        label = "linear"
    else:
        first, second, dist = _multi_index_pairs(values, radius, m)
        label = f"multi-index(m={m})"
    order = np.lexsort((second, first))
    return DuplicatePairs(first[order], second[order], dist[order], label)


def find_cross_pairs(
    queries: HashesLike,
    table: HashesLike,
    *,
    radius: int = DEFAULT_DUPLICATE_RADIUS,
    method: str = "auto",
    from_position: Sequence[int] | NDArray[np.integer[Any]] | None = None,
) -> DuplicatePairs:
    """Every ``(q, t)`` with ``popcount(queries[q] ^ table[t]) <= radius``, as
    :class:`DuplicatePairs` whose ``first`` are query positions and ``second`` table positions
    (sorted by ``(q, t)``). With ``from_position``, only ``t >= from_position[q]`` (a
    triangular join: half the work when the table holds the queries' own hashes).

    The multi-index join is the all-pairs method's pigeonhole argument between two sets: per
    block combination, the table is sorted by its key and each query's run of equal keys is
    found by binary search, so only query–table candidates are ever formed. ``method`` as in
    :func:`find_duplicate_pairs`; all give identical pairs.
    """
    q_values, t_values = _as_hashes(queries), _as_hashes(table)
    radius = _check_radius(radius)
    if method not in ("auto", "linear", "multi-index"):
        raise InvalidInputError(f"unknown method {method!r}: use 'auto', 'linear' or 'multi-index'")
    n_q, n_t = q_values.size, t_values.size
    start: NDArray[np.int64] | None = None
    if from_position is not None:
        start = np.asarray(from_position, dtype=np.int64)
        if start.shape != (n_q,) or (n_q and (start.min() < 0 or start.max() > n_t)):
            raise InvalidInputError(
                f"from_position must hold one table position in 0..{n_t} per query ({n_q})"
            )
    m: int | None = None
    if n_q and n_t and method != "linear":
        if radius > _MAX_RADIUS:
            if method == "multi-index":
                raise InvalidInputError(
                    f"multi-index search supports radius <= {_MAX_RADIUS}, got {radius}: "
                    "use method='linear'"
                )
        elif method == "multi-index":
            m = _best_cross_blocks(n_q, n_t, radius)[0]
        else:
            m = _measured_cross_blocks(q_values, t_values, radius)
    if m is None:
        first, second, dist = _cross_linear_arrays(q_values, t_values, radius, start)
        label = "linear"
    else:
        first, second, dist = _cross_multi_index(q_values, t_values, radius, m, start)
        label = f"multi-index(m={m})"
    order = np.lexsort((second, first))
    return DuplicatePairs(first[order], second[order], dist[order], label)


def _cross_cost(n_q: int, n_t: int, radius: int, m: int) -> float:
    k = m - radius
    tables = math.comb(m, k)
    base, extra = divmod(_BITS, m)
    key_bits = k * base + min(k, extra)
    candidates = tables * n_q * n_t * 2.0 ** (-key_bits)
    return tables * _table_build_cost(n_q, n_t) + candidates * _NS_PER_CANDIDATE


def _table_build_cost(n_q: int, n_t: int) -> float:
    return n_t * _NS_PER_SORTED_ELEMENT + n_q * _NS_PER_SEARCH


def _best_cross_blocks(n_q: int, n_t: int, radius: int) -> tuple[int, float]:
    best_m, best_cost = radius + 1, _cross_cost(n_q, n_t, radius, radius + 1)
    for m in range(radius + 2, min(_BITS, radius + 6) + 1):
        if math.comb(m, m - radius) > 2000:
            break
        cost = _cross_cost(n_q, n_t, radius, m)
        if cost < best_cost:
            best_m, best_cost = m, cost
    return best_m, best_cost


def _measured_cross_blocks(
    queries: NDArray[np.uint64], table: NDArray[np.uint64], radius: int
) -> int | None:
    """The block count whose join is cheapest by the candidates its first table really
    gives (times the number of tables), or ``None`` when a linear scan is cheaper.

    A uniform model cannot stand in for the count: real pHashes share keys far more often.
    Measuring costs one table per block count, a small part of the join it chooses.
    """
    n_q, n_t = queries.size, table.size
    linear = n_q * n_t * _NS_PER_LINEAR_PAIR
    # the measurement itself costs about a table per block count: not worth it when the
    # uniform model already puts even one table above the linear scan
    if _table_build_cost(n_q, n_t) * (_MEASURED_BLOCKS + 1) >= linear:
        return None
    best_m, best_cost = None, linear
    for m in range(radius + 1, min(_BITS, radius + 1 + _MEASURED_BLOCKS) + 1):
        k = m - radius
        tables = math.comb(m, k)
        if tables > 2000:
            break
        masks = _block_masks(m)
        key_mask = 0
        for block in range(k):  # the first combination
            key_mask |= masks[block]
        t_key = np.sort(_compact(table, key_mask))
        q_key = _compact(queries, key_mask)
        counted = np.searchsorted(t_key, q_key, side="right") - np.searchsorted(
            t_key, q_key, side="left"
        )
        candidates = float(counted.sum()) * tables
        cost = tables * _table_build_cost(n_q, n_t) + candidates * _NS_PER_CANDIDATE
        if cost < best_cost:
            best_m, best_cost = m, cost
    return best_m


def _cross_multi_index(
    queries: NDArray[np.uint64],
    table: NDArray[np.uint64],
    radius: int,
    m: int,
    from_position: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]]:
    k = m - radius
    masks = _block_masks(m)
    mask_array = np.array(masks, dtype=np.uint64)
    n_t = table.size
    # one spare bit, so that a query's first wanted position (up to n_t) packs too
    index_bits = max(1, int(n_t).bit_length())
    positions = np.arange(n_t, dtype=np.uint64)
    firsts: list[NDArray[Any]] = []
    seconds: list[NDArray[Any]] = []
    dists: list[NDArray[Any]] = []
    for combo in combinations(range(m), k):
        key_mask = 0
        for block in combo:
            key_mask |= masks[block]
        t_key = _compact(table, key_mask)
        q_key = _compact(queries, key_mask)
        # queries in key order: numpy's binary search starts from the previous answer
        q_order = np.argsort(q_key, kind="stable")
        q_sorted = q_key[q_order]
        packable = key_mask.bit_count() + index_bits <= _BITS
        if packable:
            shift = np.uint64(index_bits)
            packed = np.sort((t_key << shift) | positions)
            order = (packed & np.uint64((1 << index_bits) - 1)).astype(np.int64)
            first = np.zeros(q_sorted.size, dtype=np.uint64)
            if from_position is not None:
                first = from_position[q_order].astype(np.uint64)
            # within a run of equal keys the table is in position order, so one search finds
            # the first position a query wants
            low = np.searchsorted(packed, (q_sorted << shift) | first, side="left")
            high = np.searchsorted(
                packed, (q_sorted << shift) | np.uint64((1 << index_bits) - 1), side="right"
            )
        else:  # keys too wide to pack with the position
            order = np.argsort(t_key, kind="stable")
            sorted_key = t_key[order]
            low = np.searchsorted(sorted_key, q_sorted, side="left")
            high = np.searchsorted(sorted_key, q_sorted, side="right")
        counts = high - low
        wanted = np.zeros(m, dtype=bool)
        wanted[list(combo)] = True
        # the hashes in key order: a run of candidates is then a contiguous slice
        found = _verify_runs(
            queries,
            table[order],
            order,
            q_order,
            low=low,
            counts=counts,
            start=None if packable else from_position,
            radius=radius,
            mask_array=mask_array,
            wanted=wanted,
        )
        firsts += found[0]
        seconds += found[1]
        dists += found[2]
    return _concat(firsts, seconds, dists)


def _verify_runs(
    queries: NDArray[np.uint64],
    sorted_values: NDArray[np.uint64],
    order: NDArray[np.int64],
    q_order: NDArray[np.int64],
    *,
    low: NDArray[np.int64],
    counts: NDArray[np.int64],
    start: NDArray[np.int64] | None,
    radius: int,
    mask_array: NDArray[np.uint64],
    wanted: NDArray[np.bool_],
) -> tuple[list[NDArray[Any]], list[NDArray[Any]], list[NDArray[Any]]]:
    """Verify, for the ``r``-th query in key order (``q_order[r]``), the table's run of
    ``counts[r]`` equal keys from ``low[r]`` on; ``start`` (when the search could not do it)
    drops table positions before each query's first wanted one."""
    firsts: list[NDArray[Any]] = []
    seconds: list[NDArray[Any]] = []
    dists: list[NDArray[Any]] = []
    heavy = counts >= _HEAVY_RUN
    for row in np.flatnonzero(heavy).tolist():
        q = int(q_order[row])
        t_idx = order[low[row] : low[row] + counts[row]]
        xor = sorted_values[low[row] : low[row] + counts[row]] ^ queries[q]
        if start is not None:
            later = t_idx >= start[q]
            t_idx, xor = t_idx[later], xor[later]
        keep, dist = _verify_xor(xor, radius=radius, mask_array=mask_array, wanted=wanted)
        firsts.append(np.full(keep.size, q, dtype=np.int64))
        seconds.append(t_idx[keep])
        dists.append(dist)
    light = np.where(heavy, 0, counts)
    for rows in _chunks_by_count(light):
        n_pairs = int(light[rows].sum())
        if n_pairs == 0:
            continue
        q_idx = np.repeat(q_order[rows], light[rows])
        at = np.repeat(low[rows] - (np.cumsum(light[rows]) - light[rows]), light[rows])
        at += np.arange(n_pairs)
        t_idx = order[at]
        xor = queries[q_idx] ^ sorted_values[at]
        if start is not None:
            later = t_idx >= start[q_idx]
            q_idx, t_idx, xor = q_idx[later], t_idx[later], xor[later]
        keep, dist = _verify_xor(xor, radius=radius, mask_array=mask_array, wanted=wanted)
        firsts.append(q_idx[keep])
        seconds.append(t_idx[keep])
        dists.append(dist)
    return firsts, seconds, dists


def _chunks_by_count(counts: NDArray[np.int64]) -> Iterator[slice]:
    """Consecutive query ranges whose candidate counts add up to about a few million."""
    total = np.cumsum(counts)
    start = 0
    while start < counts.size:
        reached = int(total[start - 1]) if start else 0
        stop = int(np.searchsorted(total, reached + _CANDIDATES_PER_CHUNK, side="right"))
        stop = max(stop, start + 1)
        yield slice(start, stop)
        start = stop


def _cross_linear_arrays(
    queries: NDArray[np.uint64],
    table: NDArray[np.uint64],
    radius: int,
    from_position: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]]:
    firsts, seconds, dists = [], [], []
    if table.size:
        rows = max(1, _LINEAR_BLOCK_ELEMENTS // table.size)
        for start in range(0, queries.size, rows):
            dist = popcount64(queries[start : start + rows, None] ^ table[None, :])
            near = dist <= radius
            if from_position is not None:
                near &= np.arange(table.size)[None, :] >= from_position[start : start + rows, None]
            i, j = np.nonzero(near)
            firsts.append(i + start)
            seconds.append(j)
            dists.append(dist[i, j])
    return _concat(firsts, seconds, dists)


def _linear_pairs(
    values: NDArray[np.uint64], radius: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]]:
    n = values.size
    firsts, seconds, dists = [], [], []
    rows = max(1, _LINEAR_BLOCK_ELEMENTS // max(1, n))
    for start in range(0, max(0, n - 1), rows):
        stop = min(start + rows, n - 1)
        block = values[start:stop, None] ^ values[None, start + 1 :]
        dist = popcount64(block)
        # only j > i: column c of row i is position start + 1 + c
        i_local, c = np.nonzero(dist <= radius)
        keep = start + 1 + c > start + i_local
        i_local, c = i_local[keep], c[keep]
        firsts.append(start + i_local)
        seconds.append(start + 1 + c)
        dists.append(dist[i_local, c])
    return _concat(firsts, seconds, dists)


def _multi_index_pairs(
    values: NDArray[np.uint64], radius: int, m: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]]:
    n = values.size
    k = m - radius
    masks = _block_masks(m)
    mask_array = np.array(masks, dtype=np.uint64)
    index_bits = max(1, int(n - 1).bit_length())
    positions = np.arange(n, dtype=np.uint64)
    firsts, seconds, dists = [], [], []
    for combo in combinations(range(m), k):
        key_mask = 0
        for block in combo:
            key_mask |= masks[block]
        key = _compact(values, key_mask)
        key_bits = key_mask.bit_count()
        if key_bits + index_bits <= _BITS:
            packed = np.sort((key << np.uint64(index_bits)) | positions)
            sorted_key = packed >> np.uint64(index_bits)
            order = (packed & np.uint64((1 << index_bits) - 1)).astype(np.int64)
        else:  # keys too wide to pack with the position (radius 0, or huge inputs)
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
        wanted = np.zeros(m, dtype=bool)
        wanted[list(combo)] = True
        for cand_a, cand_b in _equal_runs(sorted_key, order):
            a, b, dist = _verify(
                values, cand_a, cand_b, radius=radius, mask_array=mask_array, wanted=wanted
            )
            firsts.append(a)
            seconds.append(b)
            dists.append(dist)
    return _concat(firsts, seconds, dists)


def _verify(
    values: NDArray[np.uint64],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    *,
    radius: int,
    mask_array: NDArray[np.uint64],
    wanted: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]]:
    """Keep the candidates within ``radius`` whose first ``k`` agreeing blocks are ``wanted``
    (so that each pair is reported by exactly one table), as ``(min, max, distance)``."""
    keep, dist = _verify_xor(
        values[a] ^ values[b], radius=radius, mask_array=mask_array, wanted=wanted
    )
    return np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep]), dist


def _verify_xor(
    xor: NDArray[np.uint64],
    *,
    radius: int,
    mask_array: NDArray[np.uint64],
    wanted: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """Positions of the candidates (given by their XOR) within ``radius`` whose first ``k``
    agreeing blocks are ``wanted``, and their distances."""
    dist = popcount64(xor)
    near = np.flatnonzero(dist <= radius)
    xor, dist = xor[near], dist[near]
    agree = (xor[:, None] & mask_array[None, :]) == 0
    first_k = agree & (np.cumsum(agree, axis=1) <= int(wanted.sum()))
    keep = (first_k == wanted[None, :]).all(axis=1)
    return near[keep], dist[keep]


def _compact(values: NDArray[np.uint64], key_mask: int) -> NDArray[np.uint64]:
    """Gather the bits of ``key_mask`` (contiguous runs) into the low bits of a key."""
    key = np.zeros(values.size, dtype=np.uint64)
    shift_out = 0
    bit = 0
    while bit < _BITS:
        if not key_mask >> bit & 1:
            bit += 1
            continue
        start = bit
        while bit < _BITS and key_mask >> bit & 1:
            bit += 1
        width = bit - start
        run = (values >> np.uint64(start)) & np.uint64((1 << width) - 1)
        key |= run << np.uint64(shift_out)
        shift_out += width
    return key


def _equal_runs(
    sorted_key: NDArray[np.uint64], order: NDArray[np.int64]
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Every pair of positions inside a run of equal keys, in chunks of (a, b) arrays.

    Round ``d`` yields the pairs ``d`` apart in sorted order; a position stays active only
    while its run continues, so the total work is the number of pairs, not the run lengths
    times ``n``.
    """
    n = sorted_key.size
    active = np.flatnonzero(sorted_key[:-1] == sorted_key[1:])
    d = 1
    while active.size:
        yield order[active], order[active + d]
        d += 1
        active = active[active + d < n]
        active = active[sorted_key[active] == sorted_key[active + d]]


def _concat(
    firsts: list[NDArray[Any]], seconds: list[NDArray[Any]], dists: list[NDArray[Any]]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]]:
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=np.uint8)
    return (
        np.concatenate(firsts).astype(np.int64),
        np.concatenate(seconds).astype(np.int64),
        np.concatenate(dists).astype(np.uint8),
    )
