"""Typed wrappers, one class per contract, with real methods (no ABI attached at run time).

Each method either reads (``client.call``: a revert becomes ``ContractRevertError``) or sends a
transaction signed by the given account (``client.transact``). Reads return small frozen
dataclasses instead of web3's tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain._court import ChallengeRecord, CourtParameters, ProofState, ResultCourt
from visdm.chain._federation import FederationContract, FederationRecord, NodeRegions
from visdm.chain._market import (
    QUOTE_TYPES,
    REJECT_ASK,
    ClaimRequest,
    MarketParameters,
    ProposalRecord,
    ProposalStatus,
    ProposalTerms,
    Quote,
    ResultCommitment,
    TrainingMarket,
)
from visdm.chain._wrapper import ContractWrapper, address_or_none
from visdm.chain.client import TxResult
from visdm.errors import InvalidInputError
from visdm.types import Address, AssetId, Role

__all__ = [
    "QUOTE_TYPES",
    "REJECT_ASK",
    "AssetRecord",
    "AssetRegistry",
    "AssetStatus",
    "ChallengeRecord",
    "ClaimRequest",
    "ComputeNodeRecord",
    "ContractWrapper",
    "CourtParameters",
    "DelegationRegistry",
    "DevToken",
    "FederationContract",
    "FederationRecord",
    "MarketParameters",
    "NodeRegions",
    "ProofState",
    "ProposalRecord",
    "ProposalStatus",
    "ProposalTerms",
    "Quote",
    "ResultCommitment",
    "ResultCourt",
    "StakeholderRecord",
    "StakeholderRegistry",
    "TrainingMarket",
    "region_name",
    "sorted_key_nodes",
]


def region_name(name: str | bytes) -> bytes:
    """A region name as the contracts store it: UTF-8, right-padded to 32 bytes."""
    raw = name.encode() if isinstance(name, str) else name
    if not raw or len(raw) > 32:
        raise InvalidInputError(f"region name {name!r} must have 1 to 32 bytes")
    return raw.ljust(32, b"\0")


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
    #: a federation's regional nodes (empty for a node): the market's view of a proposal's
    #: node when it is a federation; the other fields are then its coordinator's
    members: tuple[ComputeNodeRecord, ...] = ()

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

    # --- federations (docs/federation.md) ---------------------------------------------------
    def node_regions(self, node: str) -> NodeRegions:
        """The market's view of ``node``, a compute node or a federation."""
        fn = self._contract.functions.nodeRegions(to_checksum_address(node))
        active, mask, signer = self.client.call(fn)
        return NodeRegions(bool(active), int(mask), address_or_none(signer))

    def register_federation(
        self, coordinator: LocalAccount, federation: str, members: Sequence[str]
    ) -> TxResult:
        fn = self._contract.functions.registerFederation(
            to_checksum_address(federation), [to_checksum_address(m) for m in members]
        )
        return self.client.transact(coordinator, fn, action="registerFederation")

    def join_federation(self, member: LocalAccount, federation: str) -> TxResult:
        fn = self._contract.functions.joinFederation(to_checksum_address(federation))
        return self.client.transact(member, fn, action="joinFederation")

    def federation_of(self, federation: str) -> FederationRecord:
        checksum = to_checksum_address(federation)
        coordinator, members, joined = self.client.call(
            self._contract.functions.federationOf(checksum)
        )
        return FederationRecord(
            Address(checksum),
            address_or_none(coordinator),
            tuple(Address(to_checksum_address(m)) for m in members),
            int(joined),
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
    region_mask: int
    metadata_hash: bytes
    key_nodes_hash: bytes


def sorted_key_nodes(nodes: Sequence[str]) -> list[str]:
    """Key-holding nodes in the order the registry commits them: ascending, no repeats."""
    unique = {to_checksum_address(n) for n in nodes}
    return sorted(unique, key=lambda a: int(a, 16))


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
        key_nodes: Sequence[str],
        manifest_cid: str,
    ) -> tuple[AssetId, TxResult]:
        """Register an asset; returns its id (read from the ``AssetRegistered`` event).
        ``key_nodes`` are the compute nodes the manifest wraps the data key for: only they may
        attest it."""
        fn = self._contract.functions.registerAsset(
            manifest_hash,
            samples_root,
            sample_count,
            [region_name(r) for r in allowed_regions],
            sorted_key_nodes(key_nodes),
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
        key_nodes: Sequence[str] | None = None,
    ) -> TxResult:
        """Attest as one of the asset's key holders (read from its registration event when
        ``key_nodes`` is not given)."""
        if key_nodes is None:
            # an unknown asset has no holders: the contract then names the real problem
            events = self.logs("AssetRegistered", where={"assetId": asset_id})
            key_nodes = list(events[0]["args"]["keyNodes"]) if events else []
        holders = sorted_key_nodes(key_nodes)
        fn = self._contract.functions.attestMetadata(
            asset_id, metadata_hash, accepted_count, metadata_cid, holders
        )
        return self.client.transact(node, fn, action="attestMetadata")

    def key_nodes(self, asset_id: int) -> list[str]:
        """The nodes holding a wrapped key for ``asset_id``, as registered."""
        events = self.logs("AssetRegistered", where={"assetId": asset_id})
        if not events:
            raise InvalidInputError(f"asset {asset_id} has no AssetRegistered event")
        return [to_checksum_address(a) for a in events[0]["args"]["keyNodes"]]

    def withdraw_asset(self, owner: LocalAccount, asset_id: int) -> TxResult:
        fn = self._contract.functions.withdrawAsset(asset_id)
        return self.client.transact(owner, fn, action="withdrawAsset")

    def asset(self, asset_id: int) -> AssetRecord:
        (owner, status, count, accepted, day, manifest, mask, metadata, holders) = self.client.call(
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
            int(mask),
            bytes(metadata),
            bytes(holders),
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
        return address_or_none(self.client.call(fn))

    def delegate_at(self, account: str, timestamp: int) -> Address | None:
        fn = self._contract.functions.delegateAt(to_checksum_address(account), timestamp)
        return address_or_none(self.client.call(fn))

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
