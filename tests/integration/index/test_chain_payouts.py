"""What the index says providers earn, against what the real market on anvil pays.

The market pays assets, not accounts: a claim credits the owner of the asset a payout leaf
names, and only if the proposal selected that asset at that position and the asset stayed in
the round. Here a provider rejects a round (its asset leaves it), a node commits a payout tree
that also pays that asset and an accomplice's asset nobody selected, and the chain refuses
both claims — the index must report them as unpayable, the honest leaf as claimed, and the
remainder as swept once the claim period is over. An abandoned job and a consumer fault end
their rounds as the market says.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.market.conftest import Market
from visdm.chain.client import ChainClient
from visdm.chain.contracts import REJECT_ASK, ClaimRequest, ProposalStatus, ResultCommitment
from visdm.chain.deployment import Deployment
from visdm.config import Settings
from visdm.errors import ChainError
from visdm.index import earnings_index, open_index, payout_lines, sync_index
from visdm.market import build_payout_tree
from visdm.storage import LocalStore

from ._market import propose_signed, result_document, vote_and_tally

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.attack
def test_the_index_reports_exactly_what_the_market_pays(
    chain: ChainClient,
    deployment: Deployment,
    funded_roles: dict[str, LocalAccount],
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "home", rpc_url=chain.rpc_url)
    deployment.save(settings.deployments_dir)
    store = LocalStore(settings.store_dir)
    mk = Market(chain, deployment, dict(funded_roles))
    provider, provider2 = funded_roles["provider"], funded_roles["provider2"]
    friend = mk.new_provider("node-accomplice")
    a1, a2, a3 = (mk.add_asset(owner, 4) for owner in (provider, provider2, friend))
    owners = {a1: provider.address, a2: provider2.address, a3: friend.address}

    # provider2 rejects: its asset leaves the round, which goes on with provider's alone
    pid = propose_signed(mk, store, [(a1, [0, 1]), (a2, [0, 1])])
    vote_and_tally(mk, pid, [(a1, 2), (a2, 2)], {"provider": 0, "provider2": REJECT_ASK})
    assert mk.market.excluded_positions(pid, 2) == {1}
    mk.start(pid)
    # the node pays the asset that left the round and an accomplice's asset never selected
    tree = build_payout_tree({a1: 600, a2: 300, a3: 100}, {a1: 0, a2: 1, a3: 2})
    document = result_document(pid, funded_roles["node"].address, tree=tree, owners=owners)
    mk.market.submit_result(
        funded_roles["node"],
        pid,
        ResultCommitment(accuracy_bps=9100, result_cid=store.put(document), payout_root=tree.root),
    )
    mk.market.claim(funded_roles["stranger"], mk.claim(pid, tree, a1, [a1, a2]))
    # the market refuses both other leaves, whoever submits them
    with pytest.raises(ChainError, match="TrainingMarketLeftRound"):
        mk.market.claim(funded_roles["stranger"], mk.claim(pid, tree, a2, [a1, a2]))
    index = next(i for i, leaf in enumerate(tree.values) if int(leaf[1]) == a3)
    forged = ClaimRequest(pid, 2, a3, 100, tuple(tree.proof(index)))
    with pytest.raises(ChainError, match="TrainingMarketNotSelected"):
        mk.market.claim(friend, forged)

    # a node that gives a job up, and a consumer whose validation set was unusable
    abandoned = propose_signed(mk, store, [(a1, [2])])
    vote_and_tally(mk, abandoned, [(a1, 1)], {"provider": 0})
    mk.start(abandoned)
    mk.market.abandon_training(funded_roles["node"], abandoned, "the job crashed three times")
    faulted = propose_signed(mk, store, [(a1, [3])])
    vote_and_tally(mk, faulted, [(a1, 1)], {"provider": 0})
    mk.start(faulted)
    fault = result_document(
        faulted,
        funded_roles["node"].address,
        tree=None,
        owners=owners,
        accuracyBps=0,
        wtpMet=False,
        consumerFault="the validation set cannot be used",
        seedHash=None,
    )
    mk.market.submit_result(
        funded_roles["node"],
        faulted,
        ResultCommitment(accuracy_bps=0, result_cid=store.put(fault), consumer_fault=True),
    )

    sync_index(settings)
    db = open_index(settings)
    try:
        # (the assets' manifests and metadata are placeholders: only the market is real here)
        assert db.query("SELECT document_status FROM proposals") == [("indexed",)] * 3
        assert db.query("SELECT proposal_id, status FROM results ORDER BY 1") == [
            (pid, "indexed"),
            (faulted, "indexed"),
        ]
        # without the checks: what the committed leaves alone would credit
        naive = {str(o): int(a) for o, a in db.query("SELECT owner, amount FROM payouts")}
    finally:
        db.close()
    assert naive == {provider.address: 600, provider2.address: 300, friend.address: 100}
    earned = {e.provider: e for e in earnings_index(settings, proposal_id=pid)}
    assert (earned[provider.address].claimed, earned[provider.address].unclaimed) == (600, 0)
    assert (earned[provider2.address].unpayable, earned[provider2.address].claimed) == (300, 0)
    assert (earned[friend.address].unpayable, earned[friend.address].claimed) == (100, 0)
    # the chain agrees: only provider was credited
    assert mk.market.credit_of(provider.address) == 600
    assert mk.market.credit_of(provider2.address) == mk.market.credit_of(friend.address) == 0

    # after the claim period the unclaimed remainder goes to the treasury
    mk.advance(mk.market.parameters().claim_period + 10)
    mk.market.sweep_unclaimed(funded_roles["stranger"], pid)
    assert mk.market.proposal(pid).unclaimed == 0
    sync_index(settings)
    db = open_index(settings)
    try:
        states = {line.asset_id: line.state for line in payout_lines(db, proposal_id=pid)}
        assert states == {a1: "claimed", a2: "left_round", a3: "not_selected"}
        rows = db.query(
            "SELECT proposal_id, status, price, remaining_weight, abandoned_reason, "
            "consumer_fault, swept FROM proposals ORDER BY proposal_id"
        )
        assert rows == [
            (pid, "completed", "1000", 2, None, 0, "400"),
            (abandoned, "cancelled", "0", 1, "the job crashed three times", None, None),
            (faulted, "wtp_missed", "0", 1, None, 1, None),
        ]
        assert [ProposalStatus(mk.market.proposal(p).status).name for p, *_ in rows] == [
            "COMPLETED",
            "CANCELLED",
            "WTP_MISSED",
        ]
        assert db.query("SELECT proposal_id, position FROM proposal_exclusions") == [(pid, 1)]
        assert db.scalar("SELECT fault_reason FROM results WHERE proposal_id = ?", (faulted,)) == (
            "the validation set cannot be used"
        )
        assert db.query("SELECT node FROM asset_key_nodes WHERE asset_id = ?", (a1,)) == [
            (funded_roles["node"].address,)
        ]
        assert (
            db.scalar("SELECT seed_hash FROM proposals WHERE proposal_id = ?", (faulted,))
            == "0x" + bytes(32).hex()
        )
    finally:
        db.close()
