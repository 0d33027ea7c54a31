"""Typed wrappers of ``Collective.sol`` and ``CollectiveFactory.sol``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain.client import TxResult
from visdm.chain.contracts import ContractWrapper
from visdm.types import Address

__all__ = [
    "MAX_FEE_BPS",
    "MAX_FLOOR",
    "MAX_MEMBER_ASSETS",
    "MAX_POLICY_DELAY",
    "Collective",
    "CollectiveFactory",
    "FeeCharge",
    "MemberRecord",
    "Policy",
]

#: ``Collective.MAX_FEE_BPS``: the steward's fee can never exceed 10 % of a payout
MAX_FEE_BPS = 1000
#: ``Collective.MAX_POLICY_DELAY``: the longest notice a collective may set (30 days)
MAX_POLICY_DELAY = 30 * 86400
#: ``Collective.MAX_MEMBER_ASSETS``: most assets one member may list for its weight
MAX_MEMBER_ASSETS = 256
#: ``Collective.MAX_FLOOR``: the highest floor per sample, in wei
MAX_FLOOR = 2**96 - 2


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """``Collective.Member``: what counts in the policy now and what waits for the delay."""

    address: Address
    weight: int
    floor: int | None  # counted floor per sample (None: the account never voted one)
    joined_at: int
    left_at: int
    pending_weight: int
    pending_floor: int | None
    pending_since: int
    unlock_at: int
    assets_hash: bytes
    deposit: int
    arrears: int

    @property
    def is_member(self) -> bool:
        return self.joined_at != 0 and self.left_at == 0

    @property
    def has_pending(self) -> bool:
        return self.pending_since != 0


@dataclass(frozen=True, slots=True)
class Policy:
    """The standing policy: the weighted lower median floor over the counted weight."""

    floor: int | None  # per sample, in wei (None: no weight counted, the collective cannot vote)
    weight: int
    levels: tuple[tuple[int, int], ...]  # (floor, weight), ascending


@dataclass(frozen=True, slots=True)
class FeeCharge:
    """One payout leaf ``(position, asset_id, amount)`` of a proposal, with its proof."""

    proposal_id: int
    position: int
    asset_id: int
    amount: int
    proof: tuple[bytes, ...]

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.proposal_id, self.position, self.asset_id, self.amount, list(self.proof))


def _key(raw: int) -> int | None:
    return None if raw == 0 else raw - 1


class Collective(ContractWrapper):
    """``Collective.sol``: members, their floor votes, the policy vote and the steward's fee."""

    ARTIFACT = "Collective"

    # --- members ----------------------------------------------------------------------------
    def join(self, account: LocalAccount, asset_ids: Sequence[int], floor: int) -> TxResult:
        fn = self._contract.functions.join(list(asset_ids), floor)
        return self.client.transact(account, fn, action="join")

    def leave(self, account: LocalAccount) -> TxResult:
        return self.client.transact(account, self._contract.functions.leave(), action="leave")

    def vote_floor(self, account: LocalAccount, floor: int) -> TxResult:
        fn = self._contract.functions.voteFloor(floor)
        return self.client.transact(account, fn, action="voteFloor")

    def set_assets(self, account: LocalAccount, asset_ids: Sequence[int]) -> TxResult:
        fn = self._contract.functions.setAssets(list(asset_ids))
        return self.client.transact(account, fn, action="setAssets")

    def refresh(self, sender: LocalAccount, member: str, asset_ids: Sequence[int]) -> TxResult:
        fn = self._contract.functions.refresh(to_checksum_address(member), list(asset_ids))
        return self.client.transact(sender, fn, action="refresh")

    def settle(self, sender: LocalAccount, members: Sequence[str]) -> TxResult:
        fn = self._contract.functions.settle([to_checksum_address(m) for m in members])
        return self.client.transact(sender, fn, action="settle")

    # --- voting and fees --------------------------------------------------------------------
    def cast_vote(self, sender: LocalAccount, proposal_id: int) -> TxResult:
        fn = self._contract.functions.castVote(proposal_id)
        return self.client.transact(sender, fn, action="castVote")

    def set_fee(self, steward: LocalAccount, fee_bps: int) -> TxResult:
        fn = self._contract.functions.setFee(fee_bps)
        return self.client.transact(steward, fn, action="setFee")

    def set_steward(self, steward: LocalAccount, new_steward: str) -> TxResult:
        fn = self._contract.functions.setSteward(to_checksum_address(new_steward))
        return self.client.transact(steward, fn, action="setSteward")

    def deposit(self, sender: LocalAccount, member: str, amount: int) -> TxResult:
        fn = self._contract.functions.deposit(to_checksum_address(member), amount)
        return self.client.transact(sender, fn, action="deposit")

    def charge_fees(self, sender: LocalAccount, charges: Sequence[FeeCharge]) -> TxResult:
        fn = self._contract.functions.chargeFees([c.as_tuple() for c in charges])
        return self.client.transact(sender, fn, action="chargeFees")

    def withdraw_deposit(self, account: LocalAccount) -> TxResult:
        fn = self._contract.functions.withdrawDeposit()
        return self.client.transact(account, fn, action="withdrawDeposit")

    def withdraw_fees(self, steward: LocalAccount) -> TxResult:
        fn = self._contract.functions.withdrawFees()
        return self.client.transact(steward, fn, action="withdrawFees")

    # --- reads ------------------------------------------------------------------------------
    def name(self) -> str:
        return str(self.client.call(self._contract.functions.name()))

    def steward(self) -> Address:
        return Address(to_checksum_address(self.client.call(self._contract.functions.steward())))

    def market(self) -> Address:
        return Address(to_checksum_address(self.client.call(self._contract.functions.market())))

    def policy_delay(self) -> int:
        return int(self.client.call(self._contract.functions.policyDelay()))

    def member_count(self) -> int:
        return int(self.client.call(self._contract.functions.memberCount()))

    def steward_balance(self) -> int:
        return int(self.client.call(self._contract.functions.stewardBalance()))

    def fee_bps(self) -> int:
        return int(self.client.call(self._contract.functions.feeBps()))

    def fee_at(self, timestamp: int) -> int:
        return int(self.client.call(self._contract.functions.feeAt(timestamp)))

    def latest_fee(self) -> tuple[int, int]:
        """The latest scheduled fee (bps) and when it takes or took effect."""
        bps, effective_at = self.client.call(self._contract.functions.latestFee())
        return int(bps), int(effective_at)

    def member(self, account: str) -> MemberRecord:
        checksum = to_checksum_address(account)
        raw = self.client.call(self._contract.functions.member(checksum))
        (weight, floor_key, joined, left, p_weight, p_key, p_since, unlock, hashed, dep, owed) = raw
        return MemberRecord(
            address=Address(checksum),
            weight=int(weight),
            floor=_key(int(floor_key)),
            joined_at=int(joined),
            left_at=int(left),
            pending_weight=int(p_weight),
            pending_floor=_key(int(p_key)),
            pending_since=int(p_since),
            unlock_at=int(unlock),
            assets_hash=bytes(hashed),
            deposit=int(dep),
            arrears=int(owed),
        )

    def is_member(self, account: str) -> bool:
        fn = self._contract.functions.isMember(to_checksum_address(account))
        return bool(self.client.call(fn))

    def policy(self) -> Policy:
        is_set, floor, weight = self.client.call(self._contract.functions.policy())
        floors, weights = self.client.call(self._contract.functions.floorLevels())
        levels = tuple((int(f), int(w)) for f, w in zip(floors, weights, strict=True))
        return Policy(int(floor) if is_set else None, int(weight), levels)

    def cast_of(self, proposal_id: int) -> int | None:
        """The collective's ask on ``proposal_id`` (``None``: it has not voted)."""
        cast, ask = self.client.call(self._contract.functions.castOf(proposal_id))
        return int(ask) if cast else None

    def is_charged(self, proposal_id: int, position: int) -> bool:
        fn = self._contract.functions.isCharged(proposal_id, position)
        return bool(self.client.call(fn))


class CollectiveFactory(ContractWrapper):
    """``CollectiveFactory.sol``: creates collectives; unique names; tells genuine ones apart."""

    ARTIFACT = "CollectiveFactory"

    def create(
        self,
        creator: LocalAccount,
        *,
        name: str,
        steward: str,
        fee_bps: int,
        policy_delay: int,
    ) -> tuple[Address, TxResult]:
        """Create a collective; returns its address (from ``CollectiveCreated``)."""
        fn = self._contract.functions.create(
            name, to_checksum_address(steward), fee_bps, policy_delay
        )
        result = self.client.transact(creator, fn, action="create collective")
        (event,) = self.events("CollectiveCreated", result.receipt)
        return Address(to_checksum_address(event["args"]["collective"])), result

    def by_name(self, name: str) -> Address | None:
        raw = self.client.call(self._contract.functions.collectiveByName(name))
        return None if int(raw, 16) == 0 else Address(to_checksum_address(raw))

    def is_collective(self, address: str) -> bool:
        fn = self._contract.functions.isCollective(to_checksum_address(address))
        return bool(self.client.call(fn))

    def count(self) -> int:
        return int(self.client.call(self._contract.functions.collectiveCount()))

    def collectives(self, start: int = 0, end: int | None = None) -> list[Address]:
        stop = self.count() if end is None else end
        raw = self.client.call(self._contract.functions.collectives(start, stop))
        return [Address(to_checksum_address(a)) for a in raw]
