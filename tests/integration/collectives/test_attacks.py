"""What a hostile member, steward or outsider could try against a collective, performed against
the real contracts: each attempt fails, and where a defence can be switched off (a collective
without a policy delay) the same attack is shown to work without it."""

from __future__ import annotations

import pytest

from tests.integration.collectives.conftest import (
    cast,
    new_collective,
    new_member,
    reverts,
    settle,
)
from tests.integration.collectives.test_fees import Round
from tests.integration.market.conftest import Market
from visdm import collectives
from visdm.chain.contracts import ProposalStatus
from visdm.collectives import Collective
from visdm.errors import InvalidInputError

pytestmark = [pytest.mark.integration, pytest.mark.attack]

HOUR = 3600


def _flash_join(mk: Market, c: Collective) -> tuple[ProposalStatus, int]:
    """Three honest members vote 10 wei per sample; a proposal offers exactly that. A large
    provider joins with a floor of 1,000, settles and casts at once, then leaves; the tally
    follows whatever the collective cast."""
    honest = [new_member(mk, c, samples=100, floor=10) for _ in range(3)]
    mk.advance(c.policy_delay())
    settle(mk, c)
    selection = [(asset, 100) for _, asset in honest]
    pid = mk.propose(selection, offer=10 * 300)
    whale, _ = new_member(mk, c, samples=1000, floor=1000)
    settle(mk, c)  # counts only votes whose delay has passed
    ask = cast(mk, c, pid).ask_wei
    collectives.leave(mk.chain, mk.deployment, whale, c.address)
    mk.advance(HOUR + 1)
    return mk.tally(pid, selection).outcome.status, ask


def test_flash_joining_to_swing_the_median_fails(mk: Market) -> None:
    c = new_collective(mk, delay=HOUR)
    status, ask = _flash_join(mk, c)
    assert (status, ask) == (ProposalStatus.APPROVED, 0)  # the honest floor decided


def test_flash_joining_swings_a_collective_without_a_policy_delay(mk: Market) -> None:
    c = new_collective(mk, delay=0)  # the defence switched off
    status, ask = _flash_join(mk, c)
    assert (status, ask) == (ProposalStatus.COUNTERED, 1000 * 300)


def test_settling_a_fresh_vote_early_is_refused_and_refresh_cannot_reset_a_clock(
    mk: Market,
) -> None:
    c = new_collective(mk, delay=HOUR)
    ada, asset = new_member(mk, c, floor=10)
    stranger = mk.roles["stranger"]
    with reverts("CollectivePolicyPending"):
        c.settle(stranger, [ada.address])
    since = c.member(ada.address).pending_since
    mk.advance(HOUR // 2)
    c.refresh(stranger, ada.address, [asset])  # an outsider pokes the member
    assert c.member(ada.address).pending_since == since
    mk.advance(HOUR // 2)
    c.settle(stranger, [ada.address])
    assert c.policy().floor == 10


def test_one_sample_cannot_vote_twice(mk: Market) -> None:
    """Not by listing an asset twice, not from a second account, not in two collectives at
    once, and not directly and through the collective in the same tally."""
    c1, c2 = new_collective(mk), new_collective(mk)
    ada, asset = new_member(mk, c1, samples=100, floor=10)
    with reverts("CollectiveAssetsNotIncreasing"):
        c1.set_assets(ada, [asset, asset])
    sybil = mk.new_provider()
    mk.delegations.delegate(sybil, c1.address)
    with reverts("CollectiveNotAssetOwner"):
        c1.join(sybil, [asset], 1000)
    # joining a second collective moves the market delegation; the first one expels her
    collectives.join(mk.chain, mk.deployment, ada, c2.address, floor=99)
    assert mk.delegations.delegate_of(ada.address) == c2.address
    assert settle(mk, c1).refreshed == (ada.address,)
    assert (c1.policy().weight, c2.policy().weight) == (0, 100)
    # a direct vote and the collective's never both count for the same asset
    bob, other = new_member(mk, c2, samples=100, floor=99)
    selection = [(asset, 100), (other, 100)]
    pid = mk.propose(selection, offer=1)
    cast(mk, c2, pid)
    mk.market.vote(ada, pid, 0)
    with reverts("CollectiveAlreadyVoted"):
        c2.cast_vote(mk.roles["stranger"], pid)
    mk.advance(HOUR + 1)
    outcome = mk.tally(pid, selection).outcome
    assert outcome.participating_weight == 200  # each asset once
    del bob


def _raise_fee_before_the_deadline(mk: Market, c: Collective) -> int:
    """The steward raises the fee to the cap just before a round's deadline; returns the fee
    charged on a member's payout of 10,000."""
    ada, a = new_member(mk, c, floor=1, deposit=10_000)
    bob, b = new_member(mk, c, floor=1, deposit=10_000)
    mk.advance(c.policy_delay())
    settle(mk, c)

    class StewardStrikes(Round):
        def before_tally(self, mk: Market) -> None:
            c.set_fee(mk.roles["deployer"], collectives.MAX_FEE_BPS)

    r = StewardStrikes(mk, c, [ada, bob], [a, b], [10_000, 10_000])
    report = collectives.charge_fees(
        mk.chain, mk.deployment, mk.roles["stranger"], c.address, proposal_id=r.pid, tree=r.tree
    )
    return report.rows[0].fee_wei


def test_a_steward_cannot_raise_the_fee_above_the_cap_or_without_notice(mk: Market) -> None:
    # notice longer than the hour of voting: members could still leave before a raise applies
    c = new_collective(mk, fee_bps=100, delay=2 * HOUR)
    with reverts("CollectiveFeeAboveCap"):
        c.set_fee(mk.roles["deployer"], collectives.MAX_FEE_BPS + 1)
    assert _raise_fee_before_the_deadline(mk, c) == 100  # 1 %: the fee at the deadline


def test_without_notice_a_raised_fee_hits_the_round_at_once(mk: Market) -> None:
    c = new_collective(mk, fee_bps=100, delay=0)  # the defence switched off
    assert _raise_fee_before_the_deadline(mk, c) == 1000  # 10 %, the cap still holds


def test_leaving_after_the_deadline_does_not_dodge_the_fee(mk: Market) -> None:
    c = new_collective(mk, fee_bps=500)
    ada, a = new_member(mk, c, floor=1, deposit=1000)
    bob, b = new_member(mk, c, floor=1, deposit=1000)

    class AdaLeaves(Round):
        def before_tally(self, mk: Market) -> None:
            mk.advance(HOUR + 1)  # past the deadline: the collective spoke for her
            collectives.leave(mk.chain, mk.deployment, ada, c.address)

    r = AdaLeaves(mk, c, [ada, bob], [a, b], [2000, 2000])
    with pytest.raises(InvalidInputError, match="may join again from"):
        collectives.join(mk.chain, mk.deployment, ada, c.address, floor=1)  # no fresh start
    report = collectives.charge_fees(
        mk.chain, mk.deployment, mk.roles["stranger"], c.address, proposal_id=r.pid, tree=r.tree
    )
    assert [(row.asset_id, row.fee_wei, row.status) for row in report.rows] == [
        (a, 100, "charged"),
        (b, 100, "charged"),
    ]
    assert c.member(ada.address).deposit == 900


def test_a_look_alike_collective_is_refused(mk: Market) -> None:
    """A Collective deployed outside the factory (its steward could be anyone, its code could
    be anything) is not accepted by the SDK, and the factory says it is not one of its own."""
    address, _ = mk.chain.deploy(
        mk.roles["stranger"],
        "Collective",
        mk.market.address,
        "potters",
        mk.roles["stranger"].address,
        0,
        0,
    )
    assert not collectives.factory(mk.chain, mk.deployment).is_collective(address)
    with pytest.raises(InvalidInputError, match="not a collective of this marketplace"):
        collectives.resolve(mk.chain, mk.deployment, address)
