"""A federated proposal end to end on anvil with real Flower processes: three regional nodes,
each the only one its provider's asset allows, train one model through a federation the
proposal names; a SuperNode the proposal does not name is refused; a region killed mid-round
leaves the round going on the share the rest hold, unpaid; federated values equal the
centralised ones and become one payout tree over every region; providers claim, members are
paid their fees; only model weights and numbers left the regions."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.federation.fedkit import (
    PROVIDER_OF,
    SPEC,
    VAL_X,
    VAL_Y,
    FederatedMarket,
    kill_in_second_round,
)
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.federation import Federation, new_supernode_key
from visdm.federation._local import embed
from visdm.federation.market_round import RoundOutcome, commit_outcome, train_federation
from visdm.index import earnings_index, sync_index
from visdm.market import workflow
from visdm.training._spec import parse_model_spec
from visdm.valuation._tknn_shapley import tknn_shapley_moments

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PER_REGION = 120


@pytest.fixture
def fm(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
) -> FederatedMarket:
    market = FederatedMarket(chain, deployment, tmp_path / "home", dict(funded_roles))
    market.add_regional_assets(tmp_path / "photos", PER_REGION)
    market.form()
    return market


@pytest.mark.attack
def test_a_federated_proposal_trains_across_regions_and_pays_one_tree(
    fm: FederatedMarket, tmp_path: Path
) -> None:
    # no single node may train all three assets: the federation is the only way
    pid = fm.propose_to_federation(min_share_bps=5000)
    ctx, shares, fees = fm.start_federated(pid)
    assert [s.region for s in shares] == ["eu", "us", "ap"]
    assert [s.asset_ids for s in shares] == [(fm.by_region[r],) for r in ("eu", "us", "ap")]
    assert all(f > 0 for f in fees) and sum(fees) == fm.market.proposal(pid).training_cost

    stop = threading.Event()
    rogue: list = []
    watchers: list[threading.Thread] = []

    def on_start(fed: Federation) -> None:
        # the attack: a node the proposal does not name, with the round's CA and a key of its
        # own, joins as a region to be paid for its data or to see the model
        key = new_supernode_key(tmp_path / "rogue", "rogue")
        rogue.append(fed.add_supernode("rogue", key=key, node_config={"region": "eu"}))
        watchers.append(kill_in_second_round(fed, "ap", stop))

    outcome = train_federation(
        ctx, shares, fm.member_by_address(), tmp_path / "round", on_start=on_start
    )
    stop.set()
    for w in watchers:
        w.join()
    rogue[0].proc.wait(timeout=60)
    assert rogue[0].proc.returncode != 0
    assert "Failed to activate SuperNode" in rogue[0].log_text()

    assert outcome.status == "completed", outcome.reason
    regions = outcome.result["regions"]
    assert regions["ap"]["dropped"] == "no answer in round 2"
    assert outcome.result["rounds"][1]["regions"] == ["eu", "us"]
    for name in ("eu", "us"):
        assert 0 < regions[name]["epsilon"] <= SPEC["dp"]["target_epsilon"] + 0.05
    # 200 validation images... a chance-level model reaches 0.2 with probability below 1e-5
    assert outcome.result["accuracy"] > 0.2

    # what left the regions: the model's weights, numbers, counts and values only
    assert outcome.weights is not None
    shapes = {k: list(v.shape) for k, v in outcome.weights.items()}
    for entry in outcome.result["audit"]:
        for record in entry["records"]:
            if record["kind"] == "ArrayRecord":
                assert record["shapes"] == shapes

    # exact federated values: the centralised TKNN over the same embeddings, region data pooled
    spec = parse_model_spec(SPEC)
    parts = []
    for name in ("eu", "us"):
        with np.load(tmp_path / "round" / "regions" / name / "region.npz") as d:
            parts.append((embed(spec, outcome.weights, d["images"]), d["labels"], d["sample_ids"]))
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    ids = np.concatenate([p[2] for p in parts]).astype(str)
    valuation = outcome.result["valuation"]
    val_x, val_y = VAL_X, VAL_Y.astype(np.int64)
    central, _ = tknn_shapley_moments(
        x, y, embed(spec, outcome.weights, val_x), val_y, tau=valuation["tau"], num_classes=10
    )
    assert sorted(valuation["values"]) == sorted(ids)  # the killed region is not valued
    np.testing.assert_array_equal([valuation["values"][i] for i in ids], central)

    document = commit_outcome(ctx, shares, fees, outcome)
    record = fm.market.proposal(pid)
    assert record.status == ProposalStatus.COMPLETED
    assert record.accuracy_bps == document["accuracyBps"]
    paid = {int(a): int(v) for a, v in document["payouts"]["assets"].items()}
    assert fm.by_region["ap"] not in paid  # dropped mid-round: not valued, not paid
    assert set(paid) == {fm.by_region["eu"], fm.by_region["us"]}
    assert sum(paid.values()) == record.price - int(document["payouts"]["scoringFee"])

    # the members' fees: the dropped one's went to those that finished
    fed = ctx.view.contract
    settled = fed.fees_of(pid)
    assert settled[2] == 0 and sum(settled) == sum(fees)
    fed.collect(fm.accounts["stranger"].local_account, pid)
    for i, region in enumerate(("eu", "us")):
        assert fed.owed_to(fm.members[region].address) == settled[i] > fees[i] - 1

    # providers claim from the one tree; the dropped region's provider is no payee
    for region in ("eu", "us"):
        who = PROVIDER_OF[region]
        (receipt,) = workflow.claim(fm.as_(who), fm.accounts[who], [pid])
        assert receipt.amount == paid[fm.by_region[region]], receipt
    (nothing,) = workflow.claim(fm.as_("provider3"), fm.accounts["provider3"], [pid])
    assert nothing.amount == 0 and nothing.note == "not a payee"

    # the round feeds the index like any other: its result, scores and payouts are read
    report = sync_index(fm.settings)
    assert report.documents == {"missing": 0, "rejected": 0}, report.documents
    assert report.scored_samples == len(valuation["values"])
    lines = {e.provider: e for e in earnings_index(fm.settings, proposal_id=pid)}
    for region in ("eu", "us"):
        owner = fm.accounts[PROVIDER_OF[region]].address
        assert lines[owner].claimed == paid[fm.by_region[region]]


def test_a_round_left_below_the_accepted_share_refunds_the_consumer_in_full(
    fm: FederatedMarket,
) -> None:
    pid = fm.propose_to_federation(min_share_bps=9000)
    ctx, shares, fees = fm.start_federated(pid)
    consumer = fm.accounts["consumer"].address
    before = fm.market.credit_of(consumer)
    record = fm.market.proposal(pid)
    failed = RoundOutcome(
        status="failed",
        reason="the regions left hold 33% of the selection, below the 90% accepted",
        result={},
        weights=None,
    )
    document = commit_outcome(ctx, shares, fees, failed)
    assert document["status"] == "failed"
    after = fm.market.proposal(pid)
    assert after.status == ProposalStatus.CANCELLED
    assert fm.market.credit_of(consumer) - before == record.price + record.training_cost
    assert ctx.view.contract.fees_of(pid) == ()
