"""Typed wrappers, one class per contract, with real methods (no ABI attached at run time).

Each method either reads (``client.call``: a revert becomes ``ContractRevertError``) or sends a
transaction signed by the given account (``client.transact``). Reads return small frozen
dataclasses instead of web3's tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3.logs import DISCARD
from web3.types import EventData

from visdm.chain.client import ChainClient, TxResult
from visdm.errors import InvalidInputError
from visdm.types import Address, AssetId, Role

__all__ = [
    "QUOTE_TYPES",
    "REJECT_ASK",
    "AssetRecord",
    "AssetRegistry",
    "AssetStatus",
    "ClaimRequest",
    "ComputeNodeRecord",
    "ContractWrapper",
    "DelegationRegistry",
    "DevToken",
    "MarketParameters",
    "ProposalRecord",
    "ProposalStatus",
    "ProposalTerms",
    "Quote",
    "StakeholderRecord",
    "StakeholderRegistry",
    "TrainingMarket",
    "region_name",
]

#: the ask that rejects a proposal outright (``type(uint256).max``)
REJECT_ASK = 2**256 - 1


def region_name(name: str | bytes) -> bytes:
    """A region name as the contracts store it: UTF-8, right-padded to 32 bytes."""
    raw = name.encode() if isinstance(name, str) else name
    if not raw or len(raw) > 32:
        raise InvalidInputError(f"region name {name!r} must have 1 to 32 bytes")
    return raw.ljust(32, b"\0")


def _address_or_none(raw: str) -> Address | None:
    return None if int(raw, 16) == 0 else Address(to_checksum_address(raw))


class ContractWrapper:
    """Shared plumbing: the client, the web3 contract object and the artifact name."""

    ARTIFACT: str = ""

    def __init__(self, client: ChainClient, address: str) -> None:
        if not self.ARTIFACT:
            raise TypeError(f"{type(self).__name__} must set ARTIFACT")
        self.client = client
        self.address = Address(to_checksum_address(address))
        self._contract = client.contract(self.address, self.ARTIFACT)

    def events(self, name: str, receipt: Any) -> list[EventData]:
        """Decoded ``name`` events emitted by this contract in a transaction receipt."""
        event = self._contract.events[name]()
        return list(event.process_receipt(receipt, errors=DISCARD))

    def logs(
        self,
        name: str,
        *,
        from_block: int = 0,
        to_block: int | str = "latest",
        where: dict[str, Any] | None = None,
    ) -> list[EventData]:
        """Decoded ``name`` events of this contract in a block range; ``where`` filters on the
        event's arguments (indexed ones by topic, on the node)."""
        event = self._contract.events[name]()
        return list(
            self.client.rpc(
                lambda: event.get_logs(
                    argument_filters=where,
                    from_block=from_block,
                    to_block=to_block,
                )
            )
        )


# ---------------------------------------------------------------------- StakeholderRegistry


@dataclass(frozen=True, slots=True)
class StakeholderRecord:
    """An account's on-chain registration."""

    address: Address
    roles: Role
    encryption_key: bytes
    registered_at: int

    @property
    def registered(self) -> bool:
        return self.roles != Role.NONE


@dataclass(frozen=True, slots=True)
class ComputeNodeRecord:
    """A compute node as governance admitted it."""

    address: Address
    signer: Address
    region: int
    admitted: bool
    suspended: bool
    encryption_key: bytes
    endpoint: str

    @property
    def active(self) -> bool:
        return self.admitted and not self.suspended


class StakeholderRegistry(ContractWrapper):
    """``StakeholderRegistry.sol``: roles and X25519 keys of participants; regions and nodes."""

    ARTIFACT = "StakeholderRegistry"

    def register(self, account: LocalAccount, roles: Role, encryption_key: bytes) -> TxResult:
        """Register ``account`` with ``roles`` and its 32-byte X25519 public key."""
        fn = self._contract.functions.register(int(roles), encryption_key)
        return self.client.transact(account, fn, action="register")

    def add_roles(self, account: LocalAccount, roles: Role) -> TxResult:
        fn = self._contract.functions.addRoles(int(roles))
        return self.client.transact(account, fn, action="addRoles")

    def rotate_encryption_key(self, account: LocalAccount, encryption_key: bytes) -> TxResult:
        fn = self._contract.functions.rotateEncryptionKey(encryption_key)
        return self.client.transact(account, fn, action="rotateEncryptionKey")

    def stakeholder(self, address: str) -> StakeholderRecord:
        checksum = to_checksum_address(address)
        key, roles, registered_at = self.client.call(self._contract.functions.stakeholder(checksum))
        return StakeholderRecord(Address(checksum), Role(roles), bytes(key), int(registered_at))

    def has_roles(self, address: str, roles: Role) -> bool:
        fn = self._contract.functions.hasRoles(to_checksum_address(address), int(roles))
        return bool(self.client.call(fn))

    def stakeholder_count(self) -> int:
        return int(self.client.call(self._contract.functions.stakeholderCount()))

    # --- governance: regions and compute nodes ----------------------------------------------
    def governance_role(self) -> bytes:
        return bytes(self.client.call(self._contract.functions.GOVERNANCE_ROLE()))

    def grant_governance(self, admin: LocalAccount, account: str) -> TxResult:
        fn = self._contract.functions.grantRole(
            self.governance_role(), to_checksum_address(account)
        )
        return self.client.transact(admin, fn, action="grantRole")

    def is_governance(self, account: str) -> bool:
        fn = self._contract.functions.hasRole(self.governance_role(), to_checksum_address(account))
        return bool(self.client.call(fn))

    def add_region(self, governance: LocalAccount, name: str) -> TxResult:
        fn = self._contract.functions.addRegion(region_name(name))
        return self.client.transact(governance, fn, action="addRegion")

    def regions(self) -> list[str]:
        raw = self.client.call(self._contract.functions.regions())
        return [bytes(r).rstrip(b"\0").decode() for r in raw]

    def admit_node(
        self,
        governance: LocalAccount,
        node: str,
        *,
        signer: str,
        region: str,
        encryption_key: bytes,
        endpoint: str,
    ) -> TxResult:
        fn = self._contract.functions.admitNode(
            to_checksum_address(node),
            to_checksum_address(signer),
            region_name(region),
            encryption_key,
            endpoint,
        )
        return self.client.transact(governance, fn, action="admitNode")

    def suspend_node(self, governance: LocalAccount, node: str) -> TxResult:
        fn = self._contract.functions.suspendNode(to_checksum_address(node))
        return self.client.transact(governance, fn, action="suspendNode")

    def reinstate_node(self, governance: LocalAccount, node: str) -> TxResult:
        fn = self._contract.functions.reinstateNode(to_checksum_address(node))
        return self.client.transact(governance, fn, action="reinstateNode")

    def compute_node(self, node: str) -> ComputeNodeRecord:
        checksum = to_checksum_address(node)
        signer, region, admitted, suspended, key, endpoint = self.client.call(
            self._contract.functions.computeNode(checksum)
        )
        return ComputeNodeRecord(
            Address(checksum),
            Address(to_checksum_address(signer)),
            int(region),
            bool(admitted),
            bool(suspended),
            bytes(key),
            str(endpoint),
        )


# ---------------------------------------------------------------------- AssetRegistry


class AssetStatus(IntEnum):
    """``AssetRegistry.Status``."""

    NONE = 0
    PENDING = 1
    ACTIVE = 2
    WITHDRAWN = 3


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """An asset as the chain keeps it."""

    asset_id: AssetId
    owner: Address
    status: AssetStatus
    sample_count: int
    accepted_count: int
    registered_day: int
    manifest_hash: bytes
    samples_root: bytes
    region_mask: int
    metadata_hash: bytes


class AssetRegistry(ContractWrapper):
    """``AssetRegistry.sol``: data assets, their manifests and their attested metadata."""

    ARTIFACT = "AssetRegistry"

    def register_asset(
        self,
        owner: LocalAccount,
        *,
        manifest_hash: bytes,
        samples_root: bytes,
        sample_count: int,
        allowed_regions: Sequence[str],
        manifest_cid: str,
    ) -> tuple[AssetId, TxResult]:
        """Register an asset; returns its id (read from the ``AssetRegistered`` event)."""
        fn = self._contract.functions.registerAsset(
            manifest_hash,
            samples_root,
            sample_count,
            [region_name(r) for r in allowed_regions],
            manifest_cid,
        )
        result = self.client.transact(owner, fn, action="registerAsset")
        (event,) = self.events("AssetRegistered", result.receipt)
        return AssetId(int(event["args"]["assetId"])), result

    def attest_metadata(
        self,
        node: LocalAccount,
        asset_id: int,
        *,
        metadata_hash: bytes,
        accepted_count: int,
        metadata_cid: str,
    ) -> TxResult:
        fn = self._contract.functions.attestMetadata(
            asset_id, metadata_hash, accepted_count, metadata_cid
        )
        return self.client.transact(node, fn, action="attestMetadata")

    def withdraw_asset(self, owner: LocalAccount, asset_id: int) -> TxResult:
        fn = self._contract.functions.withdrawAsset(asset_id)
        return self.client.transact(owner, fn, action="withdrawAsset")

    def asset(self, asset_id: int) -> AssetRecord:
        (owner, status, count, accepted, day, manifest, root, mask, metadata) = self.client.call(
            self._contract.functions.asset(asset_id)
        )
        return AssetRecord(
            AssetId(asset_id),
            Address(to_checksum_address(owner)),
            AssetStatus(status),
            int(count),
            int(accepted),
            int(day),
            bytes(manifest),
            bytes(root),
            int(mask),
            bytes(metadata),
        )

    def asset_count(self) -> int:
        return int(self.client.call(self._contract.functions.assetCount()))

    def node_allowed(self, asset_id: int, node: str) -> bool:
        fn = self._contract.functions.nodeAllowed(asset_id, to_checksum_address(node))
        return bool(self.client.call(fn))


# ---------------------------------------------------------------------- DelegationRegistry


class DelegationRegistry(ContractWrapper):
    """``DelegationRegistry.sol``: global, transitive, checkpointed vote delegation."""

    ARTIFACT = "DelegationRegistry"

    def delegate(self, account: LocalAccount, to: str) -> TxResult:
        fn = self._contract.functions.delegate(to_checksum_address(to))
        return self.client.transact(account, fn, action="delegate")

    def undelegate(self, account: LocalAccount) -> TxResult:
        fn = self._contract.functions.undelegate()
        return self.client.transact(account, fn, action="undelegate")

    def delegate_of(self, account: str) -> Address | None:
        fn = self._contract.functions.delegateOf(to_checksum_address(account))
        return _address_or_none(self.client.call(fn))

    def delegate_at(self, account: str, timestamp: int) -> Address | None:
        fn = self._contract.functions.delegateAt(to_checksum_address(account), timestamp)
        return _address_or_none(self.client.call(fn))

    def max_depth(self) -> int:
        return int(self.client.call(self._contract.functions.MAX_DELEGATION_DEPTH()))


# ---------------------------------------------------------------------- DevToken / ERC-20


class DevToken(ContractWrapper):
    """``DevToken.sol``: the local chains' payment ERC-20 (the ERC-20 calls work on any token)."""

    ARTIFACT = "DevToken"

    def faucet(self, account: LocalAccount, amount: int) -> TxResult:
        fn = self._contract.functions.faucet(amount)
        return self.client.transact(account, fn, action="faucet")

    def approve(self, owner: LocalAccount, spender: str, amount: int) -> TxResult:
        fn = self._contract.functions.approve(to_checksum_address(spender), amount)
        return self.client.transact(owner, fn, action="approve")

    def transfer(self, owner: LocalAccount, to: str, amount: int) -> TxResult:
        fn = self._contract.functions.transfer(to_checksum_address(to), amount)
        return self.client.transact(owner, fn, action="transfer")

    def balance_of(self, account: str) -> int:
        fn = self._contract.functions.balanceOf(to_checksum_address(account))
        return int(self.client.call(fn))

    def allowance(self, owner: str, spender: str) -> int:
        fn = self._contract.functions.allowance(
            to_checksum_address(owner), to_checksum_address(spender)
        )
        return int(self.client.call(fn))


# ---------------------------------------------------------------------- TrainingMarket


class ProposalStatus(IntEnum):
    """``TrainingMarket.Status``."""

    NONE = 0
    VOTING = 1
    APPROVED = 2
    COUNTERED = 3
    FAILED = 4
    REJECTED = 5
    TRAINING = 6
    COMPLETED = 7
    WTP_MISSED = 8
    CANCELLED = 9


@dataclass(frozen=True, slots=True)
class ProposalTerms:
    """What a consumer proposes; ``asset_ids`` strictly increasing."""

    asset_ids: tuple[int, ...]
    sample_counts: tuple[int, ...]
    selection_root: bytes
    offer: int
    wtp_bps: int
    node: str
    voting_deadline: int
    model_spec_hash: bytes
    validation_set_hash: bytes
    proposal_cid: str = ""

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            list(self.asset_ids),
            list(self.sample_counts),
            self.selection_root,
            self.offer,
            self.wtp_bps,
            to_checksum_address(self.node),
            self.voting_deadline,
            self.model_spec_hash,
            self.validation_set_hash,
            self.proposal_cid,
        )


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A proposal as the chain keeps it."""

    proposal_id: int
    consumer: Address
    voting_deadline: int
    wtp_bps: int
    status: ProposalStatus
    node: Address
    deadline: int
    asset_count: int
    total_weight: int
    offer: int
    price: int
    clearing_price: int
    training_cost: int
    unclaimed: int
    assets_hash: bytes
    selection_root: bytes
    model_spec_hash: bytes
    validation_set_hash: bytes
    payout_root: bytes
    model_hash: bytes
    accuracy_bps: int


@dataclass(frozen=True, slots=True)
class Quote:
    """A compute node's offer to train a proposal (EIP-712 typed data ``Quote``)."""

    proposal_id: int
    training_cost: int
    max_duration: int
    expiry: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.proposal_id, self.training_cost, self.max_duration, self.expiry)

    def as_message(self) -> dict[str, int]:
        return {
            "proposalId": self.proposal_id,
            "trainingCost": self.training_cost,
            "maxDuration": self.max_duration,
            "expiry": self.expiry,
        }


#: EIP-712 types of ``Quote`` (the domain is the market's: name, version, chain id, address)
QUOTE_TYPES: dict[str, list[dict[str, str]]] = {
    "Quote": [
        {"name": "proposalId", "type": "uint256"},
        {"name": "trainingCost", "type": "uint256"},
        {"name": "maxDuration", "type": "uint64"},
        {"name": "expiry", "type": "uint64"},
    ]
}


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One payout claim with its Merkle proof."""

    proposal_id: int
    index: int
    account: str
    amount: int
    proof: tuple[bytes, ...]

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.proposal_id,
            self.index,
            to_checksum_address(self.account),
            self.amount,
            list(self.proof),
        )


@dataclass(frozen=True, slots=True)
class MarketParameters:
    """``TrainingMarket.Parameters`` (periods in seconds)."""

    quorum_bps: int = 3000
    min_voting_period: int = 60
    max_voting_period: int = 30 * 86400
    reply_period: int = 3 * 86400
    start_period: int = 7 * 86400

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (
            self.quorum_bps,
            self.min_voting_period,
            self.max_voting_period,
            self.reply_period,
            self.start_period,
        )


class TrainingMarket(ContractWrapper):
    """``TrainingMarket.sol``: proposals, votes, batched tallies, escrowed training, payouts."""

    ARTIFACT = "TrainingMarket"
    EIP712_NAME = "ViSDM TrainingMarket"
    EIP712_VERSION = "1"

    def propose(self, consumer: LocalAccount, terms: ProposalTerms) -> tuple[int, TxResult]:
        """Propose and escrow the offer (approve it first); returns the proposal id."""
        fn = self._contract.functions.propose(terms.as_tuple())
        result = self.client.transact(consumer, fn, action="propose")
        (event,) = self.events("ProposalCreated", result.receipt)
        return int(event["args"]["proposalId"]), result

    def vote(self, voter: LocalAccount, proposal_id: int, ask: int) -> TxResult:
        fn = self._contract.functions.vote(proposal_id, ask)
        return self.client.transact(voter, fn, action="vote")

    def vote_of(self, proposal_id: int, voter: str) -> int | None:
        """The ask of ``voter``, or ``None`` when it has not voted."""
        voted, ask = self.client.call(
            self._contract.functions.voteOf(proposal_id, to_checksum_address(voter))
        )
        return int(ask) if voted else None

    def tally(
        self,
        tallier: LocalAccount,
        proposal_id: int,
        clearing_price: int,
        asset_ids: Sequence[int],
        sample_counts: Sequence[int],
    ) -> tuple[bool, TxResult]:
        """Submit one tally batch; returns whether it completed the tally."""
        fn = self._contract.functions.tally(
            proposal_id, clearing_price, list(asset_ids), list(sample_counts)
        )
        result = self.client.transact(tallier, fn, action="tally")
        return bool(self.events("ProposalTallied", result.receipt)), result

    def reset_tally(self, tallier: LocalAccount, proposal_id: int) -> TxResult:
        fn = self._contract.functions.resetTally(proposal_id)
        return self.client.transact(tallier, fn, action="resetTally")

    def accept_counter(self, consumer: LocalAccount, proposal_id: int) -> TxResult:
        fn = self._contract.functions.acceptCounter(proposal_id)
        return self.client.transact(consumer, fn, action="acceptCounter")

    def start_training(
        self, consumer: LocalAccount, proposal_id: int, quote: Quote, signature: bytes
    ) -> TxResult:
        fn = self._contract.functions.startTraining(proposal_id, quote.as_tuple(), signature)
        return self.client.transact(consumer, fn, action="startTraining")

    def submit_result(
        self,
        node: LocalAccount,
        proposal_id: int,
        *,
        accuracy_bps: int,
        model_hash: bytes,
        payout_root: bytes,
        scores_hash: bytes,
        model_cid: str,
    ) -> TxResult:
        fn = self._contract.functions.submitResult(
            proposal_id, accuracy_bps, model_hash, payout_root, scores_hash, model_cid
        )
        return self.client.transact(node, fn, action="submitResult")

    def reclaim(self, consumer: LocalAccount, proposal_id: int) -> TxResult:
        fn = self._contract.functions.reclaim(proposal_id)
        return self.client.transact(consumer, fn, action="reclaim")

    def claim(self, sender: LocalAccount, request: ClaimRequest) -> TxResult:
        """Submit one payout claim (anyone may; the tokens go to ``request.account``)."""
        fn = self._contract.functions.claim(*request.as_tuple())
        return self.client.transact(sender, fn, action="claim")

    def claim_many(self, sender: LocalAccount, requests: Sequence[ClaimRequest]) -> TxResult:
        fn = self._contract.functions.claimMany([r.as_tuple() for r in requests])
        return self.client.transact(sender, fn, action="claimMany")

    def withdraw(self, account: LocalAccount) -> TxResult:
        fn = self._contract.functions.withdraw()
        return self.client.transact(account, fn, action="withdraw")

    def set_parameters(self, governance: LocalAccount, params: MarketParameters) -> TxResult:
        fn = self._contract.functions.setParameters(params.as_tuple())
        return self.client.transact(governance, fn, action="setParameters")

    # --- reads ------------------------------------------------------------------------------
    def proposal(self, proposal_id: int) -> ProposalRecord:
        raw = self.client.call(self._contract.functions.proposal(proposal_id))
        (consumer, voting_deadline, wtp, status, node, deadline, count, weight) = raw[:8]
        (offer, price, clearing, cost, unclaimed) = raw[8:13]
        (assets_hash, root, spec, validation, payout, model, accuracy) = raw[13:]
        return ProposalRecord(
            proposal_id=proposal_id,
            consumer=Address(to_checksum_address(consumer)),
            voting_deadline=int(voting_deadline),
            wtp_bps=int(wtp),
            status=ProposalStatus(status),
            node=Address(to_checksum_address(node)),
            deadline=int(deadline),
            asset_count=int(count),
            total_weight=int(weight),
            offer=int(offer),
            price=int(price),
            clearing_price=int(clearing),
            training_cost=int(cost),
            unclaimed=int(unclaimed),
            assets_hash=bytes(assets_hash),
            selection_root=bytes(root),
            model_spec_hash=bytes(spec),
            validation_set_hash=bytes(validation),
            payout_root=bytes(payout),
            model_hash=bytes(model),
            accuracy_bps=int(accuracy),
        )

    def proposal_count(self) -> int:
        return int(self.client.call(self._contract.functions.proposalCount()))

    def parameters(self) -> MarketParameters:
        return MarketParameters(*self.client.call(self._contract.functions.parameters()))

    def credit_of(self, account: str) -> int:
        fn = self._contract.functions.creditOf(to_checksum_address(account))
        return int(self.client.call(fn))

    def is_claimed(self, proposal_id: int, index: int) -> bool:
        fn = self._contract.functions.isClaimed(proposal_id, index)
        return bool(self.client.call(fn))

    def quote_digest(self, quote: Quote) -> bytes:
        return bytes(self.client.call(self._contract.functions.quoteDigest(quote.as_tuple())))

    def assets_hash_of(self, asset_ids: Sequence[int], sample_counts: Sequence[int]) -> bytes:
        fn = self._contract.functions.assetsHashOf(list(asset_ids), list(sample_counts))
        return bytes(self.client.call(fn))

    def payment_token(self) -> Address:
        raw = self.client.call(self._contract.functions.paymentToken())
        return Address(to_checksum_address(raw))
