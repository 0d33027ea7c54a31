"""Bonds, the challenge window and challenges settled by committees, on anvil.

Every branch: an honest result released after its window (verifier silent or confirming); a
challenge the committee rejects (challenger wrong: its bond pays the node); a challenge the
committee upholds (the node is slashed, the consumer refunded, nobody can claim); a split
committee left to governance; and the refusals around them.
"""

from __future__ import annotations

import pytest

from tests.integration.verify.conftest import BOND, WINDOW, Court
from visdm.chain.contracts import MarketParameters, ProposalStatus
from visdm.errors import ContractRevertError

pytestmark = pytest.mark.integration


def test_an_honest_result_opens_claims_and_fees_only_after_its_window(ct: Court) -> None:
    mk, court = ct.mk, ct.court
    node = ct.node.address
    before = mk.market.credit_of(node)
    pid = ct.completed()
    record = mk.market.proposal(pid)
    assert record.status is ProposalStatus.COMPLETED
    assert record.deadline == mk.now() + WINDOW  # the window's end
    assert mk.market.credit_of(node) == before  # the fee waits for the window
    assert court.stake_of(node) == (2 * BOND, BOND)  # one bond locked by the job
    # a verifier that re-executed the job and agrees says so; the release still waits
    court.confirm(ct.verifiers[0], pid)
    with pytest.raises(ContractRevertError, match="ResultCourtWindowOpen"):
        court.release(mk.roles["stranger"], pid)
    mk.advance(WINDOW)
    court.release(mk.roles["stranger"], pid)  # anyone, once the window is over
    record = mk.market.proposal(pid)
    assert (record.deadline, record.training_cost) == (0, 0)
    assert mk.market.credit_of(node) == before + 50
    assert court.stake_of(node) == (2 * BOND, 0)
    with pytest.raises(ContractRevertError, match="ResultCourtNotChallengeable"):
        court.challenge(ct.verifiers[1], pid)  # too late


def test_a_node_without_a_free_bond_cannot_start_a_job(ct: Court) -> None:
    mk, court = ct.mk, ct.court
    court.withdraw(ct.node, 2 * BOND)
    asset = mk.add_asset(mk.roles["provider"], 10)
    pid = mk.approved([(asset, 10)])
    with pytest.raises(ContractRevertError, match="ResultCourtBondTooLow"):
        mk.start(pid)
    assert mk.market.proposal(pid).status is ProposalStatus.APPROVED


def test_claims_wait_for_the_window(ct: Court) -> None:
    mk = ct.mk
    owner = mk.roles["provider"]
    asset = mk.add_asset(owner, 10)
    pid = mk.approved([(asset, 10)], offer=1000)
    tree = mk.payout(pid, {asset: 1000}, [asset])
    with pytest.raises(ContractRevertError, match="TrainingMarketChallengeWindow"):
        mk.market.claim_many(mk.roles["stranger"], [mk.claim(pid, tree, asset, [asset])])
    mk.advance(WINDOW)
    ct.court.release(mk.roles["stranger"], pid)
    mk.market.claim_many(mk.roles["stranger"], [mk.claim(pid, tree, asset, [asset])])
    assert mk.market.credit_of(owner.address) >= 1000


@pytest.mark.attack
def test_a_wrong_result_is_overturned_the_node_slashed_and_the_consumer_refunded(
    ct: Court,
) -> None:
    """A node posts a result another node's re-execution disagrees with: the challenger wins
    the node's bond, the consumer gets the price and the training cost back, and the payout
    root the node posted can pay nobody."""
    mk, court = ct.mk, ct.court
    consumer, node = mk.roles["consumer"].address, ct.node.address
    owner = mk.roles["provider"]
    asset = mk.add_asset(owner, 10)
    pid = mk.approved([(asset, 10)], offer=1000)
    tree = mk.payout(pid, {asset: 1000}, [asset])  # the cheating node's tree
    consumer_before = mk.market.credit_of(consumer)
    challenger = ct.verifiers[0]
    committee, _ = court.challenge(challenger, pid)
    assert len(committee) == 3 and node not in committee and challenger.address not in committee
    for member in committee:
        court.vote(ct.account(member), pid, result_correct=False)
    court.resolve(mk.roles["stranger"], pid)
    record = mk.market.proposal(pid)
    assert record.status is ProposalStatus.CANCELLED
    assert mk.market.credit_of(consumer) == consumer_before + 1000 + 50
    assert court.stake_of(node) == (BOND, 0)  # one bond slashed
    assert court.stake_of(challenger.address) == (3 * BOND, 0)  # it won the node's bond
    with pytest.raises(ContractRevertError, match="TrainingMarketWrongStatus"):
        mk.market.claim_many(mk.roles["stranger"], [mk.claim(pid, tree, asset, [asset])])
    assert mk.market.credit_of(owner.address) == 0


@pytest.mark.attack
def test_without_a_court_the_wrong_result_pays_at_once(
    ct: Court,
) -> None:
    """The defence switched off (no window, no court): the same cheating result is claimable
    in the block it is posted, before anyone could re-execute it."""
    mk = ct.mk
    params = mk.market.parameters()
    mk.market.set_parameters(
        mk.roles["governance"], MarketParameters(**{**_fields(params), "challenge_window": 0})
    )
    owner = mk.roles["provider"]
    asset = mk.add_asset(owner, 10)
    pid = mk.approved([(asset, 10)], offer=1000)
    tree = mk.payout(pid, {asset: 1000}, [asset])
    mk.market.claim_many(mk.roles["stranger"], [mk.claim(pid, tree, asset, [asset])])
    assert mk.market.credit_of(owner.address) == 1000
    with pytest.raises(ContractRevertError, match="ResultCourtNotChallengeable"):
        ct.court.challenge(ct.verifiers[0], pid)


def _fields(params: MarketParameters) -> dict[str, object]:
    return {name: getattr(params, name) for name in params.__slots__}


def test_a_wrong_challenge_pays_its_bond_to_the_node(ct: Court) -> None:
    mk, court = ct.mk, ct.court
    node = ct.node.address
    pid = ct.completed()
    challenger = ct.verifiers[0]
    committee, _ = court.challenge(challenger, pid)
    with pytest.raises(ContractRevertError, match="ResultCourtAlreadyChallenged"):
        court.challenge(ct.verifiers[1], pid)
    mk.advance(WINDOW)  # a challenged result is not released by its window passing
    with pytest.raises(ContractRevertError, match="ResultCourtAlreadyChallenged"):
        court.release(mk.roles["stranger"], pid)
    with pytest.raises(ContractRevertError, match="ResultCourtVotingOpen"):
        court.resolve(mk.roles["stranger"], pid)
    for member in committee[:2]:  # a majority of the votes cast, one member silent
        court.vote(ct.account(member), pid, result_correct=True)
    with pytest.raises(ContractRevertError, match="ResultCourtNotMember"):
        court.vote(ct.account(committee[0]), pid, result_correct=False)  # no second vote
    mk.advance(900 + 1)
    with pytest.raises(ContractRevertError, match="ResultCourtVotingClosed"):
        court.vote(ct.account(committee[2]), pid, result_correct=False)
    fee_before = mk.market.credit_of(node)
    court.resolve(mk.roles["stranger"], pid)
    record = mk.market.proposal(pid)
    assert record.status is ProposalStatus.COMPLETED and record.deadline == 0  # released
    assert mk.market.credit_of(node) == fee_before + 50
    assert court.stake_of(node) == (3 * BOND, 0)
    assert court.stake_of(challenger.address) == (BOND, 0)
    assert court.challenge_of(pid).settled


def test_a_split_committee_leaves_the_decision_to_governance(ct: Court) -> None:
    mk, court = ct.mk, ct.court
    consumer = mk.roles["consumer"].address
    pid = ct.completed()
    committee, _ = court.challenge(ct.verifiers[0], pid)
    court.vote(ct.account(committee[0]), pid, result_correct=True)
    court.vote(ct.account(committee[1]), pid, result_correct=False)
    with pytest.raises(ContractRevertError, match="ResultCourtVotingOpen"):
        court.decide(mk.roles["governance"], pid, overturn=True)
    mk.advance(900 + 1)
    with pytest.raises(ContractRevertError, match="ResultCourtUndecided"):
        court.resolve(mk.roles["stranger"], pid)
    with pytest.raises(ContractRevertError, match="ResultCourtNotGovernance"):
        court.decide(mk.roles["stranger"], pid, overturn=True)
    before = mk.market.credit_of(consumer)
    court.decide(mk.roles["governance"], pid, overturn=True)
    assert mk.market.proposal(pid).status is ProposalStatus.CANCELLED
    assert mk.market.credit_of(consumer) == before + 1000 + 50


def test_a_missed_wtp_result_that_is_overturned_refunds_the_training_cost(ct: Court) -> None:
    mk, court = ct.mk, ct.court
    consumer = mk.roles["consumer"].address
    asset = mk.add_asset(mk.roles["provider"], 10)
    pid = mk.approved([(asset, 10)], offer=1000)
    mk.start(pid, cost=50)
    before = mk.market.credit_of(consumer)
    mk.submit(pid, accuracy_bps=100)  # a false "missed": the price is refunded at once
    assert mk.market.credit_of(consumer) == before + 1000
    committee, _ = court.challenge(ct.verifiers[0], pid)
    for member in committee:
        court.vote(ct.account(member), pid, result_correct=False)
    court.resolve(mk.roles["stranger"], pid)
    assert mk.market.credit_of(consumer) == before + 1000 + 50
    assert court.stake_of(ct.node.address) == (BOND, 0)


def test_the_refusals_around_a_challenge(ct: Court) -> None:
    mk, court = ct.mk, ct.court
    pid = ct.completed()
    with pytest.raises(ContractRevertError, match="ResultCourtOwnResult"):
        court.challenge(ct.node, pid)
    with pytest.raises(ContractRevertError, match="ResultCourtNotBondedNode"):
        court.challenge(mk.roles["stranger"], pid)  # not an admitted node
    with pytest.raises(ContractRevertError, match="ResultCourtNotChallengeable"):
        court.challenge(ct.verifiers[0], pid + 1)  # no such result
    with pytest.raises(ContractRevertError, match="ResultCourtNotMarket"):
        mk.chain.transact(
            mk.roles["stranger"],
            court._contract.functions.lockBond(pid, mk.roles["stranger"].address),
            action="lockBond",
        )
    with pytest.raises(ContractRevertError, match="TrainingMarketNotCourt"):
        mk.chain.transact(
            ct.node, mk.market._contract.functions.settleResult(pid, False), action="settle"
        )
    with pytest.raises(ContractRevertError, match="ResultCourtJobOpen"):
        court.release(
            mk.roles["stranger"], mk.approved([(mk.add_asset(mk.roles["provider"], 10), 10)])
        )
    with pytest.raises(ContractRevertError, match="ResultCourtBondTooLow"):
        court.withdraw(ct.node, 2 * BOND)  # one bond is locked by the open job
    with pytest.raises(ContractRevertError, match="TrainingMarketInvalidParameters"):
        mk.market.set_parameters(
            mk.roles["governance"],
            MarketParameters(
                **{**_fields(mk.market.parameters()), "court": "", "challenge_window": 60}
            ),
        )


def test_an_abandoned_job_unlocks_the_bond(ct: Court) -> None:
    mk, court = ct.mk, ct.court
    asset = mk.add_asset(mk.roles["provider"], 10)
    pid = mk.approved([(asset, 10)])
    mk.start(pid)
    assert court.stake_of(ct.node.address)[1] == BOND
    mk.market.abandon_training(ct.node, pid, "crashed")
    court.release(mk.roles["stranger"], pid)
    assert court.stake_of(ct.node.address) == (2 * BOND, 0)


def test_an_overturned_result_refunds_the_scoring_fee_from_the_bond(ct: Court) -> None:
    """The market pays the scoring pool its fee when the result is posted; an overturned
    result's consumer still gets its whole price back, the fee out of the node's bond."""
    mk, court = ct.mk, ct.court
    pool = mk.deployment.address_of("ScoringPool")
    fee_fn = mk.market._contract.functions.setScoringFee(pool, 500)  # 5 %
    mk.chain.transact(mk.roles["governance"], fee_fn, action="setScoringFee")
    consumer = mk.roles["consumer"].address
    credit_before = mk.market.credit_of(consumer)
    tokens_before = mk.token.balance_of(consumer)
    pid = ct.completed(offer=1000, cost=50)
    assert mk.market.proposal(pid).unclaimed == 950  # the pool's 50 already taken
    committee, _ = court.challenge(ct.verifiers[0], pid)
    for member in committee:
        court.vote(ct.account(member), pid, result_correct=False)
    court.resolve(mk.roles["stranger"], pid)
    assert mk.market.credit_of(consumer) == credit_before + 950 + 50
    assert mk.token.balance_of(consumer) == tokens_before - 1000 - 50 + 50  # the fee, repaid
    assert court.stake_of(ct.verifiers[0].address) == (3 * BOND - 50, 0)
