"""Exact near-duplicate search: multi-index results equal a plain linear scan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.errors import InvalidInputError
from visdm.metadata import (
    HammingIndex,
    Neighbour,
    find_duplicate_pairs,
    hamming_distance,
    popcount64,
)

pytestmark = pytest.mark.unit


def _brute(hashes: list[int], radius: int) -> set[tuple[int, int]]:
    return {
        (i, j)
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if (hashes[i] ^ hashes[j]).bit_count() <= radius
    }


def _planted(n: int, seed: int, max_flips: int = 10) -> np.ndarray:
    """Random hashes, half of them near copies (0..max_flips bits flipped) of the others."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64, n // 2, dtype=np.uint64)
    copies = base[rng.integers(0, base.size, n - base.size)]
    for i in range(copies.size):
        for bit in rng.choice(64, int(rng.integers(0, max_flips + 1)), replace=False):
            copies[i] ^= np.uint64(1) << np.uint64(int(bit))
    out = np.concatenate([base, copies])
    rng.shuffle(out)
    return out


def test_popcount_matches_python() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**64, 5000, dtype=np.uint64)
    values[:3] = [0, 2**64 - 1, 1 << 63]
    assert popcount64(values).tolist() == [int(v).bit_count() for v in values.tolist()]
    assert popcount64(values.reshape(50, 100)).shape == (50, 100)
    assert hamming_distance(0, 2**64 - 1) == 64
    assert hamming_distance(0b1011, 0b0001) == 2


@pytest.mark.parametrize("radius", [0, 1, 3, 8, 10, 16])
@pytest.mark.parametrize("method", ["linear", "multi-index", "auto"])
def test_planted_duplicates_match_brute_force(radius: int, method: str) -> None:
    hashes = _planted(700, seed=radius)
    expected = _brute([int(h) for h in hashes], radius)
    pairs = find_duplicate_pairs(hashes, radius=radius, method=method)
    assert pairs.as_set() == expected
    assert len(pairs) == len(expected)  # nothing reported twice
    assert all(i < j for i, j, _ in pairs)
    assert [d for *_, d in pairs] == [
        (int(hashes[i]) ^ int(hashes[j])).bit_count() for i, j, _ in pairs
    ]
    order = list(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True))
    assert order == sorted(order)


def test_large_planted_set_multi_index_equals_linear() -> None:
    hashes = _planted(6000, seed=99)
    linear = find_duplicate_pairs(hashes, radius=8, method="linear")
    fast = find_duplicate_pairs(hashes, radius=8)
    assert fast.method.startswith("multi-index")
    assert len(linear) > 2000
    np.testing.assert_array_equal(fast.first, linear.first)
    np.testing.assert_array_equal(fast.second, linear.second)
    np.testing.assert_array_equal(fast.distance, linear.distance)


def test_many_exact_copies_form_all_pairs_once() -> None:
    hashes = np.array([12345] * 40 + [2**64 - 1] * 3, dtype=np.uint64)
    pairs = find_duplicate_pairs(hashes, radius=8, method="multi-index")
    assert len(pairs) == 40 * 39 // 2 + 3
    assert pairs.as_set() == _brute([int(h) for h in hashes], 8)


@settings(max_examples=60, deadline=None)
@given(
    hashes=st.lists(st.integers(0, 2**64 - 1), max_size=60),
    flips=st.lists(st.integers(0, 63), max_size=6),
    radius=st.integers(0, 20),
)
def test_property_equal_to_brute_force(hashes: list[int], flips: list[int], radius: int) -> None:
    if hashes:  # add a near copy of the first hash
        copy = hashes[0]
        for bit in flips:
            copy ^= 1 << bit
        hashes = [*hashes, copy]
    expected = _brute(hashes, radius)
    for method in ("linear", "multi-index"):
        assert find_duplicate_pairs(hashes, radius=radius, method=method).as_set() == expected


def test_inputs_are_checked() -> None:
    with pytest.raises(InvalidInputError, match=r"radius must be an integer in 0\.\.64, got 65"):
        find_duplicate_pairs([1, 2], radius=65)
    with pytest.raises(InvalidInputError, match="radius must be an integer"):
        find_duplicate_pairs([1, 2], radius=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="hash -1 is not an unsigned 64-bit integer"):
        find_duplicate_pairs([1, -1])
    with pytest.raises(InvalidInputError, match=r"hash 18446744073709551616 is not"):
        find_duplicate_pairs([1, 2**64])
    with pytest.raises(InvalidInputError, match="array of float64"):
        find_duplicate_pairs(np.array([1.0, 2.0]))
    with pytest.raises(InvalidInputError, match=r"1-D .* shape \(2, 2\)"):
        find_duplicate_pairs(np.zeros((2, 2), dtype=np.uint64))
    with pytest.raises(InvalidInputError, match="unknown method 'fast'"):
        find_duplicate_pairs([1, 2], method="fast")
    with pytest.raises(InvalidInputError, match="radius <= 32, got 40"):
        find_duplicate_pairs([1, 2], radius=40, method="multi-index")
    assert len(find_duplicate_pairs([], radius=8)) == 0
    assert len(find_duplicate_pairs([5], radius=8)) == 0
    assert len(find_duplicate_pairs([0, 2**64 - 1], radius=64)) == 1


# --- the index -----------------------------------------------------------------------------
def test_index_query_returns_neighbours_by_distance() -> None:
    index: HammingIndex[str] = HammingIndex(radius=8)
    index.add(["a", "b", "c", "d"], [0b0, 0b111, 0b1, 2**64 - 1])
    assert index.query(0) == [Neighbour("a", 0), Neighbour("c", 1), Neighbour("b", 3)]
    assert index.query(0, radius=1) == [Neighbour("a", 0), Neighbour("c", 1)]
    assert index.query(2**64 - 1) == [Neighbour("d", 0)]
    assert len(index) == 4 and "b" in index and "z" not in index


def test_index_remove_deactivates() -> None:
    index: HammingIndex[str] = HammingIndex()
    index.add(["a", "b"], [0, 1])
    index.remove(["a"])
    assert index.query(0) == [Neighbour("b", 1)]
    index.add(["a"], [3])  # may come back after withdrawal
    assert index.query(0) == [Neighbour("b", 1), Neighbour("a", 2)]
    with pytest.raises(InvalidInputError, match=r"not in the index, e\.g\. .zz."):
        index.remove(["zz"])


def test_index_refuses_duplicates_and_mismatched_lengths() -> None:
    index: HammingIndex[bytes] = HammingIndex()
    index.add([b"\x01"], [5])
    with pytest.raises(InvalidInputError, match="sample 0x01 is already in the index"):
        index.add([b"\x01"], [6])
    with pytest.raises(InvalidInputError, match="sample 0x02 is already in the index"):
        index.add([b"\x02", b"\x02"], [6, 7])
    with pytest.raises(InvalidInputError, match="2 sample ids but 1 hashes"):
        index.add([b"\x03", b"\x04"], [6])
    with pytest.raises(InvalidInputError, match="2 sample ids but 1 hashes"):
        index.link([b"\x03", b"\x04"], [6])
    assert len(index) == 1


def _link_by_queries(
    old_ids: list[int], old: np.ndarray, new_ids: list[int], new: np.ndarray, radius: int
) -> set[tuple[int, int, int]]:
    ref: HammingIndex[int] = HammingIndex(radius=radius)
    ref.add(old_ids, old)
    out = set()
    for sample_id, value in zip(new_ids, new.tolist(), strict=True):
        out |= {(sample_id, nb.sample_id, nb.distance) for nb in ref.query(value)}
        ref.add([sample_id], [value])
    return out


@pytest.mark.parametrize(("n_old", "n_new"), [(0, 50), (300, 40), (4000, 3000)])
def test_link_equals_one_query_at_a_time(n_old: int, n_new: int) -> None:
    hashes = _planted(n_old + n_new, seed=n_old)
    old, new = hashes[:n_old], hashes[n_old:]
    old_ids, new_ids = list(range(n_old)), list(range(n_old, n_old + n_new))
    index: HammingIndex[int] = HammingIndex(radius=8)
    index.add(old_ids[:10], old[:10])
    index.remove(old_ids[:5])  # withdrawn samples are not linked
    index.add(old_ids[:5], old[:5])
    index.add(old_ids[10:], old[10:])
    links = index.link(new_ids, new)
    assert set(links) == _link_by_queries(old_ids, old, new_ids, new, 8)
    assert len(links) == len(set(links))
    assert len(index) == n_old + n_new
