"""The behaviour every index backend must show, as one test class.

A backend's module subclasses :class:`IndexConformance` (as ``TestXxx``) and provides the
fixture ``new_db``: a function returning a fresh, empty :class:`~visdm.index.Database` whose
URL another connection can open (a file, not ``:memory:``). The SQLite subclass runs in the
unit tier; the PostgreSQL one runs against a real server in ``tests/integration/index``.
Everything is driven by hand-made events (:mod:`._world`), so no chain is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from visdm.config import Settings
from visdm.errors import ChainError, ConfigError, InvalidInputError
from visdm.index import (
    ChainEvent,
    Database,
    SearchFilters,
    load_saved_search,
    open_database,
    search_index,
    summarize_index,
)
from visdm.storage import MemoryStore

from ._world import (
    CONSUMER,
    LATER,
    NODE,
    NOW,
    PROVIDER,
    PROVIDER2,
    START_BLOCK,
    STRANGER,
    FakeSource,
    Image,
    World,
    build_market,
    dump,
)
from .conformance_evidence import EvidenceConformance
from .conformance_market import MarketConformance, NewDb


def matches(db: Database, tmp_path: Path, now: int = NOW, **filters: Any) -> list[tuple[int, int]]:
    """``(asset, index)`` of every match, through the SDK (and so through its own connection)."""
    result = search_index(
        Settings(home=tmp_path), SearchFilters(**filters), url=db.url.url, limit=10_000, now=now
    )
    assert result.total == len(result.samples)
    return [(s.asset_id, s.index) for s in result.samples]


class _CrashingStore:
    """A store that dies (as a killed process would) on its ``n``-th read."""

    def __init__(self, inner: MemoryStore, n: int) -> None:
        self.inner, self.n, self.reads = inner, n, 0

    def get(self, cid: str, max_bytes: int | None = None) -> bytes:
        self.reads += 1
        if self.reads == self.n:
            raise KeyboardInterrupt("killed while reading a document")
        return self.inner.get(cid, max_bytes=max_bytes)


class IndexConformance(MarketConformance, EvidenceConformance):
    """Indexing, idempotency, verification, search and saved searches on one backend (and,
    from :class:`MarketConformance`, proposals, payouts and earnings; from
    :class:`EvidenceConformance`, the evidence behind noisy flags)."""

    # ------------------------------------------------------------------ indexing

    def test_sync_builds_the_read_model(self, new_db: NewDb) -> None:
        w = World()
        build_market(w)
        db = new_db()
        report = w.indexer(db).sync()
        assert (report.cursor_before, report.cursor, report.head) == (None, w.block, w.block)
        assert report.events == len(w.events)
        assert (report.assets, report.samples, report.proposals) == (5, 11, 3)
        assert report.documents == {"missing": 0, "rejected": 0}
        assert db.query("SELECT asset_id, status, metadata_status FROM assets ORDER BY 1") == [
            (1, "active", "indexed"),
            (2, "active", "indexed"),
            (3, "active", "indexed"),
            (4, "pending", "pending"),
            (5, "withdrawn", "indexed"),
        ]
        assert db.query("SELECT region, name FROM regions ORDER BY 1") == [(0, "local"), (1, "eu")]
        assert db.query("SELECT region FROM asset_regions WHERE asset_id = 2 ORDER BY 1") == [
            (0,),
            (1,),
        ]
        assert db.query("SELECT purpose FROM asset_purposes WHERE asset_id = 2 ORDER BY 1") == [
            ("evaluation",),
            ("training",),
        ]
        assert db.query("SELECT consumer, allowed FROM asset_consumers ORDER BY 1") == sorted(
            [(STRANGER.address, 0), (CONSUMER.address, 1)]
        )
        assert db.scalar("SELECT licence_expires FROM assets WHERE asset_id = 3") == 1748736000
        assert db.query(
            "SELECT label, width, height, format, byte_size, brightness, contrast, blur, phash "
            "FROM samples WHERE asset_id = 1 AND sample_index = 1"
        ) == [("dog", 64, 64, "JPEG", 700, 200.0, 10.0, 500.0, "0000000000000000")]
        assert db.scalar("SELECT COUNT(*) FROM sample_links") == 6  # both directions
        assert {r[0]: r[1] for r in db.query("SELECT address, roles FROM stakeholders")} == {
            PROVIDER.address: 1,
            PROVIDER2.address: 1,
            CONSUMER.address: 2,
        }
        assert db.query("SELECT address, region, suspended FROM compute_nodes") == [
            (NODE.address, 0, 0)
        ]
        assert db.query("SELECT proposal_id, status, price FROM proposals ORDER BY 1") == [
            (1, "completed", "1000"),
            (2, "completed", "1000"),
            (3, "cancelled", "0"),
        ]
        assert db.query("SELECT voter, ask FROM votes WHERE proposal_id = 1 ORDER BY 1") == sorted(
            [(PROVIDER.address, "0"), (PROVIDER2.address, "0")]
        )
        assert db.query(
            "SELECT status, scores_status, scored_samples, epsilon_spent FROM results ORDER BY "
            "proposal_id"
        ) == [("indexed", "indexed", 3, 2.5), ("indexed", "indexed", 1, 2.5)]
        payouts = db.query(
            "SELECT position, asset_id, owner, amount FROM payouts WHERE proposal_id = 1 "
            "ORDER BY position"
        )
        assert payouts == [(0, 1, PROVIDER.address, "600"), (1, 2, PROVIDER2.address, "400")]
        assert db.query("SELECT proposal_id, position, asset_id, owner, amount FROM claims") == [
            (1, 0, 1, PROVIDER.address, "600")
        ]
        assert db.query(
            "SELECT position, asset_id, sample_count FROM proposal_assets WHERE proposal_id = 1 "
            "ORDER BY position"
        ) == [(0, 1, 4), (1, 2, 3)]
        assert db.query(
            "SELECT document_status, remaining_weight, min_share_bps FROM proposals ORDER BY 1"
        ) == [("indexed", 7, 0), ("indexed", 1, 0), ("indexed", 2, 0)]
        assert db.query("SELECT node FROM asset_key_nodes WHERE asset_id = 1") == [(NODE.address,)]
        assert db.query("SELECT delegator, delegate FROM delegations") == [
            (PROVIDER2.address, STRANGER.address)
        ]
        assert db.scalar("SELECT COUNT(*) FROM delegation_changes") == 2
        flags = db.query(
            "SELECT flags, flag_noisy, flag_copied, flag_duplicate FROM sample_scores "
            "WHERE asset_id = 2"
        )
        assert flags == [("copied,duplicate", 0, 1, 1)]
        # every event is kept, including those without a table of their own
        assert db.scalar("SELECT COUNT(*) FROM chain_events") == len(w.events)
        credited = db.scalar("SELECT args FROM chain_events WHERE name = 'Credited'")
        assert json.loads(credited) == {"account": NODE.address, "amount": 50, "proposalId": 1}
        changed = db.scalar("SELECT args FROM chain_events WHERE name = 'ParametersChanged'")
        assert json.loads(changed) == {"parameters": {"big": str(2**255), "quorumBps": 3000}}

    def test_near_duplicate_clusters_follow_links_and_withdrawals(self, new_db: NewDb) -> None:
        w = World()
        build_market(w)
        db = new_db()
        w.indexer(db).sync()
        sizes = dict(
            ((a, i), n)
            for a, i, n in db.query("SELECT asset_id, sample_index, cluster_size FROM samples")
        )
        # asset 5 is withdrawn: its copy no longer joins the cluster of (1,0) and (2,0)
        assert (sizes[(1, 0)], sizes[(2, 0)], sizes[(5, 0)]) == (2, 2, 1)
        assert (sizes[(1, 2)], sizes[(2, 1)], sizes[(1, 1)]) == (2, 2, 1)
        # a third copy of (1,0) grows the cluster
        a6 = w.register(PROVIDER2, ["cat"])
        w.attest(a6, [Image("cat")], links=[((a6, 0), (1, 0), 1)])
        w.indexer(db).sync()
        clusters = db.query(
            "SELECT asset_id, sample_index FROM samples WHERE cluster_size = 3 ORDER BY 1, 2"
        )
        assert clusters == [(1, 0), (2, 0), (a6, 0)]

    def test_sync_twice_or_replayed_changes_nothing(self, new_db: NewDb) -> None:
        w = World()
        build_market(w)
        db = new_db()
        w.indexer(db).sync()
        first = dump(db)
        again = w.indexer(db).sync()
        assert (again.events, again.cursor) == (0, w.block)
        assert dump(db) == first
        # forget the cursor: every block is applied a second time, and nothing changes
        db.execute("DELETE FROM index_meta WHERE key IN ('cursor', 'cursor_hash')")
        replay = w.indexer(db).sync()
        assert replay.events == len(w.events)
        assert dump(db) == first
        # a second index built from scratch is identical
        other = new_db()
        w.indexer(other).sync()
        assert dump(other) == first

    def test_a_kill_mid_range_keeps_the_last_committed_range(self, new_db: NewDb) -> None:
        w = World()
        build_market(w)
        clean = new_db()
        w.indexer(clean).sync()
        expected = dump(clean)
        for kill_at in (2, 5):  # while reading a manifest, and later a metadata document
            db = new_db()
            indexer = w.indexer(db, max_blocks=6)
            indexer.applier.store = _CrashingStore(w.store, kill_at)  # type: ignore[assignment]
            with pytest.raises(KeyboardInterrupt):
                indexer.sync()
            cursor = indexer.cursor()
            assert cursor is None or cursor < w.block
            # the failed range left nothing behind: no event past the cursor is recorded
            last = db.scalar("SELECT MAX(block_number) FROM chain_events")
            assert last is None or (cursor is not None and last <= cursor)
            restarted = w.indexer(db, max_blocks=6).sync()
            assert restarted.cursor_before == cursor
            assert dump(db) == expected

    def test_two_syncs_at_once_apply_each_range_once(self, new_db: NewDb) -> None:
        w = World()
        build_market(w)
        clean = new_db()
        w.indexer(clean).sync()
        db = new_db()
        other = open_database(db.url.url)  # a second process, in effect

        class Overtaken(FakeSource):
            """Another sync indexes everything while this one reads its first range."""

            def events(self, start: int, end: int) -> list[ChainEvent]:
                found = super().events(start, end)
                if start == START_BLOCK:
                    w.indexer(other, max_blocks=10).sync()
                return found

        first = w.indexer(db, max_blocks=10)
        first.source = Overtaken(w)
        try:
            report = first.sync()
        finally:
            other.close()
        assert report.cursor == w.block
        assert report.events == 0  # the range it read had been committed by the other
        assert dump(db) == dump(clean)

    def test_confirmations_hold_back_the_newest_blocks(self, new_db: NewDb) -> None:
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat"])
        w.attest(a1, [Image("cat")])
        db = new_db()
        report = w.indexer(db, confirmations=2).sync()
        assert report.cursor == w.block - 2
        assert db.query("SELECT asset_id FROM assets") == []
        assert w.indexer(db, confirmations=1).sync().cursor == w.block - 1
        assert db.query("SELECT status, metadata_status FROM assets") == [("pending", "pending")]
        w.mine(1)
        assert w.indexer(db, confirmations=1).sync().cursor == w.block - 1
        assert db.query("SELECT status, metadata_status FROM assets") == [("active", "indexed")]
        with pytest.raises(ConfigError, match="confirmations"):
            w.indexer(db, confirmations=-1)

    def test_a_reorganisation_below_the_cursor_is_refused_until_rebuilt(
        self, new_db: NewDb
    ) -> None:
        w = World()
        build_market(w)
        db = new_db()
        w.indexer(db).sync()
        w.source.fork = 1  # every block hash changes: another history
        with pytest.raises(ChainError, match="reorganised"):
            w.indexer(db).sync()
        report = w.indexer(db, rebuild=True).sync()
        assert report.cursor_before is None
        assert report.cursor == w.block

    def test_an_index_of_another_deployment_is_refused(self, new_db: NewDb) -> None:
        w = World()
        w.setup()
        db = new_db()
        w.indexer(db).sync()
        from visdm.index import Indexer

        with pytest.raises(ConfigError, match="another chain or deployment"):
            Indexer(
                db,
                w.source,
                w.store,
                chain_id=1,
                contracts={"AssetRegistry": NODE.address},
                start_block=0,
            )

    # ------------------------------------------------------------------ documents

    def test_bad_metadata_is_rejected_and_missing_metadata_retried(self, new_db: NewDb) -> None:
        w = World()
        w.setup()
        good = w.register(PROVIDER, ["cat"])
        forged = w.register(PROVIDER, ["cat"])
        garbage = w.register(PROVIDER, ["cat"])
        lost = w.register(PROVIDER, ["cat"])
        w.attest(good, [Image("cat")])
        # a document whose bytes are not what the node attested
        w.attest(forged, [Image("cat")], attested_hash=keccak(text="something else"))
        # the attested bytes, but not a metadata document
        w.attest(garbage, [Image("cat")], raw=b'{"format": "visdm-metadata/1", "samples": 3}')
        pending = w.attest(lost, [Image("cat")], store=False)
        db = new_db()
        report = w.indexer(db).sync()
        assert report.documents == {"missing": 1, "rejected": 2}
        rows = dict(
            (r[0], r[1:])
            for r in db.query("SELECT asset_id, metadata_status, metadata_detail FROM assets")
        )
        assert rows[good] == ("indexed", "")
        assert rows[forged][0] == "rejected" and "differs from the attested" in rows[forged][1]
        assert rows[garbage][0] == "rejected" and "manifestHash" in rows[garbage][1]
        assert rows[lost][0] == "missing"
        assert db.query("SELECT DISTINCT asset_id FROM samples") == [(good,)]
        # the document turns up in the store: the next sync indexes it without a new event
        w.store.put(pending)
        retried = w.indexer(db).sync()
        assert (retried.events, retried.retried_documents) == (0, 1)
        assert db.scalar("SELECT metadata_status FROM assets WHERE asset_id = ?", (lost,)) == (
            "indexed"
        )
        assert retried.documents == {"missing": 0, "rejected": 2}

    def test_an_oversized_document_is_rejected_unread(
        self, new_db: NewDb, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import visdm.index._apply as apply

        w = World()
        w.setup()
        asset = w.register(PROVIDER, ["cat"])
        w.attest(asset, [Image("cat")])
        monkeypatch.setattr(apply, "MAX_DOCUMENT_BYTES", 64)
        db = new_db()
        report = w.indexer(db).sync()
        # the metadata and the manifest are both over the limit here
        assert report.documents == {"missing": 0, "rejected": 2}
        status, detail = db.query(
            "SELECT metadata_status, metadata_detail FROM assets WHERE asset_id = ?", (asset,)
        )[0]
        assert status == "rejected" and "larger than the 64 bytes" in detail

    def test_an_unverifiable_manifest_leaves_the_licence_unknown(self, new_db: NewDb) -> None:
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat"], store_manifest=False)
        w.attest(a1, [Image("cat")])
        db = new_db()
        w.indexer(db).sync()
        assert db.scalar("SELECT manifest_status FROM assets") == "missing"
        # searchable, but never by licence
        assert db.scalar("SELECT COUNT(*) FROM samples") == 1

    def test_results_and_scores_are_checked_against_the_chain(self, new_db: NewDb) -> None:
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat", "dog"])
        w.attest(a1, [Image("cat"), Image("dog")])
        scores = [w.score(a1, 0, 0.5, PROVIDER), w.score(a1, 1, 0.25, PROVIDER)]
        pids = [w.propose([(a1, (0, 1))]) for _ in range(5)]
        for pid in pids:
            w.tally(pid)
            w.start(pid)
        good = w.result(pids[0], scores, payouts={a1: 1000})
        # claims another accuracy than the event
        lying = dict(good, proposalId=pids[1], accuracyBps=10_000)
        lying["model"] = {"cid": "x", "modelHash": "0x" + keccak(text=f"model {pids[1]}").hex()}
        lying["payouts"] = None
        w.result(pids[1], None, document=lying)
        # the scores blob is not the one whose hash was committed
        w.result(pids[2], scores, scores_hash=keccak(text="other scores"))
        # WTP missed: no scores, no payouts
        w.result(pids[3], None, accuracy=100, wtp_met=False)
        # a result document that is nowhere to be found (a CID nobody serves)
        w.result(pids[4], scores, store_document=False)
        db = new_db()
        w.indexer(db).sync()
        rows = db.query(
            "SELECT proposal_id, status, scores_status FROM results ORDER BY proposal_id"
        )
        assert rows == [
            (pids[0], "indexed", "indexed"),
            (pids[1], "rejected", "none"),
            (pids[2], "indexed", "rejected"),
            (pids[3], "indexed", "none"),
            (pids[4], "missing", "pending"),
        ]
        detail = db.scalar("SELECT detail FROM results WHERE proposal_id = ?", (pids[1],))
        assert "accuracyBps 10000" in detail
        assert db.query("SELECT DISTINCT proposal_id FROM sample_scores") == [(pids[0],)]
        status = db.query(
            "SELECT status, wtp_met, price FROM proposals WHERE proposal_id = ?", (pids[3],)
        )
        assert status == [("wtp_missed", 0, "0")]

    # ------------------------------------------------------------------ search

    @pytest.fixture
    def market(self, new_db: NewDb) -> Database:
        w = World()
        build_market(w)
        db = new_db()
        w.indexer(db).sync()
        return db

    def test_search_by_content(self, market: Database, tmp_path: Path) -> None:
        everything = [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1)]
        assert matches(market, tmp_path) == everything
        assert matches(market, tmp_path, labels=("cat",)) == [(1, 0), (1, 2), (2, 0), (2, 1)]
        assert matches(market, tmp_path, labels=(" bird ", "dog")) == [
            (1, 1),
            (1, 3),
            (2, 2),
            (3, 0),
            (3, 1),
        ]
        assert matches(market, tmp_path, min_width=64, min_height=64) == [(1, 1), (1, 3)]
        assert matches(market, tmp_path, min_width=100, max_height=96) == [(1, 3)]
        assert matches(market, tmp_path, max_width=28, max_height=28) == [
            p for p in everything if p not in ((1, 1), (1, 3))
        ]
        assert matches(market, tmp_path, formats=("jpg",)) == [(1, 1)]
        assert matches(market, tmp_path, formats=("webp", "JPEG")) == [(1, 1), (3, 0)]
        assert matches(market, tmp_path, min_brightness=150) == [(1, 1)]
        assert matches(market, tmp_path, max_brightness=50) == [(1, 2)]
        assert matches(market, tmp_path, min_contrast=60) == [(2, 1)]
        assert matches(market, tmp_path, max_contrast=10) == [(1, 1)]
        assert matches(market, tmp_path, min_sharpness=1000) == [(2, 2)]
        assert matches(market, tmp_path, max_sharpness=100) == [(1, 2)]

    def test_search_by_near_duplicates_and_past_value(
        self, market: Database, tmp_path: Path
    ) -> None:
        unique = [(1, 1), (1, 3), (2, 2), (3, 0), (3, 1)]
        assert matches(market, tmp_path, max_duplicate_links=0) == unique
        # the 6-bit link does not count within 5 bits
        assert matches(market, tmp_path, max_duplicate_links=0, duplicate_distance=5) == sorted(
            [*unique, (1, 2), (2, 1)]
        )
        assert matches(market, tmp_path, max_duplicate_links=1) == matches(market, tmp_path)
        assert matches(market, tmp_path, max_cluster_size=1) == unique
        assert matches(market, tmp_path, min_score=0.1) == [(1, 0)]
        assert matches(market, tmp_path, min_score=-1) == [(1, 0), (1, 1), (2, 0)]
        with_unscored = matches(market, tmp_path, min_score=0.1, include_unscored=True)
        assert (1, 0) in with_unscored
        assert (1, 1) not in with_unscored and (2, 0) not in with_unscored
        assert len(with_unscored) == 7
        assert (1, 1) not in matches(market, tmp_path, exclude_flags=("noisy",))
        assert (2, 0) not in matches(market, tmp_path, exclude_flags=("copied",))
        assert len(matches(market, tmp_path, exclude_flags=("noisy", "duplicate"))) == 7

    def test_search_by_market_terms(self, market: Database, tmp_path: Path) -> None:
        assert matches(market, tmp_path, regions=("eu",)) == [
            (2, 0),
            (2, 1),
            (2, 2),
            (3, 0),
            (3, 1),
        ]
        with pytest.raises(InvalidInputError, match=r"unknown region.*'mars'.*eu, local"):
            matches(market, tmp_path, regions=("mars",))
        assert {a for a, _ in matches(market, tmp_path, purposes=("evaluation",))} == {2}
        assert {a for a, _ in matches(market, tmp_path, purposes=("training", "evaluation"))} == {2}
        assert {a for a, _ in matches(market, tmp_path, consumer=STRANGER.address)} == {1}
        assert {a for a, _ in matches(market, tmp_path, consumer=CONSUMER.address)} == {1, 2, 3}
        # asset 3's licence has expired by LATER
        assert {a for a, _ in matches(market, tmp_path, now=LATER)} == {1, 2}
        assert {a for a, _ in matches(market, tmp_path, now=LATER, include_expired=True)} == {
            1,
            2,
            3,
        }
        assert {a for a, _ in matches(market, tmp_path, providers=(PROVIDER2.address,))} == {2}
        lower = PROVIDER.address.lower()
        assert {a for a, _ in matches(market, tmp_path, providers=(lower,))} == {1, 3}
        assert {a for a, _ in matches(market, tmp_path, asset_ids=(3, 1))} == {1, 3}
        assert matches(market, tmp_path, asset_ids=(4,)) == []  # never attested
        withdrawn = matches(market, tmp_path, include_withdrawn=True, asset_ids=(5,))
        assert withdrawn == [(5, 0), (5, 1)]
        assert matches(market, tmp_path, asset_ids=(5,)) == []

    def test_search_pages_and_describes_samples(self, market: Database, tmp_path: Path) -> None:
        settings = Settings(home=tmp_path)
        url = market.url.url
        page = search_index(settings, url=url, limit=4, offset=0, now=NOW)
        assert (page.total, len(page.samples)) == (9, 4)
        tail = search_index(settings, url=url, limit=4, offset=8, now=NOW)
        assert [(s.asset_id, s.index) for s in tail.samples] == [(3, 1)]
        assert search_index(settings, url=url, offset=50, now=NOW).samples == []
        hit = page.samples[0]
        assert (hit.asset_id, hit.index, hit.label, hit.provider) == (1, 0, "cat", PROVIDER.address)
        assert (hit.duplicate_links, hit.cluster_size) == (1, 2)
        assert hit.score == pytest.approx(0.375)
        assert (hit.score_rounds, hit.flags) == (2, [])
        noisy = page.samples[1]
        assert (noisy.score, noisy.score_rounds, noisy.flags) == (-0.25, 1, ["noisy"])
        assert page.samples[2].score is None and page.samples[2].score_rounds == 0
        labelled = search_index(settings, SearchFilters(labels=("cat", "zebra")), url=url, now=NOW)
        assert labelled.unknown_labels == ["zebra"]
        assert labelled.filters == {"labels": ["cat", "zebra"]}

    def test_summary_describes_exactly_what_search_returns(
        self, market: Database, tmp_path: Path
    ) -> None:
        settings = Settings(home=tmp_path)
        summary = summarize_index(settings, url=market.url.url, now=NOW)
        assert (summary.samples, summary.assets, summary.providers) == (9, 3, 2)
        assert summary.labels == {"cat": 4, "dog": 3, "bird": 2}
        assert list(summary.labels) == ["cat", "dog", "bird"]
        assert summary.per_asset == [
            {"asset_id": 1, "provider": PROVIDER.address, "samples": 4},
            {"asset_id": 2, "provider": PROVIDER2.address, "samples": 3},
            {"asset_id": 3, "provider": PROVIDER.address, "samples": 2},
        ]
        assert summary.per_provider == [
            {"provider": PROVIDER.address, "assets": 2, "samples": 6},
            {"provider": PROVIDER2.address, "assets": 1, "samples": 3},
        ]
        narrow = summarize_index(
            settings, SearchFilters(regions=("eu",), labels=("dog",)), url=market.url.url, now=NOW
        )
        assert (narrow.samples, narrow.labels) == (2, {"dog": 2})

    def test_saved_search_keeps_every_match_in_order(
        self, market: Database, tmp_path: Path
    ) -> None:
        settings = Settings(home=tmp_path)
        filters = SearchFilters(labels=("cat", "dog"), exclude_flags=("copied",))
        result = search_index(
            settings, filters, url=market.url.url, limit=1, offset=2, save="cats-dogs", now=NOW
        )
        assert len(result.samples) == 1
        assert result.saved_samples == 6
        path = tmp_path / "searches" / "cats-dogs.json"
        assert result.saved_path == str(path)
        assert json.loads(path.read_text()) == {
            "version": 1,
            "name": "cats-dogs",
            "filters": {"labels": ["cat", "dog"], "exclude_flags": ["copied"]},
            "selection": [
                {"asset_id": 1, "sample_indexes": [0, 1, 2]},
                {"asset_id": 2, "sample_indexes": [1, 2]},
                {"asset_id": 3, "sample_indexes": [0]},
            ],
        }
        saved = load_saved_search(settings, "cats-dogs")
        assert saved.filters == filters
        assert [(s.asset_id, s.sample_indexes) for s in saved.selection] == [
            (1, (0, 1, 2)),
            (2, (1, 2)),
            (3, (0,)),
        ]
        assert saved.sample_count == 6
        # saving again replaces the selection
        filters = SearchFilters(asset_ids=(3,))
        search_index(settings, filters, url=market.url.url, save="cats-dogs", now=NOW)
        assert load_saved_search(settings, "cats-dogs").sample_count == 2
