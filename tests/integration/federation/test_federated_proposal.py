"""A federated proposal end to end on anvil with real Flower processes, run by the nodes' own
loops: three regional nodes, each the only one its provider's asset allows, train one model
through a federation the proposal names; a SuperNode the proposal does not name is refused; a
region killed mid-round leaves the round going on the share the rest hold, unpaid; federated
values equal the centralised ones and become one payout tree over every region; providers
claim, members are paid their fees; only model weights and numbers left the regions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.federation.fedkit import (
    PROVIDER_OF,
    REGIONS,
    SPEC,
    VAL_X,
    VAL_Y,
    FederatedMarket,
    clientapps,
    kill_in_second_round,
)
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.federation import new_supernode_key
from visdm.federation._local import embed
from visdm.federation.market_round import RoundOutcome, commit_outcome, prepare_region
from visdm.federation.processes import start_supernode
from visdm.federation.serve import (
    FederationCoordinator,
    FederationMember,
    NodeHandles,
    read_round,
)
from visdm.index import earnings_index, sync_index
from visdm.market import workflow
from visdm.proposals import load_checked_proposal
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


def _loop(
    poll: Callable[[], None], stop: threading.Event, errors: list[BaseException]
) -> threading.Thread:
    """A node's ``visdm federation serve`` loop, as a thread of this test."""

    def run() -> None:
        while not stop.is_set():
            try:
                poll()
            except BaseException as exc:  # surfaced by the test, not lost in a thread
                errors.append(exc)
                return
            stop.wait(1.0)  # a node's loop polls every second or two

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.attack
def test_a_federated_proposal_trains_across_regions_and_pays_one_tree(
    fm: FederatedMarket, tmp_path: Path
) -> None:
    """The nodes run their own parts (``visdm federation serve``'s loops): the coordinator
    announces the round, the consumer starts it from the announced quote, the members bind
    their keys on chain and run SuperNodes, the coordinator runs the round and commits it."""
    pid = fm.propose_to_federation(min_share_bps=5000)

    def handles(name: str) -> NodeHandles:
        # each node its own client, as on its own machine
        return NodeHandles(
            ChainClient(fm.chain.rpc_url), fm.deployment, fm.store, fm.accounts[name]
        )

    coordinator = FederationCoordinator(
        handles("node"), fm.federation, tmp_path / "coordinator", price_per_gflop=10**12
    )
    members = {
        r: FederationMember(handles(f"node-{r}"), fm.federation, tmp_path / f"member-{r}")
        for r in REGIONS
    }
    coordinator.poll()
    doc = read_round(fm.chain, fm.store, fm.federation, pid)
    assert doc is not None
    assert [s.region for s in doc.shares] == ["eu", "us", "ap"]
    assert [s.asset_ids for s in doc.shares] == [(fm.by_region[r],) for r in REGIONS]
    assert all(f > 0 for f in doc.fees) and sum(doc.fees) == doc.quote.training_cost

    # the consumer starts from the announced quote, checked against the coordinator's signer
    offer, _ = workflow.start_training(fm.as_("consumer"), fm.accounts["consumer"], pid)
    assert offer.quote == doc.quote and offer.signer == fm.accounts["node"].address
    assert fm.market.proposal(pid).training_cost == sum(doc.fees)

    stop, ap_down = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    loops = [_loop(coordinator.poll, stop, errors)]
    for region, member in members.items():
        # a member whose machine died polls no more
        def poll(m: FederationMember = member, dies: bool = region == "ap") -> None:
            if not (dies and ap_down.is_set()):
                m.poll()

        loops.append(_loop(poll, stop, errors))
    killer = kill_in_second_round(lambda: members["ap"].supernodes.get(pid), stop, ap_down.set)

    # the attack: a node the proposal does not name, with the announced CA and a key of its own,
    # joins the SuperLink as a region to be paid for its data or to see the model
    (tmp_path / "rogue").mkdir()
    (tmp_path / "rogue" / "ca.pem").write_bytes(doc.ca_cert)
    rogue_started = False
    rogue = None
    deadline = time.monotonic() + 900
    while fm.market.proposal(pid).status == ProposalStatus.TRAINING and not errors:
        assert time.monotonic() < deadline, "the federated round did not finish in 15 minutes"
        eu = members["eu"].supernodes.get(pid)
        if not rogue_started and eu is not None and eu.running() and clientapps(eu.pid):
            # round 1 runs: the SuperLink is up with the members' keys registered
            rogue = start_supernode(
                tmp_path / "rogue",
                "rogue",
                superlink=doc.superlink,
                ca_cert=tmp_path / "rogue" / "ca.pem",
                key=new_supernode_key(tmp_path / "rogue", "rogue"),
                node_config={"region": "eu"},
            )
            rogue_started = True
        time.sleep(0.5)
    coordinator.wait(timeout_s=120)
    # released at once (no window): the loops collect and withdraw the fees
    fed = coordinator.view.contract
    finished = [fm.members[r].address for r in ("eu", "us")]
    for _ in range(120):
        collected = pid in coordinator.collected
        cleaned = all(pid not in members[r].prepared for r in ("eu", "us"))
        if errors or (collected and cleaned and not any(fed.owed_to(m) for m in finished)):
            break
        time.sleep(0.5)
    stop.set()
    for thread in [*loops, killer]:
        thread.join(timeout=60)
    for member in members.values():
        member.stop()
    assert not errors, errors
    assert rogue is not None
    rogue.proc.wait(timeout=60)
    assert rogue.proc.returncode != 0 and "Failed to activate SuperNode" in rogue.log_text()

    document = coordinator.outcomes[pid]
    regions = document["federation"]["regions"]
    assert regions["ap"]["dropped"] == "no answer in round 2"
    for name in ("eu", "us"):
        assert 0 < regions[name]["epsilon"] <= SPEC["dp"]["target_epsilon"] + 0.05
    # 300 validation images: a chance-level model reaches 0.2 with probability below 1e-5
    assert document["accuracyBps"] > 2000
    record = fm.market.proposal(pid)
    assert record.status == ProposalStatus.COMPLETED
    assert record.accuracy_bps == document["accuracyBps"]
    # the members' decrypted shares did not outlive the round
    assert not list((tmp_path / "member-eu").glob("*/region"))

    # what left the regions: the model's weights, numbers, counts and values only
    result = json.loads(
        (tmp_path / "coordinator" / str(pid) / "flower" / "result.json").read_text()
    )
    with np.load(tmp_path / "coordinator" / str(pid) / "flower" / "result.npz") as saved:
        weights = {k: saved[k] for k in saved.files}
    shapes = {k: list(v.shape) for k, v in weights.items()}
    for entry in result["audit"]:
        for rec in entry["records"]:
            if rec["kind"] == "ArrayRecord":
                assert rec["shapes"] == shapes

    # exact federated values: the centralised TKNN over the same embeddings, regions pooled
    spec = parse_model_spec(SPEC)
    checked = load_checked_proposal(fm.market, fm.deployment, fm.chain, fm.store, pid)
    parts = []
    for share in doc.shares[:2]:
        config = prepare_region(
            fm.members[share.region], fm.store, checked, share, tmp_path / "check" / share.region
        )
        with np.load(config["data-path"]) as d:
            parts.append((embed(spec, weights, d["images"]), d["labels"], d["sample_ids"]))
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    ids = np.concatenate([p[2] for p in parts]).astype(str)
    valuation = result["valuation"]
    central, _ = tknn_shapley_moments(
        x,
        y,
        embed(spec, weights, VAL_X),
        VAL_Y.astype(np.int64),
        tau=valuation["tau"],
        num_classes=10,
    )
    assert sorted(valuation["values"]) == sorted(ids)  # the killed region is not valued
    np.testing.assert_array_equal([valuation["values"][i] for i in ids], central)

    paid = {int(a): int(v) for a, v in document["payouts"]["assets"].items()}
    assert set(paid) == {fm.by_region["eu"], fm.by_region["us"]}  # ap: not valued, not paid
    assert sum(paid.values()) == record.price - int(document["payouts"]["scoringFee"])

    # the members' fees: the dropped one's went to those that finished; both withdrew theirs
    settled = fed.fees_of(pid)
    assert settled[2] == 0 and sum(settled) == sum(doc.fees)
    assert settled[0] > doc.fees[0] and settled[1] > doc.fees[1]
    assert not fed.owed_to(fm.members["eu"].address) and not fed.owed_to(fm.members["us"].address)

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
