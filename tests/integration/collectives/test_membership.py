"""Joining and leaving a collective, members' weight, and every input a member can send."""

from __future__ import annotations

import pytest

from tests.integration.collectives.conftest import new_collective, new_member, reverts, settle
from tests.integration.market.conftest import Market
from visdm import collectives
from visdm.chain.contracts import AssetStatus
from visdm.errors import InvalidInputError

pytestmark = pytest.mark.integration


def test_join_delegates_and_counts_attested_samples_after_the_delay(mk: Market) -> None:
    c = new_collective(mk, delay=3600)
    ada = mk.new_provider()
    big = mk.add_asset(ada, 300, accepted=250)
    small = mk.add_asset(ada, 40)
    mk.add_asset(ada, 70, attest=False)  # pending: no weight
    receipt = collectives.join(mk.chain, mk.deployment, ada, c.name(), floor=5)
    assert receipt.weight == 290 and receipt.floor_wei == 5
    assert mk.delegations.delegate_of(ada.address) == c.address
    record = c.member(ada.address)
    assert record.is_member and record.weight == 0  # nothing counts before the delay
    assert (record.pending_weight, record.pending_floor) == (290, 5)
    assert collectives.listed_assets(c, ada.address) == (big, small)
    assert c.policy().floor is None and c.member_count() == 1
    with reverts("CollectivePolicyPending"):
        c.settle(mk.roles["stranger"], [ada.address])
    assert settle(mk, c).settled == ()  # the SDK sends nothing before the delay
    mk.advance(3600)
    assert settle(mk, c).settled == (ada.address,)
    policy = c.policy()
    assert (policy.floor, policy.weight, policy.levels) == (5, 290, ((5, 290),))
    with reverts("CollectiveNothingPending"):
        c.settle(mk.roles["stranger"], [ada.address])


def test_join_refuses_what_the_contract_would_refuse(mk: Market) -> None:
    c = new_collective(mk)
    ada = mk.new_provider()
    other = mk.new_provider()
    mine = mk.add_asset(ada, 10)
    theirs = mk.add_asset(other, 10)
    pending = mk.add_asset(ada, 10, attest=False)
    chain, dep = mk.chain, mk.deployment

    def join(**kw: object) -> None:
        collectives.join(chain, dep, ada, c.address, **{"floor": 1, **kw})  # type: ignore[arg-type]

    with pytest.raises(InvalidInputError, match=f"asset {theirs} is not yours"):
        join(asset_ids=[mine, theirs])
    with pytest.raises(InvalidInputError, match="has no attested samples"):
        join(asset_ids=[pending])
    with pytest.raises(InvalidInputError, match="outside 0"):
        join(floor=collectives.MAX_FLOOR + 1)
    with pytest.raises(InvalidInputError, match="at most 256"):
        join(asset_ids=list(range(1, 258)))
    with pytest.raises(InvalidInputError, match="no collective is named 'nobody'"):
        collectives.join(chain, dep, ada, "nobody", floor=1)
    with pytest.raises(InvalidInputError, match="not a collective of this marketplace"):
        collectives.join(chain, dep, ada, mk.market.address, floor=1)
    with pytest.raises(InvalidInputError, match="owns no Active asset"):
        collectives.join(chain, dep, mk.new_provider(), c.address, floor=1)
    # nothing was sent: the delegation is untouched
    assert mk.delegations.delegate_of(ada.address) is None
    join(asset_ids=[mine])
    with pytest.raises(InvalidInputError, match="already a member"):
        join()


def test_the_contract_itself_refuses_bad_joins(mk: Market) -> None:
    c = new_collective(mk)
    ada, other = mk.new_provider(), mk.new_provider()
    a1, a2 = mk.add_asset(ada, 10), mk.add_asset(ada, 10)
    theirs = mk.add_asset(other, 10)
    pending = mk.add_asset(ada, 10, attest=False)
    with reverts("CollectiveNotDelegating"):
        c.join(ada, [a1], 1)
    mk.delegations.delegate(ada, c.address)
    with reverts("CollectiveAssetsNotIncreasing"):
        c.join(ada, [a2, a1], 1)
    with reverts("CollectiveAssetsNotIncreasing"):
        c.join(ada, [a1, a1], 1)
    with reverts("CollectiveNotAssetOwner"):
        c.join(ada, [a1, theirs], 1)
    with reverts("CollectiveNoWeight"):
        c.join(ada, [pending], 1)
    with reverts("CollectiveNoWeight"):
        c.join(ada, [], 1)
    with reverts("CollectiveTooManyAssets"):
        c.join(ada, list(range(1, 258)), 1)
    with reverts("CollectiveInvalidFloor"):
        c.join(ada, [a1], collectives.MAX_FLOOR + 1)
    c.join(ada, [a1, a2], collectives.MAX_FLOOR)
    with reverts("CollectiveAlreadyMember"):
        c.join(ada, [a1], 1)


def test_leave_stops_counting_at_once_and_locks_the_deposit(mk: Market) -> None:
    c = new_collective(mk)
    ada, _ = new_member(mk, c, samples=100, floor=10, deposit=500)
    bob, _ = new_member(mk, c, samples=50, floor=30)
    assert (c.policy().floor, c.policy().weight) == (10, 150)
    receipt = collectives.leave(mk.chain, mk.deployment, ada, c.address)
    assert len(receipt.transactions) == 2  # leave, then undelegate
    assert mk.delegations.delegate_of(ada.address) is None
    assert (c.policy().floor, c.policy().weight) == (30, 50)
    record = c.member(ada.address)
    assert not record.is_member and record.deposit == 500
    params = mk.market.parameters()
    lock = params.reply_period + params.start_period + params.max_training_period + 7 * 86400
    assert record.unlock_at == record.left_at + lock
    with pytest.raises(InvalidInputError, match="locked until"):
        collectives.withdraw(mk.chain, mk.deployment, ada, c.address)
    with reverts("CollectiveExitLocked"):
        c.withdraw_deposit(ada)
    with pytest.raises(InvalidInputError, match="may join again from"):
        collectives.join(mk.chain, mk.deployment, ada, c.address, floor=1)
    with pytest.raises(InvalidInputError, match="neither a member of nor delegating"):
        collectives.leave(mk.chain, mk.deployment, ada, c.address)
    with reverts("CollectiveNotMember"):
        c.leave(ada)
    mk.advance(lock)
    before = mk.token.balance_of(ada.address)
    done = collectives.withdraw(mk.chain, mk.deployment, ada, c.address)
    assert done.deposit_wei == 500 and mk.token.balance_of(ada.address) == before + 500
    with reverts("CollectiveNothingToWithdraw"):
        c.withdraw_deposit(ada)
    # after the lock a former member may join again
    collectives.join(mk.chain, mk.deployment, ada, c.address, floor=20)
    assert c.member(ada.address).is_member and c.member_count() == 2
    del bob


def test_refresh_lowers_withdrawn_weight_and_expels_who_stopped_delegating(mk: Market) -> None:
    c = new_collective(mk)
    ada, a1 = new_member(mk, c, samples=100, floor=10)
    a2 = mk.add_asset(ada, 60)
    collectives.set_assets(mk.chain, mk.deployment, ada, c.address)  # both assets
    assert c.member(ada.address).weight == 160
    bob, _ = new_member(mk, c, samples=120, floor=40)
    assert c.policy().floor == 10  # 160 of 280 samples vote 10: the lower median
    stranger = mk.roles["stranger"]
    with reverts("CollectiveAssetsMismatch"):
        c.refresh(stranger, ada.address, [a1])
    mk.assets.withdraw_asset(ada, a2)
    assert mk.assets.asset(a2).status == AssetStatus.WITHDRAWN
    receipt = settle(mk, c)  # the SDK finds the stale member and refreshes it
    assert receipt.refreshed == (ada.address,)
    assert c.member(ada.address).weight == 100
    assert (c.policy().floor, c.policy().weight) == (40, 220)  # now 120 of 220 vote 40
    # a refresh never raises a weight: withdrawing cannot be undone, and a repeat is a no-op
    c.refresh(stranger, ada.address, [a1, a2])
    assert c.member(ada.address).weight == 100
    # bob delegates elsewhere: anyone may expel him, his vote stops counting
    mk.delegations.delegate(bob, stranger.address)
    assert settle(mk, c).refreshed == (bob.address,)
    assert not c.member(bob.address).is_member
    assert (c.policy().floor, c.policy().weight) == (10, 100)
    with reverts("CollectiveNotMember"):
        c.refresh(stranger, bob.address, [])


def test_members_change_floor_and_assets(mk: Market) -> None:
    c = new_collective(mk, delay=600)
    ada, a1 = new_member(mk, c, samples=100, floor=10)
    mk.advance(600)
    settle(mk, c)
    a2 = mk.add_asset(ada, 50)
    # a higher weight waits for the delay; the counted vote stays as it was meanwhile
    receipt = collectives.set_assets(mk.chain, mk.deployment, ada, c.address, asset_ids=[a1, a2])
    assert receipt.weight == 150 and receipt.effective_at is not None
    assert c.member(ada.address).weight == 100
    collectives.vote_floor(mk.chain, mk.deployment, ada, c.address, floor=25)
    assert c.policy().floor == 10
    mk.advance(600)
    settle(mk, c)
    assert (c.policy().floor, c.policy().weight) == (25, 150)
    # a lower weight counts at once
    collectives.set_assets(mk.chain, mk.deployment, ada, c.address, asset_ids=[a2])
    assert (c.policy().floor, c.policy().weight) == (25, 50)
    stranger = mk.roles["stranger"]
    with pytest.raises(InvalidInputError, match="is not a member"):
        collectives.vote_floor(mk.chain, mk.deployment, stranger, c.address, floor=1)
    with reverts("CollectiveNotMember"):
        c.vote_floor(stranger, 1)
    with reverts("CollectiveNotMember"):
        c.set_assets(stranger, [a1])
    with reverts("CollectiveInvalidFloor"):
        c.vote_floor(ada, collectives.MAX_FLOOR + 1)
    with reverts("CollectiveNoWeight"):
        c.set_assets(ada, [])
    with reverts("CollectiveNotAssetOwner"):
        c.set_assets(ada, [a2, mk.add_asset(mk.new_provider(), 5)])
