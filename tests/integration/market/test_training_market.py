"""TrainingMarket on anvil: every external function's success path, custom errors and roles."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_utils.crypto import keccak

from tests.integration.market.conftest import Market
from tests.integration.market.test_asset_registry import reverts
from visdm.chain.contracts import (
    REJECT_ASK,
    ClaimRequest,
    MarketParameters,
    ProposalStatus,
    Quote,
    ResultCommitment,
)
from visdm.errors import InvalidInputError
from visdm.market import sign_quote

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
    with reverts("TrainingMarketInvalidTerms"):
        mk.market.propose(consumer, mk.terms(two_assets, min_share_bps=10_001))
    # withdrawn assets cannot be selected
    mk.assets.withdraw_asset(mk.roles["provider"], a)
    with reverts("TrainingMarketAssetNotSelectable"):
        mk.market.propose(consumer, mk.terms(two_assets))
    assert mk.escrow_balance() == 0


def test_the_selection_must_reach_the_market_minimums(mk: Market, two_assets) -> None:
    gov, consumer = mk.roles["governance"], mk.roles["consumer"]
    params = mk.market.parameters()
    mk.market.set_parameters(
        gov, replace(params, min_selection_samples=101, min_selection_providers=2)
    )
    with reverts("TrainingMarketSelectionTooSmall"):
        mk.market.propose(consumer, mk.terms(two_assets))  # 100 samples
    (a, _), (b, _) = two_assets
    with reverts("TrainingMarketSelectionTooSmall"):
        mk.market.propose(consumer, mk.terms([(a, 100)]))  # 100 samples, one owner
    second = mk.add_asset(mk.roles["provider"], 100)  # same owner: still one provider
    with reverts("TrainingMarketSelectionTooSmall"):
        mk.market.propose(consumer, mk.terms([(a, 100), (second, 100)]))
    pid = mk.propose([(a, 61), (b, 40)])
    assert mk.market.proposal(pid).total_weight == 101


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
    ("asks", "min_share", "status", "price", "remaining"),
    [
        ((500, 900), 0, S.APPROVED, 500, 100),  # weights 60/40: median is provider's ask
        ((1500, 900), 0, S.COUNTERED, 1500, 100),
        # a REJECT takes provider's 60 out of the round; provider2's 40 trains at its ask
        ((REJECT_ASK, 0), 0, S.APPROVED, 0, 40),
        ((REJECT_ASK, 0), 4000, S.APPROVED, 0, 40),
        # ... unless the consumer wanted at least half of the selection
        ((REJECT_ASK, 0), 5000, S.REJECTED, 0, 40),
        ((REJECT_ASK, REJECT_ASK), 0, S.REJECTED, 0, 0),
        ((None, None), 0, S.FAILED, 0, 100),
        ((None, 100), 0, S.APPROVED, 100, 100),  # 40% participates >= 30% quorum
    ],
)
def test_tally_outcomes(mk: Market, two_assets, asks, min_share, status, price, remaining) -> None:
    offer = 1000
    pid = mk.propose(two_assets, offer=offer, min_share_bps=min_share)
    for who, ask in zip(("provider", "provider2"), asks, strict=True):
        if ask is not None:
            mk.market.vote(mk.roles[who], pid, ask)
    mk.advance(3601)
    consumer = mk.roles["consumer"].address
    credit_before = mk.market.credit_of(consumer)
    receipt = mk.tally(pid, two_assets)
    p = mk.market.proposal(pid)
    assert (p.status, p.clearing_price, p.remaining_weight) == (status, price, remaining)
    assert receipt.outcome.status == status
    left = {i for i, ask in enumerate(asks) if ask == REJECT_ASK}
    assert mk.market.excluded_positions(pid, 2) == left == set(receipt.outcome.excluded)
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
    # a batch that does not end the tally must hold a multiple of 256 assets
    with reverts("TrainingMarketTallyBatch"):
        mk.market.tally(tallier, pid, 500, ids[:1], counts[:1])
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
    """300 assets of 4 owners tallied in batches of 256: rejections and withdrawals in both
    exclusion words, the price kept across one tallier's batches, a reset starting over."""
    owners = [mk.new_provider(f"many-{i}") for i in range(4)]
    selection = [(mk.add_asset(owners[i % 4], 10), 1 + i % 3) for i in range(300)]
    pid = mk.propose(selection, offer=1000)
    for i, o in enumerate(owners[:3]):
        mk.market.vote(o, pid, 100 * (i + 1))
    mk.market.vote(owners[3], pid, REJECT_ASK)
    withdrawn = [5, 260, 298]
    for position in withdrawn:
        mk.assets.withdraw_asset(owners[position % 4], selection[position][0])
    mk.advance(3601)
    ids, counts = [a for a, _ in selection], [c for _, c in selection]
    tallier = mk.roles["stranger"]
    done, _ = mk.market.tally(tallier, pid, 1, ids[:256], counts[:256])
    assert not done
    with reverts("TrainingMarketTallyPriceChanged"):
        mk.market.tally(tallier, pid, 2, ids[256:], counts[256:])
    mk.market.reset_tally(tallier, pid)
    receipt = mk.tally(pid, selection)
    assert len(receipt.transactions) == 2
    p = mk.market.proposal(pid)
    assert p.status == S.APPROVED
    assert p.clearing_price == receipt.outcome.clearing_price
    left = {i for i in range(300) if i % 4 == 3} | set(withdrawn)
    assert mk.market.excluded_positions(pid, 300) == left == set(receipt.outcome.excluded)
    assert p.remaining_weight == sum(c for i, (_, c) in enumerate(selection) if i not in left)


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


def submit(  # type: ignore[no-untyped-def]
    mk: Market,
    pid: int,
    accuracy: int,
    root: bytes = b"\x01" * 32,
    who: str = "node",
    *,
    consumer_fault: bool = False,
):
    result = ResultCommitment(
        accuracy_bps=accuracy,
        result_cid="bafkreiresult",
        consumer_fault=consumer_fault,
        model_hash=keccak(text="model"),
        payout_root=root,
        scores_hash=keccak(text="scores"),
        seed_hash=keccak(text="seed"),
    )
    return mk.market.submit_result(mk.roles[who], pid, result)


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
    assert event["args"]["seedHash"] == keccak(text="seed")
    p = mk.market.proposal(pid)
    assert (p.status, p.accuracy_bps, p.seed_hash) == (S.COMPLETED, 8000, keccak(text="seed"))
    params = mk.market.parameters()
    assert p.claim_deadline == mk.now() + params.claim_period
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


@pytest.mark.attack
@pytest.mark.parametrize("wtp", [0, 8000])
def test_a_consumer_fault_refunds_the_price_whatever_the_wtp(mk: Market, two_assets, wtp) -> None:
    # with wtpBps = 0 every accuracy "meets" the threshold: the fault must still refund
    pid = mk.approved(two_assets, wtp_bps=wtp)
    mk.start(pid, cost=50)
    tx = submit(mk, pid, 0, root=bytes(32), consumer_fault=True)
    (event,) = mk.market.events("ResultSubmitted", tx.receipt)
    assert (event["args"]["wtpMet"], event["args"]["consumerFault"]) == (False, True)
    assert mk.market.proposal(pid).status == S.WTP_MISSED
    assert mk.market.credit_of(mk.roles["consumer"].address) == 1000
    assert mk.market.credit_of(mk.roles["node"].address) == 50


def test_the_node_can_abandon_a_job_with_a_full_refund(mk: Market, two_assets) -> None:
    pid = mk.approved(two_assets)
    mk.start(pid, cost=50)
    for who in ("consumer", "provider", "stranger"):
        with reverts("TrainingMarketNotNode"):
            mk.market.abandon_training(mk.roles[who], pid, "no")
    tx = mk.market.abandon_training(mk.roles["node"], pid, "crashed three times")
    (event,) = mk.market.events("TrainingAbandoned", tx.receipt)
    assert event["args"]["reason"] == "crashed three times"
    p = mk.market.proposal(pid)
    assert (p.status, p.price, p.training_cost) == (S.CANCELLED, 0, 0)
    assert mk.market.credit_of(mk.roles["consumer"].address) == 1050
    with reverts("TrainingMarketWrongStatus"):
        mk.market.abandon_training(mk.roles["node"], pid, "again")
    with reverts("TrainingMarketWrongStatus"):
        submit(mk, pid, 9000)


@pytest.mark.attack
def test_a_quote_cannot_promise_more_than_the_longest_training(mk: Market, two_assets) -> None:
    # uint48(block.timestamp + maxDuration) used to wrap around for huge durations
    pid = mk.approved(two_assets)
    longest = mk.market.parameters().max_training_period
    for duration in (longest + 1, 2**64 - 1):
        quote, signature = mk.quote(pid, duration=duration)
        with reverts("TrainingMarketBadQuote"):
            mk.market.start_training(mk.roles["consumer"], pid, quote, signature)
    mk.start(pid, duration=longest)
    assert mk.market.proposal(pid).deadline == mk.now() + longest


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


def test_claims_credit_each_asset_owner_once_and_never_more_than_the_price(
    mk: Market, two_assets
) -> None:
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    ids = [a for a, _ in two_assets]
    pid = mk.approved(two_assets, offer=1000)
    tree = mk.payout(pid, {ids[0]: 600, ids[1]: 400}, ids)
    stranger = mk.roles["stranger"]
    c1, c2 = mk.claim(pid, tree, ids[0], ids), mk.claim(pid, tree, ids[1], ids)
    with reverts("TrainingMarketInvalidProof"):
        mk.market.claim(stranger, replace(c1, amount=601))
    with reverts("TrainingMarketInvalidProof"):
        mk.market.claim(stranger, replace(c1, asset_id=ids[1]))
    with reverts("TrainingMarketInvalidProof"):
        mk.market.claim(stranger, replace(c1, position=c2.position))
    assert [mk.market.selected_asset(pid, i) for i in range(3)] == [*ids, 0]
    tx = mk.market.claim(stranger, c1)  # anyone may submit; the asset's owner is credited
    assert mk.market.credit_of(p1.address) == 600
    assert mk.token.balance_of(p1.address) == 0  # tokens move once, at withdraw
    print(f"\nclaim gas (2 payees): {tx.gas_used}")
    with reverts("TrainingMarketAlreadyClaimed"):
        mk.market.claim(p1, c1)
    mk.market.claim_many(p2, [c2])
    assert mk.market.is_claimed(pid, c2.position)
    assert mk.market.proposal(pid).unclaimed == 0
    for owner, amount in ((p1, 600), (p2, 400)):
        mk.market.withdraw(owner)
        assert mk.token.balance_of(owner.address) == amount
    assert mk.escrow_balance() == 50  # only the node's credited training fee is left
    with pytest.raises(InvalidInputError, match="not paid"):
        mk.claim(pid, tree, 4242, ids)


def test_claim_many_across_proposals(mk: Market, two_assets) -> None:
    p1 = mk.roles["provider"]
    ids = [a for a, _ in two_assets]
    requests = []
    for offer in (1000, 2000):
        pid = mk.approved(two_assets, offer=offer)
        tree = mk.payout(pid, {ids[0]: offer // 2, ids[1]: offer // 2}, ids)
        requests.append(mk.claim(pid, tree, ids[0], ids))
    mk.market.claim_many(mk.roles["stranger"], requests)
    assert mk.market.credit_of(p1.address) == 1500


def test_overclaim_is_refused_even_with_a_valid_proof(mk: Market, two_assets) -> None:
    # a (buggy or malicious) node commits payouts summing to more than the price
    ids = [a for a, _ in two_assets]
    pid = mk.approved(two_assets, offer=1000)
    tree = mk.payout(pid, {ids[0]: 900, ids[1]: 900}, ids)
    mk.market.claim(mk.roles["provider"], mk.claim(pid, tree, ids[0], ids))
    with reverts("TrainingMarketOverClaim"):
        mk.market.claim(mk.roles["provider2"], mk.claim(pid, tree, ids[1], ids))


def test_claim_before_completion_is_refused(mk: Market, two_assets) -> None:
    pid = mk.propose(two_assets)
    request = ClaimRequest(pid, 0, two_assets[0][0], 1, ())
    with reverts("TrainingMarketWrongStatus"):
        mk.market.claim(mk.roles["provider"], request)
    with reverts("TrainingMarketUnknownProposal"):
        mk.market.claim(mk.roles["provider"], replace(request, proposal_id=4242))


def test_unclaimed_payouts_go_to_the_treasury_after_the_claim_period(
    mk: Market, two_assets
) -> None:
    ids = [a for a, _ in two_assets]
    pid = mk.approved(two_assets, offer=1000)
    tree = mk.payout(pid, {ids[0]: 600, ids[1]: 400}, ids)
    stranger = mk.roles["stranger"]
    mk.market.claim(stranger, mk.claim(pid, tree, ids[0], ids))
    with reverts("TrainingMarketClaimPeriodOpen"):
        mk.market.sweep_unclaimed(stranger, pid)
    mk.advance(mk.market.parameters().claim_period + 1)
    with reverts("TrainingMarketClaimPeriodOver"):
        mk.market.claim(stranger, mk.claim(pid, tree, ids[1], ids))
    treasury = mk.market.parameters().treasury
    before = mk.market.credit_of(treasury)
    tx = mk.market.sweep_unclaimed(stranger, pid)  # anyone may
    (event,) = mk.market.events("UnclaimedSwept", tx.receipt)
    assert (event["args"]["treasury"], event["args"]["amount"]) == (treasury, 400)
    assert mk.market.credit_of(treasury) == before + 400
    assert mk.market.proposal(pid).unclaimed == 0
    with reverts("TrainingMarketWrongStatus"):
        mk.market.sweep_unclaimed(stranger, mk.propose(two_assets))


# ------------------------------------------------------------------------ governance


def test_set_parameters(mk: Market) -> None:
    treasury = mk.roles["governance"].address
    new = MarketParameters(
        quorum_bps=5000,
        min_voting_period=1,
        max_voting_period=10,
        reply_period=5,
        start_period=5,
        max_training_period=7,
        claim_period=9,
        min_batch_size=32,
        min_selection_samples=100,
        min_selection_providers=2,
        treasury=treasury,
    )
    for who in ("provider", "consumer", "node", "stranger"):
        with reverts("TrainingMarketNotGovernance"):
            mk.market.set_parameters(mk.roles[who], new)
    for bad in (
        replace(new, quorum_bps=10_001),
        replace(new, min_voting_period=11),
        replace(new, max_training_period=0),
        replace(new, min_batch_size=0),
        replace(new, min_selection_providers=0),
        replace(new, treasury="0x" + "00" * 20),
    ):
        with reverts("TrainingMarketInvalidParameters"):
            mk.market.set_parameters(mk.roles["governance"], bad)
    with pytest.raises(InvalidInputError, match="treasury"):
        mk.market.set_parameters(mk.roles["governance"], replace(new, treasury=""))
    mk.market.set_parameters(mk.roles["governance"], new)
    assert mk.market.parameters() == new
