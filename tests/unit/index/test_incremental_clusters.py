"""Link counts, packed link distances and clusters kept up to date by the samples a change
touches equal a full recount and rebuild after every step of random histories: assets whose
metadata arrives (in any order, linking to samples not indexed yet) and withdrawals; and the
search's "at most K links within d bits" read from the packing equals counting the links."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from visdm.index import Database, open_database, refresh_clusters
from visdm.index._clusters import after_metadata, after_withdrawal, pack_distances
from visdm.index._schema import create_schema
from visdm.index._search import _Where

pytestmark = pytest.mark.unit

OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PER_ASSET = 6


def sid(asset: int, index: int) -> str:
    return "0x" + (asset * 100 + index).to_bytes(32, "big").hex()


def _state(
    db: Database,
) -> tuple[dict[str, tuple[int, int | None]], set[frozenset[str]], dict[str, int]]:
    """Link counts and packed distances, the partition into clusters, and sizes, as the
    search sees them."""
    rows = db.query(
        "SELECT sample_id, link_count, cluster_root, cluster_size, link_distances FROM samples"
    )
    groups: dict[str, set[str]] = defaultdict(set)
    for sample_id, _, root, _, _ in rows:
        groups[str(root) if root is not None else str(sample_id)].add(str(sample_id))
    counts = {str(r[0]): (int(r[1]), None if r[4] is None else int(r[4])) for r in rows}
    sizes = {str(r[0]): int(r[3]) for r in rows}
    return counts, {frozenset(g) for g in groups.values()}, sizes


def _within(db: Database, most: int, distance: int) -> set[str]:
    """The samples the search's near-duplicate clause keeps."""
    where = _Where()
    where._within(most, distance)
    return {
        str(r[0])
        for r in db.query(
            f"SELECT s.sample_id FROM samples s WHERE {where.clauses[-1]}",
            where.params,
        )
    }


def _within_by_counting(db: Database, most: int, distance: int) -> set[str]:
    live = {
        str(r[0])
        for r in db.query(
            "SELECT s.sample_id FROM samples s JOIN assets a ON a.asset_id = s.asset_id "
            "WHERE a.status <> 'withdrawn'"
        )
    }
    near: dict[str, int] = defaultdict(int)
    for a, b, d in db.query("SELECT sample_id, other_id, distance FROM sample_links"):
        if str(b) in live and int(d) <= distance:
            near[str(a)] += 1
    return {str(r[0]) for r in db.query("SELECT sample_id FROM samples") if near[str(r[0])] <= most}


def _index_asset(db: Database, asset: int, links: list[tuple[str, str, int]]) -> None:
    db.execute(
        "INSERT INTO assets (asset_id, owner, status, manifest_hash, samples_root, "
        "sample_count, region_mask, manifest_cid, registered_block, manifest_status, "
        "manifest_detail, metadata_status, metadata_detail) VALUES (?, ?, 'active', '0x', "
        "'0x', ?, '1', 'bafy', 1, 'indexed', '', 'indexed', '')",
        (asset, OWNER, PER_ASSET),
    )
    db.executemany(
        "INSERT INTO samples (asset_id, sample_index, sample_id, label, width, height, "
        "channels, mode, phash, brightness, contrast, blur, cluster_size) VALUES "
        "(?, ?, ?, 'cat', 28, 28, 1, 'L', '0', 1.0, 1.0, 1.0, 1)",
        [(asset, i, sid(asset, i)) for i in range(PER_ASSET)],
    )
    rows = [(a, b, d, asset) for a, b, d in links] + [(b, a, d, asset) for a, b, d in links]
    db.executemany(
        "INSERT INTO sample_links (sample_id, other_id, distance, asset_id) VALUES "
        "(?, ?, ?, ?) ON CONFLICT (sample_id, other_id) DO NOTHING",
        rows,
    )


@pytest.mark.parametrize("seed", range(6))
def test_incremental_updates_equal_a_full_rebuild(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_assets = 14
    # each asset links some of its samples to samples of any asset, indexed or not yet
    order = rng.permutation(np.arange(1, n_assets + 1)).tolist()
    incremental, full = open_database("sqlite:///:memory:"), open_database("sqlite:///:memory:")
    for db in (incremental, full):
        with db.transaction():
            create_schema(db)
    indexed: list[int] = []
    for step, asset in enumerate(order):
        links = []
        for _ in range(int(rng.integers(0, 8))):
            other = int(rng.integers(1, n_assets + 1))
            a, b = (
                sid(asset, int(rng.integers(PER_ASSET))),
                sid(other, int(rng.integers(PER_ASSET))),
            )
            if a != b:
                links.append((a, b, int(rng.integers(0, 9))))
        for db in (incremental, full):
            with db.transaction():
                _index_asset(db, asset, links)
        with incremental.transaction():
            after_metadata(incremental, [asset])
        indexed.append(asset)
        if step % 4 == 3:  # now and then a withdrawal
            gone = int(rng.choice(indexed))
            for db in (incremental, full):
                with db.transaction():
                    db.execute("UPDATE assets SET status = 'withdrawn' WHERE asset_id = ?", (gone,))
            with incremental.transaction():
                after_withdrawal(incremental, [gone])
        with full.transaction():
            refresh_clusters(full)
        assert _state(incremental) == _state(full), f"step {step}"
        for most, distance in ((0, 0), (0, 4), (1, 3), (2, 8), (3, 20), (15, 2)):
            assert _within(incremental, most, distance) == _within_by_counting(
                incremental, most, distance
            ), (step, most, distance)
    # the histories made real clusters, not only samples alone
    assert max(_state(full)[2].values()) >= 3


def test_distances_pack_sorted_four_bits_a_slot_and_not_past_fifteen_links() -> None:
    assert pack_distances([]) == sum(15 << (4 * i) for i in range(15))
    packed = pack_distances([7, 0, 3, 40])
    assert packed is not None
    assert [(packed >> (4 * i)) & 15 for i in range(5)] == [0, 3, 7, 15, 15]
    assert packed < 2**60  # a signed 64-bit column holds it
    assert pack_distances(range(15)) is not None
    assert pack_distances(range(16)) is None


def test_a_sample_past_fifteen_links_is_counted_instead() -> None:
    db = open_database("sqlite:///:memory:")
    with db.transaction():
        create_schema(db)
        for asset in range(1, 5):
            links = [(sid(1, 0), sid(asset, i), i % 6) for i in range(PER_ASSET) if asset > 1]
            _index_asset(db, asset, links)
        after_metadata(db, [1, 2, 3, 4])
    (packed,) = db.query("SELECT link_distances FROM samples WHERE sample_id = ?", (sid(1, 0),))
    assert packed[0] is None  # 18 links
    for most, distance in ((0, 0), (2, 1), (5, 3), (17, 5), (18, 5), (3, 9)):
        assert _within(db, most, distance) == _within_by_counting(db, most, distance)
    assert sid(1, 0) in _within(db, 18, 5) and sid(1, 0) not in _within(db, 17, 5)
