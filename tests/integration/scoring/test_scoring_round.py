"""Scoring rounds end to end on anvil, with the real bubblewrap sandbox and real PyTorch: a node
claims, values, publishes and is paid; the index shows rounds and confidence and ranks by
expected value; a lapsed batch is scored by another node; a node without keys finds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.roundkit import NAMES, Round
from tests.integration.scoring.conftest import RATE, scorer
from visdm import scoring
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.compute import ScoringWorker
from visdm.errors import InvalidInputError
from visdm.index import open_database, search_index, sync_index
from visdm.index._api import default_index_url
from visdm.index._scoring import asset_scores

pytestmark = pytest.mark.integration


def test_a_node_claims_values_publishes_and_is_paid(rnd: Round, worker: ScoringWorker) -> None:
    pool = scoring.pool(rnd.chain, rnd.deployment)
    assert worker.poll() == 1
    batch = pool.batch(1)
    assert batch.status == scoring.BatchStatus.PUBLISHED
    row = worker.journal.row(1)
    assert row is not None and row["state"] == "published", row
    assert batch.scored == 60 == batch.samples
    node = rnd.accounts["node"].address
    assert pool.credit_of(node) == 60 * RATE
    view = scoring.batch_view(rnd.chain, rnd.deployment, 1)
    raw = rnd.store.get(view.scores_cid)
    doc = scoring.parse_scores(
        raw,
        scores_hash=bytes.fromhex(view.scores_hash[2:]),
        batch_id=1,
        node=node,
        reference_hash=batch.reference_hash,
        seed_hash=bytes.fromhex(view.seed_hash[2:]),
        scored=batch.scored,
        batch_assets=view.asset_ids,
    )
    assert len(doc.rows) == 60 and doc.players == 60 + 150
    assert {r.asset_id for r in doc.rows} == set(rnd.asset_ids)
    assert pool.asset_scoring(rnd.asset_ids[0])[0] == 1


def test_the_index_shows_rounds_and_confidence_and_ranks_by_expected_value(
    rnd: Round, worker: ScoringWorker
) -> None:
    assert worker.poll() == 1
    sync_index(rnd.settings)
    a = rnd.asset_ids[0]
    with open_database(default_index_url(rnd.settings)) as db:
        assert db.scalar("SELECT document_status FROM scoring_batches") == "indexed"
        assert db.scalar("SELECT COUNT(*) FROM scoring_scores") == 60
        shown = asset_scores(db, a)
    assert shown.scoring_rounds == 1 and shown.scored_samples == shown.samples == 30
    assert all(r["scoringRounds"] == 1 and r["trainingRounds"] == 0 for r in shown.rows)
    assert all(0 < r["confidence"] < 1 for r in shown.rows)
    ranked = search_index(rnd.settings, limit=60, rank="expected-value")
    values = [h.expected_value for h in ranked.samples]
    assert len(values) == 60 and values == sorted(values, reverse=True)  # type: ignore[type-var]
    assert all(h.scoring_rounds == 1 and h.confidence > 0 for h in ranked.samples)
    by_place = search_index(rnd.settings, limit=60)
    assert {(h.asset_id, h.index) for h in by_place.samples} == {
        (h.asset_id, h.index) for h in ranked.samples
    }
    with pytest.raises(InvalidInputError, match="--rank"):
        search_index(rnd.settings, rank="price")


@pytest.fixture
def two_nodes(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
    governance: LocalAccount,
) -> Round:
    """``node`` and ``stranger`` both hold every asset's key (admitted before the assets)."""
    r = Round(chain, deployment, tmp_path / "home", dict(funded_roles))
    second = r.accounts["stranger"]
    r.registry.admit_node(
        governance,
        second.address,
        signer=second.address,
        region="local",
        encryption_key=second.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    r.add_assets(tmp_path, per_provider=20)
    scoring.publish_reference(
        chain, deployment, r.store, governance, classes=NAMES, validation_samples=150,
        anchor_samples=150,
    )  # fmt: skip
    scoring.fund(chain, deployment, r.accounts["consumer"].local_account, 10**18)
    return r


def test_a_lapsed_batch_is_scored_by_another_node_and_a_node_without_keys_finds_nothing(
    two_nodes: Round, governance: LocalAccount
) -> None:
    r = two_nodes
    pool = scoring.pool(r.chain, r.deployment)
    squatter = r.accounts["node"]
    got = scoring.claim(r.chain, r.deployment, r.store, squatter.local_account)
    assert got is not None and set(got.asset_ids) == set(r.asset_ids)
    r.chain.advance_time(pool.terms().claim_period + 1)
    other = scorer(r, "stranger")
    try:
        assert other.poll() == 1  # claims the lapsed batch's assets and scores them
        row = other.journal.row(got.batch_id + 1)
        assert row is not None and row["state"] == "published", row
    finally:
        other.close()
    assert pool.batch(got.batch_id).status == scoring.BatchStatus.LAPSED
    assert pool.credit_of(squatter.address) == 0
    assert pool.credit_of(r.accounts["stranger"].address) == 40 * RATE
    # the squatter's own worker finds its batch gone and, told not to claim, does nothing
    mine = scorer(r, "node")
    try:
        assert mine.poll(idle=False) == 0
    finally:
        mine.close()
    # a node admitted after the assets holds no key: there is nothing it could score
    late = r.accounts["provider2"]
    r.registry.admit_node(
        governance,
        late.address,
        signer=late.address,
        region="local",
        encryption_key=late.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    keyless = scorer(r, "provider2")
    try:
        assert keyless.poll() == 0
        assert pool.open_batch_of(late.address) is None
    finally:
        keyless.close()
