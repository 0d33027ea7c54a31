"""Attacks on the market contracts by a hostile consumer or node, each shown to fail.

SECURITY.md lists them; the training-side attacks live with the node's tests.
"""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from tests.integration.market.conftest import Market
from tests.integration.market.test_asset_registry import reverts
from visdm.chain.contracts import REJECT_ASK, ClaimRequest, ProposalStatus
from visdm.market import build_payout_tree
from visdm.types import Role

pytestmark = [pytest.mark.integration, pytest.mark.attack]

S = ProposalStatus


def _own_asset(mk: Market, who: str, count: int = 500) -> int:
    """An asset of ``who``, who registers (or adds the role) as a provider for it."""
    account = mk.roles[who]
    if mk.stakeholders.stakeholder(account.address).registered:
        mk.stakeholders.add_roles(account, Role.PROVIDER)
    else:
        mk.stakeholders.register(account, Role.PROVIDER, keccak(text=who))
    return mk.add_asset(account, count)


def test_a_consumer_cannot_select_its_own_data_to_decide_the_vote(mk: Market) -> None:
    """The consumer registers as a provider too, selects its own big asset next to two honest
    ones that REJECT, and votes 0: before, its weight decided the price over every REJECT."""
    honest = [mk.add_asset(mk.roles["provider"], 100), mk.add_asset(mk.roles["provider2"], 100)]
    mine = _own_asset(mk, "consumer")
    selection = sorted([(honest[0], 100), (honest[1], 100), (mine, 500)])
    with reverts("TrainingMarketOwnAsset"):
        mk.propose(selection)
    # nor the node's data
    theirs = _own_asset(mk, "node")
    with reverts("TrainingMarketOwnAsset"):
        mk.propose(sorted([(honest[0], 100), (theirs, 500)]))
    # nor may the consumer name itself (or a node it signs for) as the compute node
    mk.stakeholders.admit_node(
        mk.roles["governance"],
        mk.roles["consumer"].address,
        signer=mk.roles["consumer"].address,
        region="local",
        encryption_key=b"\x05" * 32,
        endpoint="http://127.0.0.1:9/",
    )
    with reverts("TrainingMarketInvalidTerms"):
        mk.propose([(honest[0], 100)], node=mk.roles["consumer"].address)


def test_a_sybil_majority_cannot_use_rejecting_providers_data(mk: Market) -> None:
    """Failing the first attack, the consumer uses a sybil provider with more weight than the
    honest ones. Their REJECT still keeps their data out of the round: the sybil's weight only
    prices the sybil's own data, and the round fails below the consumer's minimum share."""
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    sybil = mk.new_provider("consumer-sybil")
    a, b, c = mk.add_asset(p1, 100), mk.add_asset(p2, 100), mk.add_asset(sybil, 500)
    selection = [(a, 100), (b, 100), (c, 500)]
    ids = [x for x, _ in selection]
    pid = mk.propose(selection, offer=1000)
    mk.market.vote(p1, pid, REJECT_ASK)
    mk.market.vote(p2, pid, REJECT_ASK)
    mk.market.vote(sybil, pid, 0)
    mk.advance(3601)
    outcome = mk.tally(pid, selection).outcome
    assert outcome.status == S.APPROVED
    assert mk.market.excluded_positions(pid, 3) == {0, 1}  # the honest assets left
    assert mk.market.proposal(pid).remaining_weight == 500
    # a node that pays the rejecting providers' positions anyway cannot: they left the round
    tree = mk.payout(pid, {a: 400, c: 600}, ids)
    with reverts("TrainingMarketLeftRound"):
        mk.market.claim(mk.roles["stranger"], mk.claim(pid, tree, a, ids))
    # an honest consumer names the share it needs: p1 leaves, p2 abstains (and stays), so 600 of
    # the 700 selected samples remain, 86 % — below the 90 % asked, so the round is refunded
    pid2 = mk.propose(selection, offer=1000, min_share_bps=9000)
    mk.market.vote(p1, pid2, REJECT_ASK)
    mk.market.vote(sybil, pid2, 0)
    mk.advance(3601)
    assert mk.tally(pid2, selection).outcome.status == S.REJECTED
    assert mk.market.credit_of(mk.roles["consumer"].address) == 1000


def test_a_withdrawn_asset_carries_no_weight(mk: Market) -> None:
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    a, b = mk.add_asset(p1, 100), mk.add_asset(p2, 100)
    selection = [(a, 70), (b, 30)]
    pid = mk.propose(selection, offer=1000)
    mk.market.vote(p1, pid, 5000)  # would counter at 5000
    mk.market.vote(p2, pid, 100)
    mk.assets.withdraw_asset(p1, a)  # ... then withdraws its data before the tally
    mk.advance(3601)
    outcome = mk.tally(pid, selection).outcome
    assert (outcome.status, outcome.clearing_price, outcome.remaining_weight) == (
        S.APPROVED,
        100,
        30,
    )
    assert mk.market.excluded_positions(pid, 2) == {0}


def test_a_node_cannot_pay_itself_the_data_price(mk: Market) -> None:
    """The node commits a payout root whose leaves pay itself: an account leaf does not exist
    any more, an asset of its own was never selectable, and a leaf for an asset the market did
    not select at that position is refused. It ends up with its training fee and nothing else."""
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    ids = [mk.add_asset(p1, 100), mk.add_asset(p2, 100)]
    own = _own_asset(mk, "node", 100)
    pid = mk.approved([(a, 100) for a in ids], offer=1000)
    node, stranger = mk.roles["node"], mk.roles["stranger"]
    # the node's payout tree: its own asset at position 0, the whole price
    tree = build_payout_tree({own: 1000}, {own: 0})
    mk.start(pid, cost=50)
    mk.submit(pid, payout_root=tree.root)
    # the leaf proves against the root the node posted, but the market selected another asset
    # at position 0: the claim is refused, whoever submits it
    for sender in (node, stranger):
        with reverts("TrainingMarketNotSelected"):
            mk.market.claim(sender, ClaimRequest(pid, 0, own, 1000, tuple(tree.proof(0))))
    assert [mk.market.selected_asset(pid, i) for i in range(3)] == [*ids, 0]
    assert mk.market.credit_of(node.address) == 50
    assert mk.market.proposal(pid).unclaimed == 1000
    # the escrow does not stay locked: after the claim period the treasury takes the price
    mk.advance(mk.market.parameters().claim_period + 1)
    mk.market.sweep_unclaimed(stranger, pid)
    assert mk.market.proposal(pid).unclaimed == 0
    assert mk.market.credit_of(node.address) == 50


def test_a_garbage_payout_root_does_not_lock_the_escrow(mk: Market) -> None:
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    ids = [mk.add_asset(p1, 100), mk.add_asset(p2, 100)]
    pid = mk.approved([(a, 100) for a in ids], offer=1000)
    mk.start(pid, cost=50)
    mk.submit(pid, payout_root=keccak(text="garbage"))
    escrow = mk.escrow_balance()
    treasury = mk.market.parameters().treasury
    before = mk.market.credit_of(treasury)
    mk.advance(mk.market.parameters().claim_period + 1)
    mk.market.sweep_unclaimed(mk.roles["stranger"], pid)
    assert mk.market.credit_of(treasury) == before + 1000
    assert mk.escrow_balance() == escrow  # nothing left the market without an owner
    mk.market.withdraw(mk.roles["node"])
    assert mk.escrow_balance() == escrow - 50
