"""The index's scoring rounds, driven by hand-made events: a batch and its verified scores, a
document not in the store yet (retried by the next sync), one that lies (rejected, counting
for nothing), the fee a proposal paid, and expected values across training and scoring
rounds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_utils.crypto import keccak

from visdm.errors import BlobNotFoundError, InvalidInputError
from visdm.index import ChainEvent, Database, SearchFilters, open_database
from visdm.index._documents import DocumentUnavailableError
from visdm.index._schema import create_schema
from visdm.index._scoring import ScoringApplier, asset_scores, sample_estimates, scoring_fee
from visdm.index._search import search
from visdm.scoring import BatchScore, build_scores_document
from visdm.storage import MemoryStore

pytestmark = pytest.mark.unit

NODE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
REFERENCE = keccak(b"reference")
SEED = keccak(b"seed")


def sid(asset: int, index: int) -> str:
    return "0x" + keccak(bytes([asset, index])).hex()


NewDb = Callable[[], Database]


def fill(database: Database) -> Database:
    """Two attested assets of three samples each."""
    with database.transaction():
        create_schema(database)
        database.executemany(
            "INSERT INTO assets (asset_id, owner, status, manifest_hash, samples_root, "
            "sample_count, region_mask, manifest_cid, registered_block, manifest_status, "
            "manifest_detail, metadata_status, metadata_detail) VALUES (?, ?, 'active', '0x', "
            "'0x', 3, '1', 'bafy', 1, 'indexed', '', 'indexed', '')",
            [(a, NODE) for a in (1, 2)],
        )
        database.executemany(
            "INSERT INTO samples (asset_id, sample_index, sample_id, label, width, height, "
            "channels, mode, phash, brightness, contrast, blur, cluster_size) VALUES "
            "(?, ?, ?, 'cat', 28, 28, 1, 'L', '0', 1.0, 1.0, 1.0, 1)",
            [(a, i, sid(a, i)) for a in (1, 2) for i in range(3)],
        )
    return database


def event(block: int, name: str, contract: str = "ScoringPool", **args: Any) -> ChainEvent:
    return ChainEvent(block, 0, "0x" + "ab" * 32, contract, name, args)


def document(batch_id: int, rows: list[BatchScore]) -> bytes:
    outcome = {
        "seed_hash": "0x" + SEED.hex(),
        "spec_hash": "0x" + keccak(b"spec").hex(),
        "model_hash": "0x" + keccak(b"model").hex(),
        "players": 100,
        "scale": 0.01,
        "accuracy_bps": 8000,
    }
    return build_scores_document(
        batch_id=batch_id,
        node=NODE,
        reference_hash=REFERENCE,
        outcome=outcome,
        rows=rows,
        details={},
    )


def run(db: Database, applier: ScoringApplier, *events: ChainEvent) -> None:
    with db.transaction():
        for e in events:
            applier.handlers()[(e.contract, e.name)](e)


def applier(db: Database, store: MemoryStore) -> ScoringApplier:
    def fetch(cid: str) -> bytes:
        try:
            return store.get(cid)
        except BlobNotFoundError as exc:
            raise DocumentUnavailableError(str(exc)) from None

    return ScoringApplier(db, fetch)


def published(batch_id: int, raw: bytes, cid: str, scored: int) -> ChainEvent:
    return event(
        batch_id * 10 + 1,
        "ScoresPublished",
        batchId=batch_id,
        node=NODE,
        scored=scored,
        paid=scored * 10**15,
        scoresHash=keccak(raw),
        seedHash=SEED,
        referenceHash=REFERENCE,
        scoresCid=cid,
    )


def claimed(batch_id: int, assets: list[int]) -> ChainEvent:
    return event(
        batch_id * 10,
        "BatchClaimed",
        batchId=batch_id,
        node=NODE,
        assetIds=assets,
        samples=3 * len(assets),
        deadline=1_700_000_000,
        reserved=10**18,
        referenceHash=REFERENCE,
    )


class ScoringIndexConformance:
    """Run on every backend: SQLite below, PostgreSQL in the integration tests."""

    @pytest.fixture
    def db(self, new_db: NewDb) -> Database:
        return fill(new_db())

    def test_scores_are_indexed_once_found_and_a_lie_counts_for_nothing(self, db: Database) -> None:
        store = MemoryStore()
        apply = applier(db, store)
        good = document(
            1, [BatchScore(1, i, sid(1, i), 0.01 * (i + 1), 0.002, ()) for i in range(3)]
        )
        cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # not stored yet
        run(db, apply, claimed(1, [1]), published(1, good, cid, 3))
        assert db.scalar("SELECT document_status FROM scoring_batches") == "missing"
        stored = store.put(good)
        with db.transaction():
            db.execute("UPDATE scoring_batches SET scores_cid = ? WHERE batch_id = 1", (stored,))
            assert apply.retry_missing() == 1
        assert db.scalar("SELECT document_status FROM scoring_batches") == "indexed"
        assert db.scalar("SELECT COUNT(*) FROM scoring_scores") == 3
        # a batch of asset 2 whose row names asset 1's sample: rejected, nothing counted
        lie = document(2, [BatchScore(2, 0, sid(1, 0), 0.5, None, ())])
        run(db, apply, claimed(2, [2]), published(2, lie, store.put(lie), 1))
        status, detail = db.query(
            "SELECT document_status, document_detail FROM scoring_batches WHERE batch_id = 2"
        )[0]
        assert status == "rejected" and "attested sample" in detail
        assert db.scalar("SELECT COUNT(*) FROM scoring_scores WHERE batch_id = 2") == 0
        run(db, apply, event(30, "BatchEnded", batchId=3, node=NODE, status=4))  # unknown: no row
        run(db, apply, claimed(4, [2]), event(41, "BatchEnded", batchId=4, node=NODE, status=4))
        assert db.scalar("SELECT status FROM scoring_batches WHERE batch_id = 4") == "lapsed"
        # the fee a completed proposal paid, which its payout leaves do not share
        run(db, apply, event(50, "ScoringFeeTaken", "TrainingMarket", proposalId=9, pool=NODE,
                             amount=5 * 10**16))  # fmt: skip
        assert scoring_fee(db, 9) == 5 * 10**16 and scoring_fee(db, 8) == 0

        found = sample_estimates(db, [(1, 0), (1, 2), (2, 0)])
        assert found[(2, 0)].scoring_rounds == 0 and found[(2, 0)].estimate.confidence == 0
        low, high = found[(1, 0)].estimate, found[(1, 2)].estimate
        assert found[(1, 0)].scoring_rounds == 1 and 0 < low.confidence < 1
        assert low.expected < high.expected  # 1 and 3 times the round's scale, shrunk alike
        shown = asset_scores(db, 1)
        assert (shown.samples, shown.scored_samples, shown.scoring_rounds) == (3, 3, 1)
        with pytest.raises(InvalidInputError, match="no attested sample of asset 9"):
            asset_scores(db, 9)

    def test_a_search_ranks_by_expected_value(self, db: Database) -> None:
        store = MemoryStore()
        apply = applier(db, store)
        # relative values 5, 4 and 1 (the document's scale is 0.01): the unscored samples sit
        # at their mean, 3.3, between the second and the third
        values = (0.05, 0.04, 0.01)
        rows = [BatchScore(2, i, sid(2, i), v, 0.001, ()) for i, v in enumerate(values)]
        raw = document(1, rows)
        run(db, apply, claimed(1, [2]), published(1, raw, store.put(raw), 3))
        ranked = search(db, SearchFilters(), now=0, limit=4, rank="expected-value")
        assert [(h.asset_id, h.index) for h in ranked.samples] == [(2, 0), (2, 1), (1, 0), (1, 1)]
        assert ranked.total == 6 and ranked.samples[0].scoring_rounds == 1
        assert ranked.samples[2].confidence == 0 and ranked.samples[0].confidence > 0
        page = search(db, SearchFilters(), now=0, limit=2, offset=4, rank="expected-value")
        assert [(h.asset_id, h.index) for h in page.samples] == [(1, 2), (2, 2)]


class TestSqliteScoringIndex(ScoringIndexConformance):
    @pytest.fixture
    def new_db(self) -> Iterator[NewDb]:
        opened: list[Database] = []

        def new() -> Database:
            opened.append(open_database("sqlite:///:memory:"))
            return opened[-1]

        yield new
        for database in opened:
            database.close()


@pytest.mark.parametrize("asset_id", [0, -3, True])
def test_show_refuses_what_is_not_an_asset_id(asset_id: int, tmp_path: Any) -> None:
    from visdm.config import Settings
    from visdm.index._scoring import scores_of_asset

    with pytest.raises(InvalidInputError, match="not an asset id"):
        scores_of_asset(Settings(home=tmp_path), asset_id)
