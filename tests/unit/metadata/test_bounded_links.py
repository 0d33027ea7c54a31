"""Bounded duplicate links and clusters: a node keeps the nearest few links per sample and a
cluster id, so that metadata grows linearly and copies still share one player."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visdm.errors import InvalidInputError
from visdm.metadata import (
    DEFAULT_MAX_LINKS,
    HammingIndex,
    SampleMetadata,
    describe_images,
    find_cross_pairs,
    read_cluster,
    selection_links,
)
from visdm.metadata._hamming import _NS_PER_LINEAR_PAIR, _best_cross_blocks
from visdm.types import SampleId
from visdm.valuation import find_near_duplicates

pytestmark = pytest.mark.unit


def _crowded(n: int, seed: int, centres: int = 5, max_flips: int = 4) -> np.ndarray:
    """Hashes crowded around a few centres (0..max_flips bits flipped), as real pHashes of
    one kind of image crowd: many samples then lie within the radius of one another."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64, centres, dtype=np.uint64)
    out = base[rng.integers(0, centres, n)]
    flips = rng.integers(0, max_flips + 1, n)
    for step in range(max_flips):  # a bit flipped twice is a flip fewer: still near
        bits = np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64)
        out ^= np.where(flips > step, bits, np.uint64(0))
    return out


def _sid(i: int) -> str:
    return "0x" + i.to_bytes(32, "big").hex()


def test_bounded_links_are_the_nearest_of_all_links() -> None:
    hashes = _crowded(600, seed=1)
    every: HammingIndex[int] = HammingIndex(max_links=None)
    bounded: HammingIndex[int] = HammingIndex(max_links=3)
    for index in (every, bounded):
        index.add(list(range(400)), hashes[:400])
    all_links = every.link(list(range(400, 600)), hashes[400:])
    few = bounded.link(list(range(400, 600)), hashes[400:])
    assert len(all_links) > 10 * len(few) > 0  # the bound matters on crowded hashes
    for new in range(400, 600):
        mine = [link for link in all_links if link[0] == new]
        assert [link for link in few if link[0] == new] == mine[:3]
    # every link unless asked: bounded links go with published clusters (the attack below)
    assert HammingIndex().max_links is None and DEFAULT_MAX_LINKS == 8


def test_a_sample_joins_the_cluster_of_its_first_link() -> None:
    index: HammingIndex[str] = HammingIndex(radius=2)
    index.add(["root", "far"], [0b0, 0xFFFF_0000])
    # "a" is 1 bit from root; "b" 1 bit from "a" but 2 from root: nearest first
    links = index.link(["a", "b", "alone"], [0b1, 0b11, 2**64 - 1])
    assert links == [("a", "root", 1), ("b", "a", 1), ("b", "root", 2)]
    assert [index.cluster_of(s) for s in ("a", "b", "alone", "far")] == [
        "root",
        "root",
        "alone",
        "far",
    ]
    # a withdrawn root still names its tree: later samples join through the members left
    index.remove(["root"])
    index.link(["c"], [0b111])
    assert index.cluster_of("c") == "root"
    # restored after a restart with the clusters attested before
    restored: HammingIndex[str] = HammingIndex(radius=2)
    restored.add(["a", "b"], [0b1, 0b11], clusters=["root", "root"])
    restored.link(["d"], [0b1011])
    assert restored.cluster_of("d") == "root"


def test_index_refuses_bad_bounds_and_clusters() -> None:
    for bad in (0, -2, True, "3", 1.5):
        with pytest.raises(InvalidInputError, match="max_links must be a positive integer"):
            HammingIndex(max_links=bad)  # type: ignore[arg-type]
    index: HammingIndex[str] = HammingIndex()
    with pytest.raises(InvalidInputError, match="max_links must be a positive integer"):
        index.link(["a"], [1], max_links=0)
    with pytest.raises(InvalidInputError, match="2 sample ids but 1 clusters"):
        index.add(["a", "b"], [1, 2], clusters=["a"])
    with pytest.raises(InvalidInputError, match="sample 'zz' is not in the index"):
        index.cluster_of("zz")
    assert len(index) == 0  # nothing half-added


@pytest.mark.parametrize("with_start", [False, True])
def test_long_runs_of_equal_keys_equal_a_linear_scan(with_start: bool) -> None:
    # 3,000 table hashes around one centre: every key run is longer than a slice's threshold
    table = _crowded(3000, seed=2, centres=1, max_flips=6)
    queries = np.concatenate([table[:40], _crowded(40, seed=3, centres=1, max_flips=6)])
    start = np.arange(queries.size) * 30 if with_start else None
    linear = find_cross_pairs(queries, table, method="linear", from_position=start)
    joined = find_cross_pairs(queries, table, method="multi-index", from_position=start)
    assert joined.method.startswith("multi-index") and len(linear) > 10_000
    assert joined.as_set() == linear.as_set()
    assert joined.distance.tolist() == linear.distance.tolist()


def test_the_search_is_chosen_by_the_candidates_the_hashes_really_give() -> None:
    # a uniform model expects few candidates here and would build key tables; counted, the
    # keys all collide and a linear scan is cheaper
    crowd = _crowded(8_100, seed=4, centres=1, max_flips=3)
    queries, table = crowd[:100], crowd[100:]
    modelled = _best_cross_blocks(queries.size, table.size, 8)[1]
    assert modelled < queries.size * table.size * _NS_PER_LINEAR_PAIR
    chosen = find_cross_pairs(queries, table)
    assert chosen.method == "linear"
    assert len(chosen) == queries.size * table.size  # all within 6 bits of one another
    # spread hashes: the key tables win
    rng = np.random.default_rng(5)
    spread = rng.integers(0, 2**64, 50_000, dtype=np.uint64)
    assert find_cross_pairs(spread[:500], spread).method.startswith("multi-index")


def _document(
    samples: list[tuple[int, int | None]], links: list[tuple[int, int]]
) -> dict[str, object]:
    return {
        "samples": [
            {"sampleId": _sid(s)} | ({} if c is None else {"cluster": _sid(c)}) for s, c in samples
        ],
        "duplicateLinks": [{"sampleId": _sid(a), "otherId": _sid(b)} for a, b in links],
    }


def test_selection_links_join_a_cluster_among_the_selected_samples() -> None:
    docs = [
        _document([(1, 1), (2, 1)], [(2, 1)]),
        _document([(3, 1), (4, 4), (5, None)], [(3, 2)]),
    ]
    assert selection_links(docs) == [
        (_sid(2), _sid(1)),
        (_sid(2), _sid(1)),
        (_sid(3), _sid(2)),
        (_sid(3), _sid(1)),
    ]
    chosen = {_sid(2), _sid(3)}
    assert selection_links(docs, selected=chosen)[-1] == (_sid(3), _sid(2))
    assert read_cluster({"cluster": _sid(7)}) == _sid(7)
    assert read_cluster({}) is None


@pytest.mark.parametrize("bad", ["0x12", "0x" + "AB" * 32, 12, None, "1" * 66])
def test_selection_links_refuse_a_cluster_that_is_not_a_sample_id(bad: object) -> None:
    doc = {"samples": [{"sampleId": _sid(1), "cluster": bad}], "duplicateLinks": []}
    with pytest.raises(InvalidInputError, match=r"metadata sample #0: cluster must be a sample"):
        selection_links([doc])


def test_selection_links_refuse_a_malformed_document() -> None:
    with pytest.raises(InvalidInputError, match="must be lists"):
        selection_links([{"samples": {}, "duplicateLinks": []}])
    with pytest.raises(InvalidInputError, match="a duplicate link is not an object"):
        selection_links([{"samples": [], "duplicateLinks": [3]}])
    with pytest.raises(InvalidInputError, match="metadata sample #0 is not an object"):
        selection_links([{"samples": ["x"], "duplicateLinks": []}])


@pytest.mark.attack
def test_copies_linked_only_to_unselected_samples_are_still_one_player() -> None:
    """A reseller registers 12 exact copies of one owner's image after it. With at most 8 links
    per sample, the last copies link only to the original and the oldest copies (all at
    distance 0); a consumer who selects only the last four would pay four players — unless
    the copies' shared cluster joins them."""
    index: HammingIndex[int] = HammingIndex(max_links=DEFAULT_MAX_LINKS)
    original = 0x0123_4567_89AB_CDEF
    index.link([0], [original])
    copies = list(range(1, 13))
    links = index.link(copies, [original] * len(copies))
    owner_doc = _document([(0, index.cluster_of(0))], [])
    reseller = _document([(c, index.cluster_of(c)) for c in copies], [(a, b) for a, b, _ in links])
    selected = copies[-4:]
    position = {_sid(s): i for i, s in enumerate(selected)}

    def players(pairs: list[tuple[str, str]]) -> int:
        inside = [(position[a], position[b]) for a, b in pairs if a in position and b in position]
        return find_near_duplicates(len(selected), links=inside, embeddings=None).n_clusters

    wanted = set(position)
    assert players(selection_links([owner_doc, reseller], selected=wanted)) == 1
    # the defence off: the links alone, as a reader that ignores clusters
    only_links = [(_sid(a), _sid(b)) for a, b, _ in links]
    assert players(only_links) == 4  # every selected copy a player of its own: the attack


def test_a_document_carries_the_cluster_only_when_the_node_set_one() -> None:
    image = describe_images([Image.new("L", (8, 8), 40)])[0]
    plain = SampleMetadata(0, SampleId(b"\x01" * 32), "cat", image)
    clustered = SampleMetadata(0, SampleId(b"\x01" * 32), "cat", image, SampleId(b"\x02" * 32))
    assert "cluster" not in plain.to_dict()  # documents written before clusters hash the same
    assert read_cluster(clustered.to_dict()) == "0x" + "02" * 32
