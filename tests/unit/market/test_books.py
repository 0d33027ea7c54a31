"""The book-keeping checker on hand-made ledgers: balanced books pass, and each doctored entry
is caught by name — the checker must be able to fail."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from visdm.chain.contracts import ProposalRecord, ProposalStatus
from visdm.errors import VisdmError
from visdm.index import open_database, parse_index_url
from visdm.index._schema import create_schema
from visdm.market.books import (
    BooksError,
    CourtLedger,
    Ledger,
    ProposalFlows,
    audit,
    index_differences,
)
from visdm.types import Address

pytestmark = pytest.mark.unit

S = ProposalStatus
NOW = 10_000
CONSUMER = Address("0x" + "c" * 40)
NODE = Address("0x" + "d" * 40)
OWNER = Address("0x" + "a" * 40)
POOL = Address("0x" + "e" * 40)
ZERO = b"\0" * 32


def record(pid: int, status: ProposalStatus, **fields: int) -> ProposalRecord:
    base: dict[str, object] = {
        "proposal_id": pid,
        "consumer": CONSUMER,
        "voting_deadline": NOW - 100,
        "wtp_bps": 8000,
        "status": status,
        "min_share_bps": 0,
        "node": NODE,
        "deadline": 0,
        "asset_count": 2,
        "total_weight": 10,
        "remaining_weight": 10,
        "claim_deadline": 0,
        "accuracy_bps": 0,
        "tallier": None,
        "offer": 1000,
        "price": 1000,
        "clearing_price": 0,
        "training_cost": 0,
        "unclaimed": 0,
        "assets_hash": ZERO,
        "selection_root": ZERO,
        "model_spec_hash": ZERO,
        "validation_set_hash": ZERO,
        "payout_root": ZERO,
        "model_hash": ZERO,
        "seed_hash": ZERO,
    }
    base.update(fields)
    return ProposalRecord(**base)  # type: ignore[arg-type]


def balanced() -> Ledger:
    """Four proposals: completed (one of two leaves claimed, 100 scoring fee), failed and
    refunded, in training with its deadline ahead, countered after a top-up... reclaimed."""
    proposals = [
        record(1, S.COMPLETED, unclaimed=300, claim_deadline=NOW + 500),
        record(2, S.FAILED, price=0),
        record(3, S.TRAINING, deadline=NOW + 60, training_cost=50),
        record(4, S.CANCELLED, price=0, offer=400),
    ]
    flows = {
        1: ProposalFlows(
            offer=1000,
            training_cost=50,
            credited=150,
            credited_node=50,
            scoring_fee=100,
            claimed=600,
            claims=((0, 600),),
        ),
        2: ProposalFlows(offer=1000, credited=1000, credited_consumer=1000),
        3: ProposalFlows(offer=1000, training_cost=50),
        4: ProposalFlows(offer=400, top_up=200, training_cost=30, reclaimed=630),
    }
    accounts = {
        CONSUMER: (400, 1000, 0, 600),  # withdrew part of the refund
        NODE: (50, 50, 0, 0),
        POOL: (100, 100, 0, 0),
        OWNER: (0, 0, 600, 600),
    }
    held = 300 + 1050  # proposal 1's unclaimed, proposal 3's price and training cost
    return Ledger(
        block=42,
        now=NOW,
        market_balance=held + 400 + 50 + 100,
        proposals=proposals,
        flows=flows,
        accounts=accounts,
        court=CourtLedger(balance=900, stakes={NODE: (600, 100), OWNER: (300, 0)}),
    )


def test_balanced_books_pass_with_their_totals() -> None:
    report = audit(balanced())
    assert report.violations == ()
    assert report.balanced
    assert (report.escrowed, report.held, report.claimable, report.credits) == (
        1050 + 1000 + 1050 + 630,
        1350,
        300,
        550,
    )
    assert report.paid == 600 + 50 + 100
    assert report.refunded == 1000 + 630
    assert report.pending == 2  # training, and completed with claims still open
    assert report.escrowed == report.paid + report.refunded + report.held
    report.raise_if_unbalanced()


def _one(ledger: Ledger) -> str:
    report = audit(ledger)
    assert not report.balanced
    with pytest.raises(BooksError) as caught:
        report.raise_if_unbalanced()
    assert isinstance(caught.value, VisdmError)
    assert report.violations[0] in str(caught.value)
    return report.violations[0]


def test_a_token_sent_around_the_books_is_unaccounted() -> None:
    ledger = dataclasses.replace(balanced(), market_balance=balanced().market_balance + 1)
    assert "holds more than it owes" in _one(ledger)
    short = dataclasses.replace(balanced(), market_balance=balanced().market_balance - 7)
    assert "owes more than it holds" in _one(short)


def test_a_double_paid_claim_is_caught() -> None:
    ledger = balanced()
    flows = dict(ledger.flows)
    flows[1] = dataclasses.replace(flows[1], claimed=900, claims=((0, 600), (0, 300)), credited=150)
    proposals = list(ledger.proposals)
    proposals[0] = record(1, S.COMPLETED, unclaimed=0, claim_deadline=NOW + 500)
    accounts = dict(ledger.accounts)
    accounts[OWNER] = (300, 0, 900, 600)
    doctored = dataclasses.replace(
        ledger,
        flows=flows,
        proposals=proposals,
        accounts=accounts,
        market_balance=ledger.market_balance,
    )
    violations = audit(doctored).violations
    assert any("paid selection position 0 more than once" in v for v in violations)


def test_an_escrow_that_leaks_names_its_proposal() -> None:
    ledger = balanced()
    proposals = list(ledger.proposals)
    proposals[2] = record(3, S.TRAINING, deadline=NOW + 60, training_cost=40)
    message = _one(dataclasses.replace(ledger, proposals=proposals))
    assert message.startswith("proposal 3 (TRAINING) escrowed 1050")


def test_a_credit_without_its_events_names_the_account() -> None:
    ledger = balanced()
    accounts = dict(ledger.accounts)
    accounts[NODE] = (51, 50, 0, 0)
    violations = audit(dataclasses.replace(ledger, accounts=accounts)).violations
    assert violations[0].startswith(f"account {NODE} holds a credit of 51")


def test_a_passed_deadline_is_a_stuck_proposal() -> None:
    ledger = balanced()
    proposals = list(ledger.proposals)
    proposals[2] = record(3, S.TRAINING, deadline=NOW - 1, training_cost=50)
    assert "proposal 3 is stuck in TRAINING" in _one(
        dataclasses.replace(ledger, proposals=proposals)
    )
    proposals[2] = record(3, S.VOTING, voting_deadline=NOW - 1)
    flows = dict(ledger.flows)
    flows[3] = ProposalFlows(offer=1000)
    stuck = dataclasses.replace(
        ledger, proposals=proposals, flows=flows, market_balance=ledger.market_balance - 50
    )
    assert "proposal 3 is stuck in VOTING" in _one(stuck)


def test_claims_on_a_proposal_that_did_not_complete_are_caught() -> None:
    ledger = balanced()
    proposals = list(ledger.proposals)
    proposals[0] = record(1, S.COMPLETED, unclaimed=200, claim_deadline=NOW + 500)
    violations = audit(dataclasses.replace(ledger, proposals=proposals)).violations
    assert any("price 1000 − scoring fee 100" in v for v in violations)


def test_the_court_must_hold_exactly_its_stakes() -> None:
    ledger = balanced()
    court = CourtLedger(balance=899, stakes={NODE: (600, 100), OWNER: (300, 0)})
    assert "court's token balance 899" in _one(dataclasses.replace(ledger, court=court))
    over = CourtLedger(balance=900, stakes={NODE: (600, 700), OWNER: (300, 0)})
    assert "has 700 locked but only 600 staked" in _one(dataclasses.replace(ledger, court=over))


def test_events_of_an_uncounted_proposal_are_caught() -> None:
    ledger = balanced()
    flows = dict(ledger.flows)
    flows[9] = ProposalFlows(offer=5)
    assert "proposal 9" in _one(dataclasses.replace(ledger, flows=flows))


def test_index_differences_name_the_table_and_the_side(tmp_path: Path) -> None:
    dbs = []
    for name in ("synced", "fresh"):
        db = open_database(parse_index_url(f"sqlite:///{tmp_path / name}.sqlite3"))
        with db.transaction():
            create_schema(db)
        dbs.append(db)
    synced, fresh = dbs
    assert index_differences(synced, fresh) == []
    row = (1, 0, "0xab", "0xcd", "VoteCast", "{}")
    with synced.transaction():
        synced.execute("INSERT INTO chain_events VALUES (?, ?, ?, ?, ?, ?)", row)
    differences = index_differences(synced, fresh)
    assert len(differences) == 1
    assert differences[0].startswith("table chain_events: row (1, 0, '0xab'")
    assert "only in the incrementally synced index" in differences[0]
    for db in dbs:
        db.close()
