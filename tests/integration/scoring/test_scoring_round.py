"""Scoring rounds end to end on anvil, with the real bubblewrap sandbox and real PyTorch."""

from __future__ import annotations

import pytest

from tests.integration.compute.roundkit import Round
from tests.integration.scoring.conftest import RATE
from visdm import scoring
from visdm.compute import ScoringWorker

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
