"""TrainingMarket on anvil: every external function's success path, custom errors and roles."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_utils.crypto import keccak

from tests.integration.market.conftest import Market
from tests.integration.market.test_asset_registry import reverts
from visdm.chain.contracts import REJECT_ASK, ClaimRequest, MarketParameters, ProposalStatus, Quote
from visdm.errors import InvalidInputError
from visdm.market import claim_for, sign_quote

pytestmark = pytest.mark.integration

S = ProposalStatus


@pytest.fixture
def two_assets(mk: Market) -> list[tuple[int, int]]:
    a = mk.add_asset(mk.roles["provider"], 100)
    b = mk.add_asset(mk.roles["provider2"], 100)
    return [(a, 60), (b, 40)]


# ------------------------------------------------------------------------ propose


def test_propose_escrows_the_offer_and_commits_the_selection(mk: Market, two_assets) -> None:
    before = mk.token.balance_of(mk.roles["consumer"].address)
    pid = mk.propose(two_assets, offer=1234)
    p = mk.market.proposal(pid)
    assert p.status == S.VOTING
    assert (p.offer, p.price, p.total_weight, p.asset_count) == (1234, 1234, 100, 2)
    assert p.assets_hash == mk.market.assets_hash_of([a for a, _ in two_assets], [40 + 20, 40])
    assert mk.token.balance_of(mk.roles["consumer"].address) == before - 1234
    assert mk.escrow_balance() == 1234


def test_propose_errors(mk: Market, two_assets) -> None:
    (a, _), (b, _) = two_assets
    consumer = mk.roles["consumer"]
    for who in ("provider", "node", "governance", "stranger"):
        with reverts("TrainingMarketNotConsumer"):
            mk.market.propose(mk.roles[who], mk.terms(two_assets))
    bad = [
        mk.terms([]),
        mk.terms(two_assets, offer=0),
        mk.terms(two_assets, wtp_bps=10_001),
        mk.terms(two_assets, voting_period=10),  # below the minimum voting period
        mk.terms(two_assets, voting_period=10**9),
        mk.terms([(b, 1), (a, 1)]),  # not increasing
        mk.terms([(a, 1), (a, 1)]),  # duplicate
    ]
    for terms in bad:
        with reverts("TrainingMarketInvalidTerms"):
            mk.market.propose(consumer, terms)
    pending = mk.add_asset(mk.roles["provider"], 10, attest=False)
    for selection in ([(pending, 1)], [(a, 0)], [(a, 101)], [(999, 1)]):
        with reverts("TrainingMarketAssetNotSelectable"):
            mk.market.propose(consumer, mk.terms(selection))
    with reverts("TrainingMarketInactiveNode"):
        mk.market.propose(consumer, mk.terms(two_assets, node=mk.roles["stranger"].address))
    # a node elsewhere is not allowed by assets that only allow "local"
    gov = mk.roles["governance"]
    mk.stakeholders.add_region(gov, "eu-west")
    other = mk.new_account("eu-node-2")
    mk.stakeholders.admit_node(
        gov,
        other.address,
        signer=other.address,
        region="eu-west",
        encryption_key=b"\x02" * 32,
        endpoint="http://127.0.0.1:9/",
    )
    with reverts("TrainingMarketNodeNotAllowed"):
        mk.market.propose(consumer, mk.terms(two_assets, node=other.address))
    # withdrawn assets cannot be selected
    mk.assets.withdraw_asset(mk.roles["provider"], a)
    with reverts("TrainingMarketAssetNotSelectable"):
        mk.market.propose(consumer, mk.terms(two_assets))
    assert mk.escrow_balance() == 0


# ------------------------------------------------------------------------ votes and tally


def test_vote_replace_and_close(mk: Market, two_assets) -> None:
    pid = mk.propose(two_assets)
    p1 = mk.roles["provider"]
    mk.market.vote(p1, pid, 500)
    mk.market.vote(p1, pid, 700)  # re-voting replaces
    assert mk.market.vote_of(pid, p1.address) == 700
    mk.market.vote(p1, pid, 0)
    assert mk.market.vote_of(pid, p1.address) == 0
    mk.market.vote(p1, pid, REJECT_ASK)
    assert mk.market.vote_of(pid, p1.address) == REJECT_ASK
    assert mk.market.vote_of(pid, mk.roles["stranger"].address) is None
    with reverts("TrainingMarketUnknownProposal"):
        mk.market.vote(p1, 999, 1)
    with reverts("TrainingMarketVotingOpen"):
        mk.tally(pid, two_assets)
    mk.advance(3601)
    with reverts("TrainingMarketVotingClosed"):
        mk.market.vote(p1, pid, 1)


def test_vote_gas(mk: Market, two_assets) -> None:
    pid = mk.propose(two_assets)
    first = mk.market.vote(mk.roles["provider"], pid, 500).gas_used
    again = mk.market.vote(mk.roles["provider"], pid, 600).gas_used
    print(f"\nvote gas: first {first}, re-vote {again}")
    assert first <= 60_000


@pytest.mark.parametrize(
    ("asks", "offer", "status", "price"),
    [
        ((500, 900), 1000, S.APPROVED, 500),  # weights 60/40: median is provider's ask
        ((1500, 900), 1000, S.COUNTERED, 1500),
        ((REJECT_ASK, 0), 1000, S.REJECTED, REJECT_ASK),
        ((None, None), 1000, S.FAILED, 0),
        ((None, 100), 1000, S.APPROVED, 100),  # 40% participates >= 30% quorum
    ],
)
def test_tally_outcomes(mk: Market, two_assets, asks, offer, status, price) -> None:
    pid = mk.propose(two_assets, offer=offer)
    for who, ask in zip(("provider", "provider2"), asks, strict=True):
        if ask is not None:
            mk.market.vote(mk.roles[who], pid, ask)
    mk.advance(3601)
    consumer = mk.roles["consumer"].address
    credit_before = mk.market.credit_of(consumer)
    receipt = mk.tally(pid, two_assets)
    p = mk.market.proposal(pid)
    assert (p.status, p.clearing_price) == (status, price)
    assert receipt.outcome.status == status
    refunded = mk.market.credit_of(consumer) - credit_before
    assert refunded == (offer if status in (S.FAILED, S.REJECTED) else 0)
    with reverts("TrainingMarketWrongStatus"):
        mk.market.tally(
            mk.roles["stranger"], pid, price, [a for a, _ in two_assets], [c for _, c in two_assets]
        )


def test_quorum_not_met(mk: Market) -> None:
    a = mk.add_asset(mk.roles["provider"], 100)
    b = mk.add_asset(mk.roles["provider2"], 100)
    selection = [(a, 80), (b, 20)]  # provider2 alone has 20% < 30% quorum
    pid = mk.propose(selection)
    mk.market.vote(mk.roles["provider2"], pid, 1)
    mk.advance(3601)
    assert mk.tally(pid, selection).outcome.status == S.FAILED
    assert mk.market.proposal(pid).status == S.FAILED


def test_tally_verifies_the_median_and_the_selection(mk: Market, two_assets) -> None:
    pid = mk.propose(two_assets)
    mk.market.vote(mk.roles["provider"], pid, 500)
    mk.market.vote(mk.roles["provider2"], pid, 900)
    mk.advance(3601)
    ids, counts = [a for a, _ in two_assets], [c for _, c in two_assets]
    tallier = mk.roles["stranger"]
    for wrong in (499, 501, 900):
        with reverts("TrainingMarketNotMedian"):
            mk.market.tally(tallier, pid, wrong, ids, counts)
    with reverts("TrainingMarketTallyMismatch"):
        mk.market.tally(tallier, pid, 500, ids, [counts[0], counts[1] + 1])
    with reverts("TrainingMarketTallyMismatch"):
        mk.market.tally(tallier, pid, 500, [*ids, ids[0]], [*counts, 1])
    with reverts("TrainingMarketTallyMismatch"):
        mk.market.tally(tallier, pid, 500, ids, counts[:1])
    # batches: the price must stay the same across one tallier's batches
    done, _ = mk.market.tally(tallier, pid, 500, ids[:1], counts[:1])
    assert not done
    assert mk.market._contract.functions.tallyProgress(pid, tallier.address).call()[2] == 1
    with reverts("TrainingMarketTallyPriceChanged"):
        mk.market.tally(tallier, pid, 900, ids[1:], counts[1:])
    # another tallier's progress is independent; a reset starts over
    mk.market.reset_tally(tallier, pid)
    done, _tx = mk.market.tally(tallier, pid, 500, ids, counts)
    assert done
    assert mk.market.proposal(pid).status == S.APPROVED


def test_direct_vote_overrides_delegate_and_chains_resolve(mk: Market) -> None:
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    p3 = mk.new_provider("provider3")
    a, b, c = (mk.add_asset(p, 100) for p in (p1, p2, p3))
    delegate = mk.new_account("a-delegate")
    mk.delegations.delegate(p1, delegate.address)
    mk.delegations.delegate(p2, p1.address)  # p2 -> p1 -> delegate
    selection = [(a, 10), (b, 50), (c, 45)]
    pid = mk.propose(selection, offer=1000)
    mk.market.vote(delegate, pid, 800)
    mk.market.vote(p3, pid, 2000)
    mk.advance(3601)
    # p1 (10) and p2 (50) resolve to the delegate's 800; p3 (45) asks 2000 → median 800
    assert mk.tally(pid, selection).outcome.clearing_price == 800
    pid2 = mk.propose(selection, offer=1000)
    mk.market.vote(delegate, pid2, 800)
    mk.market.vote(p1, pid2, 3000)  # p1's own vote overrides its delegate, and speaks for p2
    mk.market.vote(p3, pid2, 2000)
    mk.advance(3601)
    outcome = mk.tally(pid2, selection).outcome
    assert (outcome.status, outcome.clearing_price) == (S.COUNTERED, 3000)


def test_delegation_changed_after_the_deadline_cannot_change_the_outcome(mk: Market) -> None:
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    a, b = mk.add_asset(p1, 100), mk.add_asset(p2, 100)
    cheap, greedy = mk.new_account("cheap"), mk.new_account("greedy")
    mk.delegations.delegate(p1, cheap.address)
    selection = [(a, 70), (b, 30)]
    pid = mk.propose(selection, offer=1000)
    mk.market.vote(cheap, pid, 100)
    mk.market.vote(greedy, pid, 5000)
    mk.market.vote(p2, pid, 5000)
    mk.advance(3601)
    # after the deadline p1 switches to the greedy delegate: too late
    mk.delegations.delegate(p1, greedy.address)
    outcome = mk.tally(pid, selection).outcome
    assert (outcome.status, outcome.clearing_price) == (S.APPROVED, 100)
    # the contract's own check agrees: p1 delegates to `greedy` at pid2's deadline and switches
    # to `cheap` afterwards; a tally claiming the median the late switch would give is refused
    pid2 = mk.propose(selection, offer=1000)
    mk.market.vote(cheap, pid2, 100)
    mk.market.vote(greedy, pid2, 5000)
    mk.advance(3601)
    mk.delegations.delegate(p1, cheap.address)
    with reverts("TrainingMarketNotMedian"):
        mk.market.tally(mk.roles["stranger"], pid2, 100, [a, b], [70, 30])
    done, _ = mk.market.tally(mk.roles["stranger"], pid2, 5000, [a, b], [70, 30])
    assert done
    assert mk.market.proposal(pid2).status == S.COUNTERED


def test_deep_delegation_chain_abstains_and_does_not_block_the_tally(mk: Market) -> None:
    depth = mk.delegations.max_depth()
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    a, b = mk.add_asset(p1, 100), mk.add_asset(p2, 100)
    # grow a chain at its tail, one legal delegation at a time: p1 → hop0 → … → hop_depth has
    # depth + 1 hops although each delegate() call only saw a short chain below itself
    hops = [mk.new_account(f"hop-{i}") for i in range(depth + 1)]
    mk.delegations.delegate(p1, hops[0].address)
    for i in range(depth):
        mk.delegations.delegate(hops[i], hops[i + 1].address)
    selection = [(a, 50), (b, 50)]
    pid = mk.propose(selection, offer=1000)
    mk.market.vote(hops[-1], pid, 10)  # the end of the too-long chain
    mk.market.vote(p2, pid, 700)
    mk.advance(3601)
    receipt = mk.tally(pid, selection)
    # p1's weight abstains: only p2's 700 participates (50% ≥ quorum)
    assert receipt.outcome.participating_weight == 50
    assert receipt.outcome.clearing_price == 700
    print(f"\ntally gas with a {depth + 1}-hop chain: {receipt.gas_used}")


def test_tally_in_many_batches(mk: Market) -> None:
    owners = [mk.new_provider(f"many-{i}") for i in range(12)]
    selection = [(mk.add_asset(o, 10), 1 + i % 3) for i, o in enumerate(owners)]
    pid = mk.propose(selection, offer=1000)
    for i, o in enumerate(owners[:8]):
        mk.market.vote(o, pid, 100 * (i + 1))
    mk.advance(3601)
    receipt = mk.tally(pid, selection, batch_size=5)
    assert len(receipt.transactions) == 3
    assert mk.market.proposal(pid).status == S.APPROVED
    assert mk.market.proposal(pid).clearing_price == receipt.outcome.clearing_price


# ------------------------------------------------------------------------ counter-offer


def countered(mk: Market, two_assets) -> int:  # type: ignore[no-untyped-def]
    pid = mk.propose(two_assets, offer=1000)
    mk.market.vote(mk.roles["provider"], pid, 1500)
    mk.market.vote(mk.roles["provider2"], pid, 1500)
    mk.advance(3601)
    mk.tally(pid, two_assets)
    return pid


def test_accept_counter_tops_up(mk: Market, two_assets) -> None:
    pid = countered(mk, two_assets)
    for who in ("provider", "node", "stranger"):
        with reverts("TrainingMarketNotConsumer"):
            mk.market.accept_counter(mk.roles[who], pid)
    mk.market.accept_counter(mk.roles["consumer"], pid)
    p = mk.market.proposal(pid)
    assert (p.status, p.price) == (S.APPROVED, 1500)
    assert mk.escrow_balance() == 1500
    with reverts("TrainingMarketWrongStatus"):
        mk.market.accept_counter(mk.roles["consumer"], pid)


def test_counter_lapses_and_consumer_reclaims(mk: Market, two_assets) -> None:
    pid = countered(mk, two_assets)
    consumer = mk.roles["consumer"]
    with reverts("TrainingMarketDeadlineNotPassed"):
        mk.market.reclaim(consumer, pid)
    mk.advance(mk.market.parameters().reply_period + 1)
    with reverts("TrainingMarketDeadlinePassed"):
        mk.market.accept_counter(consumer, pid)
    before = mk.token.balance_of(consumer.address)
    mk.market.reclaim(consumer, pid)
    assert mk.token.balance_of(consumer.address) == before + 1000
    assert mk.market.proposal(pid).status == S.CANCELLED
    assert mk.escrow_balance() == 0
    with reverts("TrainingMarketWrongStatus"):
        mk.market.reclaim(consumer, pid)


# ------------------------------------------------------------------------ training


def test_start_training_with_a_signed_quote(mk: Market, two_assets) -> None:
    pid = mk.approved(two_assets)
    consumer = mk.roles["consumer"]
    quote, signature = mk.quote(pid, cost=77, duration=7200)
    for who in ("provider", "node", "stranger"):
        with reverts("TrainingMarketNotConsumer"):
            mk.market.start_training(mk.roles[who], pid, quote, signature)
    # a quote for another proposal, or signed by someone else, or expired, is refused
    other = Quote(pid + 1, 77, 7200, quote.expiry)
    with reverts("TrainingMarketBadQuote"):
        mk.market.start_training(consumer, pid, other, signature)
    with reverts("TrainingMarketBadSigner"):
        mk.market.start_training(consumer, pid, Quote(pid, 1, 7200, quote.expiry), signature)
    forged = sign_quote(
        bytes(mk.roles["stranger"].key), mk.chain.chain_id, mk.market.address, quote
    )
    with reverts("TrainingMarketBadSigner"):
        mk.market.start_training(consumer, pid, quote, forged)
    wrong_chain = sign_quote(bytes(mk.roles["node"].key), 1, mk.market.address, quote)
    with reverts("TrainingMarketBadSigner"):
        mk.market.start_training(consumer, pid, quote, wrong_chain)
    expired, sig_expired = mk.quote(pid, expiry_in=-1)
    with reverts("TrainingMarketQuoteExpired"):
        mk.market.start_training(consumer, pid, expired, sig_expired)
    assert mk.market.quote_digest(quote) != b""
    tx = mk.market.start_training(consumer, pid, quote, signature)
    p = mk.market.proposal(pid)
    assert (p.status, p.training_cost) == (S.TRAINING, 77)
    assert mk.escrow_balance() == 1000 + 77
    print(f"\nstartTraining gas: {tx.gas_used}")
    with reverts("TrainingMarketWrongStatus"):
        mk.market.start_training(consumer, pid, quote, signature)  # no replay


def test_suspended_node_cannot_start_or_submit(mk: Market, two_assets) -> None:
    pid = mk.approved(two_assets)
    gov, node = mk.roles["governance"], mk.roles["node"].address
    mk.stakeholders.suspend_node(gov, node)
    quote, signature = mk.quote(pid)
    with reverts("TrainingMarketInactiveNode"):
        mk.market.start_training(mk.roles["consumer"], pid, quote, signature)
    mk.stakeholders.reinstate_node(gov, node)
    mk.market.start_training(mk.roles["consumer"], pid, quote, signature)
    mk.stakeholders.suspend_node(gov, node)  # suspended while training
    with reverts("TrainingMarketInactiveNode"):
        submit(mk, pid, 9000)


def submit(mk: Market, pid: int, accuracy: int, root: bytes = b"\x01" * 32, who: str = "node"):  # type: ignore[no-untyped-def]
    return mk.market.submit_result(
        mk.roles[who],
        pid,
        accuracy_bps=accuracy,
        model_hash=keccak(text="model"),
        payout_root=root,
        scores_hash=keccak(text="scores"),
        model_cid="bafkreimodel",
    )


def test_submit_result_wtp_met_pays_node_and_opens_claims(mk: Market, two_assets) -> None:
    pid = mk.approved(two_assets, wtp_bps=8000)
    mk.start(pid, cost=50)
    for who in ("provider", "consumer", "governance", "stranger"):
        with reverts("TrainingMarketNotNode"):
            submit(mk, pid, 9000, who=who)
    with reverts("TrainingMarketInvalidTerms"):
        submit(mk, pid, 10_001)
    with reverts("TrainingMarketInvalidTerms"):
        submit(mk, pid, 9000, root=bytes(32))
    tx = submit(mk, pid, 8000)
    (event,) = mk.market.events("ResultSubmitted", tx.receipt)
    assert event["args"]["wtpMet"] is True
    p = mk.market.proposal(pid)
    assert (p.status, p.accuracy_bps) == (S.COMPLETED, 8000)
    assert mk.market.credit_of(mk.roles["node"].address) == 50
    print(f"\nsubmitResult gas: {tx.gas_used}")
    with reverts("TrainingMarketWrongStatus"):
        submit(mk, pid, 9000)


def test_submit_result_wtp_missed_refunds_data_price(mk: Market, two_assets) -> None:
    pid = mk.approved(two_assets, wtp_bps=9500)
    mk.start(pid, cost=50)
    submit(mk, pid, 9499, root=bytes(32))  # no payout root needed when WTP is missed
    p = mk.market.proposal(pid)
    assert (p.status, p.price) == (S.WTP_MISSED, 0)
    assert mk.market.credit_of(mk.roles["consumer"].address) == 1000
    assert mk.market.credit_of(mk.roles["node"].address) == 50
    consumer = mk.roles["consumer"]
    before = mk.token.balance_of(consumer.address)
    mk.market.withdraw(consumer)
    assert mk.token.balance_of(consumer.address) == before + 1000
    with reverts("TrainingMarketNothingToWithdraw"):
        mk.market.withdraw(consumer)
    mk.market.withdraw(mk.roles["node"])
    assert mk.escrow_balance() == 0


def test_no_result_by_the_deadline_refunds_everything(mk: Market, two_assets) -> None:
    pid = mk.approved(two_assets)
    mk.start(pid, cost=50, duration=600)
    consumer = mk.roles["consumer"]
    with reverts("TrainingMarketDeadlineNotPassed"):
        mk.market.reclaim(consumer, pid)
    mk.advance(601)
    with reverts("TrainingMarketDeadlinePassed"):
        submit(mk, pid, 9000)
    for who in ("provider", "node", "stranger"):
        with reverts("TrainingMarketNotConsumer"):
            mk.market.reclaim(mk.roles[who], pid)
    before = mk.token.balance_of(consumer.address)
    mk.market.reclaim(consumer, pid)
    assert mk.token.balance_of(consumer.address) == before + 1050
    assert mk.escrow_balance() == 0


def test_approval_never_started_can_be_reclaimed(mk: Market, two_assets) -> None:
    pid = mk.approved(two_assets)
    mk.advance(mk.market.parameters().start_period + 1)
    quote, signature = mk.quote(pid)
    with reverts("TrainingMarketDeadlinePassed"):
        mk.market.start_training(mk.roles["consumer"], pid, quote, signature)
    mk.market.reclaim(mk.roles["consumer"], pid)
    assert mk.escrow_balance() == 0


# ------------------------------------------------------------------------ claims


def test_claims_pay_each_provider_once_and_never_more_than_the_price(
    mk: Market, two_assets
) -> None:
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    pid = mk.approved(two_assets, offer=1000)
    tree = mk.payout(pid, {p1.address: 600, p2.address: 400})
    stranger = mk.roles["stranger"]
    c1, c2 = claim_for(tree, pid, p1.address), claim_for(tree, pid, p2.address)
    with reverts("TrainingMarketInvalidProof"):
        mk.market.claim(stranger, replace(c1, amount=601))
    with reverts("TrainingMarketInvalidProof"):
        mk.market.claim(stranger, replace(c1, account=stranger.address))
    with reverts("TrainingMarketInvalidProof"):
        mk.market.claim(stranger, replace(c1, index=c2.index))
    tx = mk.market.claim(stranger, c1)  # anyone may submit; the tokens go to the payee
    assert mk.token.balance_of(p1.address) == 600
    print(f"\nclaim gas (2 payees): {tx.gas_used}")
    with reverts("TrainingMarketAlreadyClaimed"):
        mk.market.claim(p1, c1)
    mk.market.claim_many(p2, [c2])
    assert mk.token.balance_of(p2.address) == 400
    assert mk.market.is_claimed(pid, c2.index)
    assert mk.market.proposal(pid).unclaimed == 0
    assert mk.escrow_balance() == 50  # only the node's credited training fee is left
    with pytest.raises(InvalidInputError, match="not a payee"):
        claim_for(tree, pid, stranger.address)


def test_overclaim_is_refused_even_with_a_valid_proof(mk: Market, two_assets) -> None:
    # a (buggy or malicious) node commits payouts summing to more than the price
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    pid = mk.approved(two_assets, offer=1000)
    tree = mk.payout(pid, {p1.address: 900, p2.address: 900})
    mk.market.claim(p1, claim_for(tree, pid, p1.address))
    with reverts("TrainingMarketOverClaim"):
        mk.market.claim(p2, claim_for(tree, pid, p2.address))


def test_claim_before_completion_is_refused(mk: Market, two_assets) -> None:
    pid = mk.propose(two_assets)
    request = ClaimRequest(pid, 0, mk.roles["provider"].address, 1, ())
    with reverts("TrainingMarketWrongStatus"):
        mk.market.claim(mk.roles["provider"], request)
    with reverts("TrainingMarketUnknownProposal"):
        mk.market.claim(mk.roles["provider"], replace(request, proposal_id=4242))


# ------------------------------------------------------------------------ governance


def test_set_parameters(mk: Market) -> None:
    new = MarketParameters(
        quorum_bps=5000, min_voting_period=1, max_voting_period=10, reply_period=5, start_period=5
    )
    for who in ("provider", "consumer", "node", "stranger"):
        with reverts("TrainingMarketNotGovernance"):
            mk.market.set_parameters(mk.roles[who], new)
    with reverts("TrainingMarketInvalidParameters"):
        mk.market.set_parameters(mk.roles["governance"], MarketParameters(quorum_bps=10_001))
    mk.market.set_parameters(mk.roles["governance"], new)
    assert mk.market.parameters() == new
