"""The book-keeping checker on the real contracts: proposals that end every way the market
allows (completed and claimed, then swept; countered, topped up and missed; countered and
reclaimed; failed; abandoned; still voting) balance to the token, with a scoring fee taken
and a node bond in the court — and a proposal left past its deadline, or one token sent to
the market around its books, makes the checker fail by name."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.market.conftest import Market
from visdm import scoring
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.market.books import BooksError, BooksReport, check_books

pytestmark = pytest.mark.integration

S = ProposalStatus


@pytest.fixture
def mk(chain: ChainClient, deployment: Deployment, funded_roles: dict[str, LocalAccount]) -> Market:
    return Market(chain, deployment, dict(funded_roles))


def books(mk: Market) -> BooksReport:
    court = mk.deployment.result_court(mk.chain)
    return check_books(mk.market, mk.token, court=court)


def test_every_ending_balances_and_a_doctored_ledger_fails(mk: Market) -> None:
    provider, provider2 = mk.roles["provider"], mk.roles["provider2"]
    consumer, node, governance = mk.roles["consumer"], mk.roles["node"], mk.roles["governance"]
    a, b = mk.add_asset(provider, 100), mk.add_asset(provider2, 100)
    sel, ids = [(a, 60), (b, 40)], [a, b]
    pool = mk.deployment.address_of("ScoringPool")
    scoring.fee_contract(mk.chain, mk.deployment).set_scoring_fee(governance, pool, 500)
    court = mk.deployment.result_court(mk.chain)
    mk.token.faucet(node, 10**18)
    mk.token.approve(node, court.address, 10**18)
    court.deposit(node, 10**18)

    completed = mk.approved(sel, offer=1000)
    tree = mk.payout(completed, {a: 570, b: 380}, ids)  # price − 5 % fee
    mk.market.claim(provider, mk.claim(completed, tree, a, ids))
    mk.market.withdraw(provider)

    def countered() -> int:
        pid = mk.propose(sel, offer=1000)
        mk.market.vote(provider, pid, 1500)
        mk.market.vote(provider2, pid, 1500)
        mk.advance(3601)
        mk.tally(pid, sel)
        return pid

    missed = countered()
    mk.market.accept_counter(consumer, missed)
    mk.start(missed, cost=70)
    mk.submit(missed, accuracy_bps=100)
    lapsed = countered()
    failed = mk.propose(sel, offer=300)  # nobody votes: no quorum
    mk.advance(3601)
    mk.tally(failed, sel)
    abandoned = mk.approved(sel, offer=200)
    mk.start(abandoned, cost=30)
    mk.market.abandon_training(node, abandoned, "the sandbox keeps crashing")
    mk.market.withdraw(consumer)

    mk.advance(mk.market.parameters().claim_period + 1)
    mk.market.reclaim(consumer, lapsed)
    mk.market.sweep_unclaimed(mk.roles["stranger"], completed)
    voting = mk.propose(sel, offer=400)

    report = books(mk)
    status = {p.proposal_id: p.status for p in report.proposals}
    assert [status[p] for p in (completed, missed, lapsed, failed, abandoned, voting)] == [
        S.COMPLETED,
        S.WTP_MISSED,
        S.CANCELLED,
        S.FAILED,
        S.CANCELLED,
        S.VOTING,
    ]
    assert report.pending == 1  # the open vote, its deadline ahead
    assert report.market_balance == mk.escrow_balance() == report.held + report.credits
    assert report.escrowed == 1000 + 70 + 1500 + 1000 + 300 + 230 + 400 + 50
    assert report.paid == 570 + 380 + 50 + 50 + 70  # claim, sweep, fee, node fees
    assert report.escrowed == report.paid + report.refunded + report.held

    mk.advance(3601)  # nobody tallies the last proposal
    with pytest.raises(BooksError, match=f"proposal {voting} is stuck in VOTING"):
        books(mk)
    mk.tally(voting, sel)
    books(mk)

    mk.token.transfer(consumer, mk.market.address, 1)  # around the books
    with pytest.raises(BooksError, match=r"holds more than it owes.*difference 1"):
        books(mk)
