"""The policy (weighted median of floor votes) and the collective's vote in real tallies."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.collectives.conftest import cast, new_collective, new_member, reverts, settle
from tests.integration.market.conftest import Market
from visdm import collectives
from visdm.chain.contracts import REJECT_ASK, ProposalStatus
from visdm.collectives import Collective, policy_ask, weighted_lower_median
from visdm.errors import InvalidInputError

pytestmark = pytest.mark.integration


def _model(c: Collective, members: list[LocalAccount]) -> tuple[int | None, list[tuple[int, int]]]:
    """The policy the counted votes imply, in plain Python."""
    levels: dict[int, int] = defaultdict(int)
    for account in members:
        record = c.member(account.address)
        if record.is_member and record.weight and record.floor is not None:
            levels[record.floor] += record.weight
    return weighted_lower_median(levels.items()), sorted(levels.items())


def test_the_policy_is_the_weighted_lower_median_after_every_change(mk: Market) -> None:
    """Joins, floor changes, smaller asset lists and departures in a seeded random order: after
    each, the contract's incrementally kept median equals the median computed from scratch."""
    rng = random.Random(7)
    c = new_collective(mk)
    members: list[LocalAccount] = []
    assets: dict[str, list[int]] = {}
    for step in range(14):
        current = [m for m in members if c.is_member(m.address)]
        op = (
            "join"
            if len(current) < 3
            else rng.choice(["join", "floor", "floor", "shrink", "leave"])
        )
        if op == "join":
            account, first = new_member(
                mk, c, samples=rng.randint(1, 60), floor=rng.choice([0, 5, 10, 10, 20, 40])
            )
            assets[account.address] = [first, mk.add_asset(account, rng.randint(1, 60))]
            collectives.set_assets(mk.chain, mk.deployment, account, c.address)
            members.append(account)
        elif op == "floor":
            account = rng.choice(current)
            c.vote_floor(account, rng.choice([0, 5, 10, 15, 20, 40]))
        elif op == "shrink":
            account = rng.choice(current)
            c.set_assets(account, assets[account.address][:1])
        else:
            c.leave(rng.choice(current))
        floor, levels = _model(c, members)
        policy = c.policy()
        assert (policy.floor, list(policy.levels)) == (floor, levels), f"step {step}: {op}"
        assert policy.weight == sum(w for _, w in levels)


def test_anyone_casts_the_policy_vote_accept_or_ask(mk: Market) -> None:
    c = new_collective(mk)
    ada, a = new_member(mk, c, samples=100, floor=10)
    bob, b = new_member(mk, c, samples=100, floor=30)
    carl, d = new_member(mk, c, samples=50, floor=50)
    assert c.policy().floor == 30  # 100 of 250 at 10, 200 of 250 at or below 30
    selection = [(a, 100), (b, 100), (d, 50)]
    # 250 samples at 30 wei each: an offer of 7,500 meets the floor, 7,499 does not
    rich = mk.propose(selection, offer=7500)
    poor = mk.propose(selection, offer=7499)
    receipt = cast(mk, c, rich)
    assert (receipt.accepted, receipt.ask_wei, receipt.floor_wei) == (True, 0, 30)
    assert mk.market.vote_of(rich, c.address) == 0
    receipt = cast(mk, c, poor)
    assert (receipt.accepted, receipt.ask_wei) == (False, 7500)
    assert receipt.ask_wei == policy_ask(offer=7499, total_weight=250, floor=30)
    assert mk.market.vote_of(poor, c.address) == 7500
    # casting again with nothing changed sends nothing (the SDK) or is refused (the contract)
    assert cast(mk, c, poor).transactions == ()
    with reverts("CollectiveAlreadyVoted"):
        c.cast_vote(mk.roles["stranger"], poor)
    # the policy moves: anyone may recast, and the new answer replaces the old one
    c.vote_floor(bob, 10)
    receipt = cast(mk, c, poor)
    assert receipt.accepted and mk.market.vote_of(poor, c.address) == 0
    mk.advance(3601)
    for pid in (rich, poor):
        outcome = mk.tally(pid, selection).outcome
        assert outcome.status == ProposalStatus.APPROVED
        assert outcome.participating_weight == 250
    del ada, carl


def test_casting_refuses_closed_unknown_and_policyless(mk: Market) -> None:
    c = new_collective(mk, delay=3600)
    ada, a = new_member(mk, c, samples=100, floor=10)
    pid = mk.propose([(a, 100)], offer=100)
    stranger = mk.roles["stranger"]
    with pytest.raises(InvalidInputError, match="has no policy yet"):
        cast(mk, c, pid)
    with reverts("CollectiveNoPolicy"):
        c.cast_vote(stranger, pid)
    with pytest.raises(InvalidInputError, match="does not exist"):
        cast(mk, c, 999)
    with reverts("CollectiveUnknownProposal"):
        c.cast_vote(stranger, 999)
    mk.advance(3601)
    with pytest.raises(InvalidInputError, match="no longer in voting"):
        cast(mk, c, pid)
    with reverts("CollectiveVotingClosed"):
        c.cast_vote(stranger, pid)
    del ada


def test_leaving_mid_vote_counts_as_of_the_deadline(mk: Market) -> None:
    """Like any delegation, membership speaks through the market's delegation checkpoints: a
    member who leaves before the deadline abstains; one who leaves after it is still counted."""
    c = new_collective(mk)
    ada, a = new_member(mk, c, samples=100, floor=40)
    bob, b = new_member(mk, c, samples=100, floor=40)
    early, e = new_member(mk, c, samples=100, floor=40)
    late, lt = new_member(mk, c, samples=100, floor=40)
    selection = [(a, 100), (b, 100), (e, 100), (lt, 100)]
    pid = mk.propose(selection, offer=1000)  # 2.5 wei per sample, the floor is 40
    assert cast(mk, c, pid).ask_wei == 40 * 400
    collectives.leave(mk.chain, mk.deployment, early, c.address)
    mk.advance(3601)
    collectives.leave(mk.chain, mk.deployment, late, c.address)
    outcome = mk.tally(pid, selection).outcome
    assert outcome.status == ProposalStatus.COUNTERED
    assert outcome.clearing_price == 16_000
    # ada, bob and late (delegating at the deadline) follow the collective; early abstains
    assert (outcome.participating_weight, outcome.remaining_weight) == (300, 400)
    del ada, bob


def test_a_members_own_reject_overrides_the_collective_for_its_assets(mk: Market) -> None:
    c = new_collective(mk)
    ada, a = new_member(mk, c, samples=100, floor=1)
    bob, b = new_member(mk, c, samples=100, floor=1)
    carl, d = new_member(mk, c, samples=100, floor=1)
    selection = [(a, 100), (b, 100), (d, 100)]
    pid = mk.propose(selection, offer=1000)
    assert cast(mk, c, pid).accepted
    mk.market.vote(bob, pid, REJECT_ASK)  # bob's own vote, after the collective's
    mk.advance(3601)
    outcome = mk.tally(pid, selection).outcome
    assert outcome.status == ProposalStatus.APPROVED
    assert (outcome.participating_weight, outcome.remaining_weight) == (200, 200)
    assert mk.market.excluded_positions(pid, 3) == {1}  # bob's asset left the round
    del ada, carl


def test_settling_reads_the_member_events_once_whatever_the_members(
    mk: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Casting settles the collective first; its event reads must not grow with the members
    (two per member before: a 1,000-member collective made 2,000 log queries per cast)."""
    reads: list[str] = []
    logs = Collective.logs

    def counting(self, event, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(event)
        return logs(self, event, *args, **kwargs)

    monkeypatch.setattr(Collective, "logs", counting)
    c = new_collective(mk)
    counts = []
    for size in (2, 5):
        while len([m for m in collectives.members(c) if m.is_member]) < size:
            new_member(mk, c, samples=20, floor=10)
        reads.clear()
        receipt = settle(mk, c)
        counts.append(len(reads))
        assert receipt.refreshed == ()
    assert counts[0] == counts[1] <= 3, counts
