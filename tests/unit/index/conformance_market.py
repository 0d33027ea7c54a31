"""The market half of the conformance suite: proposal documents, rounds that end without pay,
payouts per asset and what the index says each provider earns.

:class:`MarketConformance` is mixed into :class:`~.conformance.IndexConformance`, so every
backend runs it; it relies on that class's ``new_db`` and ``market`` fixtures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from eth_utils.crypto import keccak

from visdm.config import Settings
from visdm.errors import InvalidInputError
from visdm.index import Database, PayoutLine, earnings, earnings_index, payout_lines

from ._world import PROVIDER, PROVIDER2, REJECT, STRANGER, Image, World

NewDb = Callable[[], Database]


class MarketConformance:
    """Proposals, payouts and earnings on one backend."""

    def test_a_proposal_document_is_checked_and_a_missing_one_retried(self, new_db: NewDb) -> None:
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat", "dog"])
        w.attest(a1, [Image("cat"), Image("dog")])
        good = w.propose([(a1, (0, 1))])
        # signed by the consumer, but for another selection than the chain committed
        other = w.proposal_document(
            [(a1, (0,))], offer=1000, wtp_bps=8000, deadline=10_002, selection_root=bytes(32)
        )
        forged = w.propose([(a1, (0, 1))], document=other)
        lost = w.propose([(a1, (1,))], store_document=False)
        db = new_db()
        report = w.indexer(db).sync()
        assert report.documents == {"missing": 1, "rejected": 1}
        rows = {
            r[0]: (r[1], r[2])
            for r in db.query("SELECT proposal_id, document_status, document_detail FROM proposals")
        }
        assert rows[good] == ("indexed", "")
        assert rows[forged][0] == "rejected"
        assert "assetsHash (of its selection)" in rows[forged][1]
        assert rows[lost][0] == "missing"
        assert db.query("SELECT DISTINCT proposal_id FROM proposal_assets") == [(good,)]
        # the document turns up: the next sync checks it without a new event
        w.store.put(
            w.proposal_document(
                [(a1, (1,))],
                offer=1000,
                wtp_bps=8000,
                deadline=10_000 + lost,
                selection_root=keccak(text=f"selection {lost}"),
            )
        )
        retried = w.indexer(db).sync()
        assert (retried.events, retried.retried_documents) == (0, 1)
        assert db.query(
            "SELECT position, asset_id, sample_count FROM proposal_assets WHERE proposal_id = ?",
            (lost,),
        ) == [(0, a1, 1)]

    def test_abandoned_faulted_and_swept_rounds(self, new_db: NewDb) -> None:
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat"])
        w.attest(a1, [Image("cat")])
        abandoned = w.propose([(a1, (0,))])
        w.tally(abandoned)
        w.start(abandoned)
        w.abandon(abandoned, "out of memory three times")
        faulted = w.propose([(a1, (0,))])
        w.tally(faulted)
        w.start(faulted)
        w.result(faulted, None, accuracy=0, consumer_fault=True)
        swept = w.propose([(a1, (0,))])
        w.tally(swept)
        w.start(swept)
        w.result(swept, None, payouts={a1: 1000})
        w.sweep(swept, 1000)
        db = new_db()
        assert w.indexer(db).sync().documents == {"missing": 0, "rejected": 0}
        rows = db.query(
            "SELECT proposal_id, status, price, abandoned_reason, consumer_fault, swept, treasury "
            "FROM proposals ORDER BY proposal_id"
        )
        assert rows == [
            (abandoned, "cancelled", "0", "out of memory three times", None, None, None),
            (faulted, "wtp_missed", "0", None, 1, None, None),
            (swept, "completed", "1000", None, 0, "1000", STRANGER.address),
        ]
        assert db.query(
            "SELECT status, fault_reason FROM results WHERE proposal_id = ?", (faulted,)
        ) == [("indexed", "the validation set cannot be used")]
        seed = db.scalar("SELECT seed_hash FROM proposals WHERE proposal_id = ?", (swept,))
        assert seed == "0x" + keccak(text=f"seed {swept}").hex()
        (line,) = payout_lines(db)
        assert (line.proposal_id, line.asset_id, line.state) == (swept, a1, "swept")

    def test_earnings_follow_the_assets_owners_claims_and_the_round(
        self, new_db: NewDb, tmp_path: Path
    ) -> None:
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat", "dog"])
        a2 = w.register(PROVIDER2, ["cat"])
        a3 = w.register(PROVIDER, ["bird"])
        for asset, labels in ((a1, ["cat", "dog"]), (a2, ["cat"]), (a3, ["bird"])):
            w.attest(asset, [Image(label) for label in labels])
        p1 = w.propose([(a1, (0, 1)), (a2, (0,)), (a3, (0,))])
        w.vote(p1, PROVIDER2, REJECT)
        w.tally(p1, excluded=[1], remaining=3)  # provider2's REJECT takes asset 2 out
        w.start(p1)
        w.result(p1, None, payouts={a1: 600, a3: 400})
        w.claim(p1, a1)
        claimed_at = w.block
        p2 = w.propose([(a1, (0,))], store_document=False)  # its selection cannot be checked
        w.tally(p2, remaining=1)
        w.start(p2)
        w.result(p2, None, payouts={a1: 1000})
        db = new_db()
        w.indexer(db).sync()
        assert db.query("SELECT proposal_id, position FROM proposal_exclusions") == [(p1, 1)]
        assert payout_lines(db) == [
            PayoutLine(p1, 0, a1, PROVIDER.address, 600, "claimed", claimed_at),
            PayoutLine(p1, 2, a3, PROVIDER.address, 400, "unclaimed"),
            PayoutLine(p2, 0, a1, PROVIDER.address, 1000, "unverified"),
        ]
        (mine,) = earnings(db, provider=PROVIDER.address.lower())
        assert (mine.claimed, mine.unclaimed, mine.unverified, mine.swept) == (600, 400, 1000, 0)
        assert earnings(db, provider=PROVIDER2.address) == []
        # after the claim period the remainder goes to the treasury
        w.sweep(p1, 400)
        w.indexer(db).sync()
        (mine,) = earnings_index(
            Settings(home=tmp_path), provider=PROVIDER.address, proposal_id=p1, url=db.url.url
        )
        assert (mine.claimed, mine.unclaimed, mine.swept) == (600, 0, 400)
        assert [line.state for line in mine.lines] == ["claimed", "swept"]
        assert mine.to_dict()["sweptWei"] == "400"

    def test_a_court_holds_results_in_their_window_and_voids_an_overturned_one(
        self, new_db: NewDb
    ) -> None:
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat", "dog"])
        w.attest(a1, [Image("cat"), Image("dog")])
        w.emit("TrainingMarket", "ParametersChanged", parameters={"challengeWindow": 600})
        rounds = []
        for _ in range(3):
            pid = w.propose([(a1, (0, 1))])
            w.tally(pid, remaining=2)
            w.start(pid)
            w.result(pid, None, payouts={a1: 1000})
            rounds.append(pid)
        released, overturned, held = rounds
        w.emit("TrainingMarket", "ResultSettled", proposalId=released, overturned=False)
        w.emit("TrainingMarket", "ResultSettled", proposalId=overturned, overturned=True)
        db = new_db()
        w.indexer(db).sync()
        states = {line.proposal_id: line.state for line in payout_lines(db)}
        assert states == {released: "unclaimed", overturned: "overturned", held: "held"}
        statuses = dict(db.query("SELECT proposal_id, status FROM proposals"))
        assert statuses[overturned] == "cancelled" and statuses[held] == "completed"
        (mine,) = earnings(db, provider=PROVIDER.address)
        assert (mine.unclaimed, mine.held, mine.overturned) == (1000, 1000, 1000)
        assert mine.to_dict()["overturnedWei"] == "1000"
        # the window closed again: a later result is released as it is submitted
        w.emit("TrainingMarket", "ParametersChanged", parameters={"challengeWindow": 0})
        later = w.propose([(a1, (0, 1))])
        w.tally(later, remaining=2)
        w.start(later)
        w.result(later, None, payouts={a1: 1000})
        w.indexer(db).sync()
        assert {line.proposal_id: line.state for line in payout_lines(db)}[later] == "unclaimed"

    @pytest.mark.attack
    def test_a_node_cannot_make_the_index_report_pay_for_unselected_or_rejected_assets(
        self, new_db: NewDb
    ) -> None:
        """A node commits leaves paying an accomplice's asset that the consumer never selected
        and an asset whose owner rejected the round. The leaves are in the committed tree (a
        reader summing payout rows per owner credits both), but the market refuses their
        claims, and so the index reports them as unpayable rather than as earnings."""
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat"])
        a2 = w.register(PROVIDER2, ["dog"])
        friend = w.register(STRANGER, ["cat"])
        for asset in (a1, a2, friend):
            w.attest(asset, [Image("cat")])
        pid = w.propose([(a1, (0,)), (a2, (0,))])
        w.vote(pid, PROVIDER2, REJECT)
        w.tally(pid, excluded=[1], remaining=1)
        w.start(pid)
        w.result(pid, None, payouts={a1: 500, a2: 300, friend: 200})
        db = new_db()
        w.indexer(db).sync()
        # without the checks: what the committed leaves alone would credit
        naive = {
            str(owner): int(amount)
            for owner, amount in db.query("SELECT owner, amount FROM payouts")
        }
        assert naive == {PROVIDER.address: 500, PROVIDER2.address: 300, STRANGER.address: 200}
        # with them: only the selected asset that stayed in the round can be paid
        states = {line.asset_id: line.state for line in payout_lines(db, proposal_id=pid)}
        assert states == {a1: "unclaimed", a2: "left_round", friend: "not_selected"}
        totals = {e.provider: (e.unclaimed, e.unpayable) for e in earnings(db)}
        assert totals == {
            PROVIDER.address: (500, 0),
            PROVIDER2.address: (0, 300),
            STRANGER.address: (0, 200),
        }

    def test_earnings_refuse_bad_input(self, market: Database, tmp_path: Path) -> None:
        settings = Settings(home=tmp_path)
        url = market.url.url
        with pytest.raises(InvalidInputError, match="provider 'alice' is not an Ethereum address"):
            earnings_index(settings, provider="alice", url=url)
        for bad in (0, -3, True):
            with pytest.raises(InvalidInputError, match="proposal id must be a whole number"):
                earnings_index(settings, proposal_id=bad, url=url)
        with pytest.raises(InvalidInputError, match="is not an Ethereum address"):
            earnings(market, provider="0x1234")
        everyone = earnings_index(settings, url=url)
        assert [(e.provider, e.claimed, e.unclaimed) for e in everyone] == sorted(
            [(PROVIDER.address, 600, 1000), (PROVIDER2.address, 0, 400)],
            key=lambda r: bytes.fromhex(r[0][2:]),
        )
