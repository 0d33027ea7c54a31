"""A search counts its matches exactly up to a limit (or past the page asked for) and says when
more matched; the planner's statistics are refreshed after a sync as the samples grow."""

from __future__ import annotations

import pytest

from visdm.index import SearchFilters, open_database
from visdm.index._db import Database
from visdm.index._indexer import analysed_samples, read_meta, refresh_statistics
from visdm.index._schema import create_schema
from visdm.index._search import search

pytestmark = pytest.mark.unit

OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _market(assets: int, per_asset: int) -> Database:
    db = open_database("sqlite:///:memory:")
    with db.transaction():
        create_schema(db)
    _add(db, range(1, assets + 1), per_asset)
    return db


def _add(db: Database, asset_ids: range, per_asset: int) -> None:
    with db.transaction():
        for asset in asset_ids:
            db.execute(
                "INSERT INTO assets (asset_id, owner, status, manifest_hash, samples_root, "
                "sample_count, region_mask, manifest_cid, registered_block, manifest_status, "
                "manifest_detail, metadata_status, metadata_detail) VALUES (?, ?, 'active', "
                "'0x', '0x', ?, '1', 'bafy', 1, 'indexed', '', 'indexed', '')",
                (asset, OWNER, per_asset),
            )
            db.executemany(
                "INSERT INTO samples (asset_id, sample_index, sample_id, label, width, height, "
                "channels, mode, phash, brightness, contrast, blur, cluster_size) VALUES "
                "(?, ?, ?, ?, 28, 28, 1, 'L', '0', 1.0, 1.0, 1.0, 1)",
                [
                    (asset, i, f"0x{asset:04x}{i:04x}", "cat" if i % 2 else "dog")
                    for i in range(per_asset)
                ],
            )


def test_few_matches_are_counted_exactly() -> None:
    db = _market(3, 10)  # 15 cats
    result = search(db, SearchFilters(labels=("cat",)), now=0, limit=5, count_limit=20)
    assert (result.total, result.total_exact) == (15, True)
    assert len(result.samples) == 5


def test_past_the_limit_the_total_says_more_than() -> None:
    db = _market(3, 10)
    result = search(db, SearchFilters(labels=("cat",)), now=0, limit=5, count_limit=8)
    assert (result.total, result.total_exact) == (9, False)  # more than 8
    exact = search(db, SearchFilters(labels=("cat",)), now=0, limit=5, count_limit=None)
    assert (exact.total, exact.total_exact) == (15, True)
    assert [s.sample_id for s in exact.samples] == [s.sample_id for s in result.samples]


def test_a_page_past_the_limit_is_counted_to_its_end() -> None:
    db = _market(3, 10)
    page = search(db, SearchFilters(labels=("cat",)), now=0, limit=5, offset=8, count_limit=4)
    # counted to the page's end (13) and one past it: more than 13 of 15
    assert (page.total, page.total_exact) == (14, False)
    assert len(page.samples) == 5
    last = search(db, SearchFilters(labels=("cat",)), now=0, limit=5, offset=10, count_limit=4)
    assert (last.total, last.total_exact) == (15, True)


def test_statistics_are_refreshed_when_the_samples_grew_by_a_tenth() -> None:
    db = _market(10, 10)
    assert analysed_samples(db) == -1
    refresh_statistics(db)
    assert analysed_samples(db) == 100
    assert db.scalar("SELECT COUNT(*) FROM sqlite_stat1") > 0
    _add(db, range(11, 12), 9)  # 109 samples: under a tenth more
    refresh_statistics(db)
    assert analysed_samples(db) == 100
    _add(db, range(12, 13), 1)  # 110
    refresh_statistics(db)
    assert analysed_samples(db) == 110
    assert "analysed_samples" not in read_meta(db)  # nothing in the index's own tables
