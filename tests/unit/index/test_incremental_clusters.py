"""Link counts and clusters kept up to date by the samples a change touches equal a full
recount and rebuild after every step of random histories: assets whose metadata arrives (in
any order, linking to samples not indexed yet) and withdrawals."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from visdm.index import Database, open_database, refresh_clusters
from visdm.index._clusters import after_metadata, after_withdrawal
from visdm.index._schema import create_schema

pytestmark = pytest.mark.unit

OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PER_ASSET = 6


def sid(asset: int, index: int) -> str:
    return "0x" + (asset * 100 + index).to_bytes(32, "big").hex()


def _state(db: Database) -> tuple[dict[str, int], set[frozenset[str]], dict[str, int]]:
    """Link counts, the partition into clusters, and sizes, as the search sees them."""
    rows = db.query("SELECT sample_id, link_count, cluster_root, cluster_size FROM samples")
    groups: dict[str, set[str]] = defaultdict(set)
    for sample_id, _, root, _ in rows:
        groups[str(root) if root is not None else str(sample_id)].add(str(sample_id))
    counts = {str(r[0]): int(r[1]) for r in rows}
    sizes = {str(r[0]): int(r[3]) for r in rows}
    return counts, {frozenset(g) for g in groups.values()}, sizes


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
    # the histories made real clusters, not only samples alone
    assert max(_state(full)[2].values()) >= 3
