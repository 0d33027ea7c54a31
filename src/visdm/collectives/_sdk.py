"""The collectives' workflows as SDK calls, one per CLI command (the fee's are in ``_fees``).

Each call takes a connected :class:`~visdm.chain.client.ChainClient`, the marketplace's
:class:`~visdm.chain.deployment.Deployment` and, for writes, the acting ``LocalAccount``. A
collective is named by its name or its address, and only collectives created by the
marketplace's factory are accepted. Before anything is sent the call checks what the contract
would refuse and says so in one line; what it sent comes back as transactions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from web3.types import EventData

from visdm.chain.client import ChainClient, TxResult
from visdm.chain.contracts import AssetStatus, ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.errors import ChainError, InvalidInputError
from visdm.types import Address

from ._contracts import (
    MAX_FEE_BPS,
    MAX_FLOOR,
    MAX_MEMBER_ASSETS,
    MAX_POLICY_DELAY,
    Collective,
    CollectiveFactory,
    MemberRecord,
)
from ._policy import policy_ask

__all__ = [
    "DEFAULT_POLICY_DELAY",
    "CastReceipt",
    "Created",
    "MemberReceipt",
    "SettleReceipt",
    "cast_vote",
    "create",
    "factory",
    "join",
    "leave",
    "listed_assets",
    "members",
    "resolve",
    "set_assets",
    "settle",
    "vote_floor",
]

#: notice before a policy vote, a weight increase or a fee change counts (one day)
DEFAULT_POLICY_DELAY = 86_400


@dataclass(frozen=True, slots=True)
class Created:
    """A new collective."""

    address: Address
    name: str
    steward: Address
    fee_bps: int
    policy_delay: int
    transactions: tuple[TxResult, ...]


@dataclass(frozen=True, slots=True)
class MemberReceipt:
    """What a member's change did: its weight, its floor and when they count."""

    collective: Address
    member: Address
    weight: int
    floor_wei: int | None
    effective_at: int | None  # when the vote counts (None: nothing waits)
    transactions: tuple[TxResult, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SettleReceipt:
    """Members whose waiting votes were counted, and stale ones brought down or expelled."""

    collective: Address
    settled: tuple[Address, ...]
    refreshed: tuple[Address, ...]
    policy_floor_wei: int | None
    policy_weight: int
    transactions: tuple[TxResult, ...]


@dataclass(frozen=True, slots=True)
class CastReceipt:
    """The collective's vote on a proposal, and the policy it came from."""

    collective: Address
    proposal_id: int
    floor_wei: int
    offer_wei: int
    selected_samples: int
    ask_wei: int
    accepted: bool
    settled: tuple[Address, ...]
    refreshed: tuple[Address, ...]
    transactions: tuple[TxResult, ...]


# --- finding collectives ----------------------------------------------------------------------
def factory(client: ChainClient, deployment: Deployment) -> CollectiveFactory:
    """The marketplace's collective factory."""
    return CollectiveFactory(client, deployment.address_of("CollectiveFactory"))


def resolve(client: ChainClient, deployment: Deployment, ref: str) -> Collective:
    """The collective ``ref`` names (its name or its address), refused unless the marketplace's
    factory created it: a contract that only looks like a collective could vote anything."""
    text = ref.strip()
    made = factory(client, deployment)
    if is_address(text):
        address = to_checksum_address(text)
        if not made.is_collective(address):
            raise InvalidInputError(
                f"{address} is not a collective of this marketplace: `visdm collective list` "
                "shows the genuine ones"
            )
        return Collective(client, address)
    found = made.by_name(text) if 0 < len(text.encode()) <= 32 else None
    if found is None:
        raise InvalidInputError(
            f"no collective is named {text!r}: `visdm collective list` shows them (a name has "
            "1 to 32 bytes), or give its address"
        )
    return Collective(client, found)


def _check_name(name: str) -> str:
    text = name.strip()
    if not 0 < len(text.encode()) <= 32:
        raise InvalidInputError(f"collective name {name!r} must have 1 to 32 bytes")
    if not text.isprintable():
        raise InvalidInputError(f"collective name {name!r} has characters that do not print")
    return text


def _check_floor(floor: int) -> int:
    if not 0 <= floor <= MAX_FLOOR:
        raise InvalidInputError(
            f"floor {floor} wei per sample is outside 0..{MAX_FLOOR}: choose a smaller floor"
        )
    return floor


def _check_fee(fee_bps: int) -> int:
    if not 0 <= fee_bps <= MAX_FEE_BPS:
        raise InvalidInputError(
            f"fee {fee_bps} bps is outside 0..{MAX_FEE_BPS} (the cap every collective has on "
            "chain): choose a lower fee"
        )
    return fee_bps


# --- creating -----------------------------------------------------------------------------------
def create(
    client: ChainClient,
    deployment: Deployment,
    creator: LocalAccount,
    *,
    name: str,
    steward: str | None = None,
    fee_bps: int = 0,
    policy_delay: int = DEFAULT_POLICY_DELAY,
) -> Created:
    """Create a collective named ``name``; ``steward`` (default: the creator) receives the fee."""
    text = _check_name(name)
    _check_fee(fee_bps)
    if not 0 <= policy_delay <= MAX_POLICY_DELAY:
        raise InvalidInputError(
            f"policy delay {policy_delay} s is outside 0..{MAX_POLICY_DELAY} (30 days)"
        )
    who = to_checksum_address(steward) if steward else creator.address
    if int(who, 16) == 0:
        raise InvalidInputError("the steward cannot be the zero address: name a real account")
    made = factory(client, deployment)
    taken = made.by_name(text)
    if taken is not None:
        raise InvalidInputError(f"collective name {text!r} is taken by {taken}: choose another")
    client.fund_from_dev_faucet(creator.address)
    address, tx = made.create(
        creator, name=text, steward=who, fee_bps=fee_bps, policy_delay=policy_delay
    )
    return Created(address, text, Address(who), fee_bps, policy_delay, (tx,))


# --- members --------------------------------------------------------------------------------------
def _owned_active(client: ChainClient, deployment: Deployment, owner: str) -> list[int]:
    registry = deployment.asset_registry(client)
    ids = sorted(
        {
            int(e["args"]["assetId"])
            for e in registry.logs("AssetRegistered", where={"owner": owner})
        }
    )
    return [a for a in ids if registry.asset(a).status == AssetStatus.ACTIVE]


def _weight_of(
    client: ChainClient, deployment: Deployment, owner: str, asset_ids: Sequence[int]
) -> int:
    """The weight ``asset_ids`` give ``owner``, refused where the contract would refuse."""
    if len(asset_ids) > MAX_MEMBER_ASSETS:
        raise InvalidInputError(
            f"{len(asset_ids)} assets listed, at most {MAX_MEMBER_ASSETS}: list your largest"
        )
    if list(asset_ids) != sorted(set(asset_ids)) or any(a <= 0 for a in asset_ids):
        raise InvalidInputError("asset ids must be positive, each once (they are sorted for you)")
    registry = deployment.asset_registry(client)
    weight = 0
    for asset_id in asset_ids:
        record = registry.asset(asset_id)
        if record.owner != owner:
            raise InvalidInputError(
                f"asset {asset_id} is not yours ({owner}): list only your own assets"
            )
        if record.status == AssetStatus.ACTIVE:
            weight += record.accepted_count
    if weight == 0:
        raise InvalidInputError(
            f"{owner} has no attested samples in assets {list(asset_ids)}: a member's weight is "
            "its Active assets' samples; add one with `visdm asset add` and wait for its "
            "attestation"
        )
    return weight


def _current_member(collective: Collective, account: str, *, what: str) -> MemberRecord:
    record = collective.member(account)
    if not record.is_member:
        raise InvalidInputError(
            f"{account} is not a member of {collective.name()}, so it cannot {what}: join with "
            "`visdm collective join`"
        )
    if record.arrears:
        raise InvalidInputError(
            f"{account} owes the collective {record.arrears} wei of fees its deposit did not "
            "cover: pay with `visdm collective deposit` first"
        )
    return record


def join(
    client: ChainClient,
    deployment: Deployment,
    account: LocalAccount,
    ref: str,
    *,
    floor: int,
    asset_ids: Sequence[int] | None = None,
    deposit_wei: int = 0,
) -> MemberReceipt:
    """Join with ``asset_ids`` (default: every Active asset of the account) and a floor vote in
    wei per sample: delegates the account's market vote to the collective, joins, and funds the
    fee deposit with ``deposit_wei``."""
    collective = resolve(client, deployment, ref)
    me = Address(account.address)
    _check_floor(floor)
    if deposit_wei < 0:
        raise InvalidInputError("a deposit cannot be negative")
    record = collective.member(me)
    if record.is_member:
        raise InvalidInputError(f"{me} is already a member of {collective.name()}")
    now = client.latest_timestamp()
    if record.left_at and now < record.unlock_at:
        raise InvalidInputError(
            f"{me} left {collective.name()} at unix {record.left_at}; it may join again from "
            f"unix {record.unlock_at}, when fees for its last rounds can no longer be charged"
        )
    if record.arrears:
        raise InvalidInputError(
            f"{me} owes {collective.name()} {record.arrears} wei of fees: pay them with "
            "`visdm collective deposit` before joining again"
        )
    ids = sorted(set(asset_ids)) if asset_ids else _owned_active(client, deployment, me)
    if not ids:
        raise InvalidInputError(
            f"{me} owns no Active asset: a member's weight is its attested samples; add one "
            "with `visdm asset add` first"
        )
    weight = _weight_of(client, deployment, me, ids)
    client.fund_from_dev_faucet(me)
    sent: list[TxResult] = []
    notes: list[str] = []
    current = deployment.delegation_registry(client).delegate_of(me)
    if current != collective.address:
        if current is not None:
            notes.append(f"your delegation to {current} is replaced by the collective")
        sent.append(deployment.delegation_registry(client).delegate(account, collective.address))
    sent.append(collective.join(account, ids, floor))
    if deposit_wei:
        sent += _pay_deposit(client, deployment, account, collective, member=me, amount=deposit_wei)
    delay = collective.policy_delay()
    if delay:
        notes.append(
            f"your vote counts after {delay} s (from unix {now + delay}); anyone may then settle "
            "it, and `visdm collective vote` does so before voting"
        )
    return MemberReceipt(
        collective.address, me, weight, floor, now + delay, tuple(sent), tuple(notes)
    )


def leave(
    client: ChainClient, deployment: Deployment, account: LocalAccount, ref: str
) -> MemberReceipt:
    """Leave: the account's vote stops counting at once and its market vote is its own again
    (undelegated when it delegates to the collective)."""
    collective = resolve(client, deployment, ref)
    me = Address(account.address)
    record = collective.member(me)
    delegations = deployment.delegation_registry(client)
    delegates = delegations.delegate_of(me) == collective.address
    if not record.is_member and not delegates:
        raise InvalidInputError(
            f"{me} is neither a member of nor delegating to {collective.name()}"
        )
    client.fund_from_dev_faucet(me)
    sent: list[TxResult] = []
    if record.is_member:
        sent.append(collective.leave(account))
    if delegates:
        sent.append(delegations.undelegate(account))
    after = collective.member(me)
    notes = (
        (
            f"your deposit of {after.deposit} wei can be withdrawn from unix {after.unlock_at} "
            "(`visdm collective withdraw`)",
        )
        if after.deposit
        else ()
    )
    return MemberReceipt(collective.address, me, 0, None, None, tuple(sent), notes)


def vote_floor(
    client: ChainClient, deployment: Deployment, account: LocalAccount, ref: str, *, floor: int
) -> MemberReceipt:
    """Replace the account's floor vote (wei per sample); it counts after the policy delay."""
    collective = resolve(client, deployment, ref)
    me = Address(account.address)
    _check_floor(floor)
    record = _current_member(collective, me, what="vote a floor")
    client.fund_from_dev_faucet(me)
    tx = collective.vote_floor(account, floor)
    weight = record.pending_weight if record.has_pending else record.weight
    effective = client.latest_timestamp() + collective.policy_delay()
    return MemberReceipt(collective.address, me, weight, floor, effective, (tx,))


def set_assets(
    client: ChainClient,
    deployment: Deployment,
    account: LocalAccount,
    ref: str,
    *,
    asset_ids: Sequence[int] | None = None,
) -> MemberReceipt:
    """Replace the assets that make the account's weight (default: every Active asset)."""
    collective = resolve(client, deployment, ref)
    me = Address(account.address)
    record = _current_member(collective, me, what="list assets")
    ids = sorted(set(asset_ids)) if asset_ids else _owned_active(client, deployment, me)
    weight = _weight_of(client, deployment, me, ids)
    client.fund_from_dev_faucet(me)
    tx = collective.set_assets(account, ids)
    after = collective.member(me)
    effective = (after.pending_since + collective.policy_delay()) if after.has_pending else None
    floor = after.pending_floor if after.has_pending else record.floor
    return MemberReceipt(collective.address, me, weight, floor, effective, (tx,))


# --- the policy -------------------------------------------------------------------------------
def members(collective: Collective) -> list[MemberRecord]:
    """Every account that ever joined, as the collective records it now, in joining order."""
    seen: dict[str, None] = {}
    for event in collective.logs("MemberJoined"):
        seen.setdefault(str(event["args"]["member"]), None)
    return [collective.member(a) for a in seen]


def listed_assets(collective: Collective, member: str) -> tuple[int, ...]:
    """The asset ids ``member`` last listed (joining or ``setAssets``)."""
    where = {"member": to_checksum_address(member)}
    events: list[EventData] = [
        *collective.logs("MemberJoined", where=where),
        *collective.logs("MemberAssetsSet", where=where),
    ]
    if not events:
        return ()
    latest = max(events, key=lambda e: (e["blockNumber"], e["logIndex"]))
    return tuple(int(a) for a in latest["args"]["assetIds"])


def _listings(collective: Collective) -> dict[str, tuple[int, ...]]:
    """Every member's last listed asset ids (:func:`listed_assets`), from one read of each
    event kind rather than two per member."""
    latest: dict[str, tuple[tuple[int, int], tuple[int, ...]]] = {}
    for event in (*collective.logs("MemberJoined"), *collective.logs("MemberAssetsSet")):
        member = to_checksum_address(event["args"]["member"])
        at = (int(event["blockNumber"]), int(event["logIndex"]))
        if member not in latest or at > latest[member][0]:
            latest[member] = (at, tuple(int(a) for a in event["args"]["assetIds"]))
    return {member: ids for member, (_, ids) in latest.items()}


def _stale(
    client: ChainClient,
    deployment: Deployment,
    collective: Collective,
    record: MemberRecord,
    ids: tuple[int, ...],
) -> tuple[int, ...] | None:
    """The member's listed assets ``ids`` when ``refresh`` would lower or expel it, else
    ``None``."""
    if deployment.delegation_registry(client).delegate_of(record.address) != collective.address:
        return ids
    registry = deployment.asset_registry(client)
    weight = 0
    for asset_id in ids:
        asset = registry.asset(asset_id)
        if asset.status == AssetStatus.ACTIVE:
            weight += asset.accepted_count
    lower = weight < record.weight or (record.has_pending and weight < record.pending_weight)
    return ids if lower else None


def settle(
    client: ChainClient, deployment: Deployment, sender: LocalAccount, ref: str
) -> SettleReceipt:
    """Bring the policy up to date: lower or expel members whose assets or delegation changed,
    and count every vote whose delay has passed. Anyone may run it."""
    collective = resolve(client, deployment, ref)
    return _settle(client, deployment, sender, collective)


def _settle(
    client: ChainClient, deployment: Deployment, sender: LocalAccount, collective: Collective
) -> SettleReceipt:
    now = client.latest_timestamp()
    delay = collective.policy_delay()
    sent: list[TxResult] = []
    refreshed: list[Address] = []
    ready: list[Address] = []
    current = [m for m in members(collective) if m.is_member]
    if current:
        client.fund_from_dev_faucet(sender.address)
    listed = _listings(collective)
    for record in current:
        stale = _stale(
            client,
            deployment,
            collective,
            record,
            listed.get(to_checksum_address(record.address), ()),
        )
        if stale is not None:
            sent.append(collective.refresh(sender, record.address, stale))
            refreshed.append(record.address)
    for record in current:
        # a refresh changes only its own member's record
        after = collective.member(record.address) if record.address in refreshed else record
        if after.is_member and after.has_pending and after.pending_since + delay <= now:
            ready.append(record.address)
    if ready:
        sent.append(collective.settle(sender, ready))
    policy = collective.policy()
    return SettleReceipt(
        collective.address, tuple(ready), tuple(refreshed), policy.floor, policy.weight, tuple(sent)
    )


def cast_vote(
    client: ChainClient, deployment: Deployment, sender: LocalAccount, ref: str, proposal_id: int
) -> CastReceipt:
    """Make the collective vote on ``proposal_id`` from its policy, after settling it. Anyone
    may; when the collective already cast what the policy says, nothing is sent."""
    collective = resolve(client, deployment, ref)
    market = deployment.training_market(client)
    record = market.proposal(proposal_id)
    if record.status == ProposalStatus.NONE:
        raise InvalidInputError(f"proposal {proposal_id} does not exist: check its id")
    now = client.latest_timestamp()
    if record.status != ProposalStatus.VOTING or now >= record.voting_deadline:
        raise InvalidInputError(
            f"proposal {proposal_id} is no longer in voting (deadline unix "
            f"{record.voting_deadline}): the collective's vote can no longer change it"
        )
    settled = _settle(client, deployment, sender, collective)
    policy = collective.policy()
    if policy.floor is None:
        raise InvalidInputError(
            f"{collective.name()} has no policy yet: no member's floor vote counts (votes count "
            "after the policy delay; `visdm collective show` says when)"
        )
    ask = policy_ask(offer=record.offer, total_weight=record.total_weight, floor=policy.floor)
    sent = list(settled.transactions)
    if collective.cast_of(proposal_id) != ask:
        client.fund_from_dev_faucet(sender.address)
        sent.append(collective.cast_vote(sender, proposal_id))
    return CastReceipt(
        collective=collective.address,
        proposal_id=proposal_id,
        floor_wei=policy.floor,
        offer_wei=record.offer,
        selected_samples=record.total_weight,
        ask_wei=ask,
        accepted=ask == 0,
        settled=settled.settled,
        refreshed=settled.refreshed,
        transactions=tuple(sent),
    )


# --- fees -----------------------------------------------------------------------------------
def _pay_deposit(
    client: ChainClient,
    deployment: Deployment,
    payer: LocalAccount,
    collective: Collective,
    *,
    member: str,
    amount: int,
) -> list[TxResult]:
    token = deployment.payment_token(client)
    sent: list[TxResult] = []
    if client.is_dev_chain and token.balance_of(payer.address) < amount:
        # not a DevToken, or above its faucet limit: the deposit itself says what is missing
        with contextlib.suppress(ChainError):
            sent.append(token.faucet(payer, amount - token.balance_of(payer.address)))
    if token.allowance(payer.address, collective.address) < amount:
        sent.append(token.approve(payer, collective.address, amount))
    sent.append(collective.deposit(payer, member, amount))
    return sent
