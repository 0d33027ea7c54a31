"""Which SuperNode keys a coordinator registers: those of the nodes the proposal names, each
bound by the node's on-chain signer and checked against the node registry.

A regional node signs its SuperNode public key with its signer account (EIP-191 personal
message over :func:`binding_message`: chain id, proposal id, node address, region, key), and the
signed binding goes into the proposal's federation. Before the round the coordinator checks
every binding (:func:`check_named_nodes`): the signature recovers to the signer the
``StakeholderRegistry`` holds for that node, the node is admitted and not suspended, its region
is the one it claims and one of the round's, and no region or key appears twice. Only the keys
that pass are registered with the SuperLink; a binding for another proposal or chain is refused,
so a key cannot be replayed into a round its node never joined.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address

from visdm.chain.contracts import ComputeNodeRecord
from visdm.errors import NodeNotInFederationError

__all__ = [
    "NamedNode",
    "NodeRegistry",
    "binding_message",
    "check_named_nodes",
    "sign_supernode_key",
    "write_public_keys",
]

_MAX_KEY_BYTES = 1024


class NodeRegistry(Protocol):
    """What the check reads from ``StakeholderRegistry`` (its wrapper has both)."""

    def compute_node(self, node: str) -> ComputeNodeRecord: ...

    def regions(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class NamedNode:
    """One regional node of a federation, as the proposal names it."""

    node: str
    region: str
    public_key: bytes  # OpenSSH encoding, as flwr supernode register reads it
    signature: bytes


def binding_message(
    *, chain_id: int, proposal_id: int, node: str, region: str, public_key: bytes
) -> bytes:
    """The bytes a node's signer signs to bind its SuperNode key to one proposal's round."""
    return (
        f"visdm federation SuperNode key\nchain {chain_id}\nproposal {proposal_id}\n"
        f"node {to_checksum_address(node)}\nregion {region}\nkey "
    ).encode() + public_key.strip()


def sign_supernode_key(
    signer: LocalAccount,
    *,
    node: str,
    region: str,
    public_key: bytes,
    proposal_id: int,
    chain_id: int,
) -> NamedNode:
    """The node's side: sign its SuperNode key for the round of ``proposal_id``."""
    message = binding_message(
        chain_id=chain_id, proposal_id=proposal_id, node=node, region=region, public_key=public_key
    )
    signed = signer.sign_message(encode_defunct(primitive=message))
    return NamedNode(to_checksum_address(node), region, public_key.strip(), bytes(signed.signature))


def check_named_nodes(
    named: Sequence[NamedNode],
    *,
    registry: NodeRegistry,
    proposal_id: int,
    chain_id: int,
    regions: Iterable[str],
) -> list[bytes]:
    """The SuperNode keys to register, one per region of the round; the first binding that
    fails raises :class:`NodeNotInFederationError` saying which node and why."""
    wanted = set(regions)
    region_names = registry.regions()
    seen_regions: set[str] = set()
    seen_keys: set[bytes] = set()
    keys: list[bytes] = []
    for entry in named:
        who = f"node {entry.node} for region {entry.region!r}"
        if entry.region not in wanted:
            raise NodeNotInFederationError(f"{who}: the round has no such region")
        if entry.region in seen_regions or entry.public_key in seen_keys:
            raise NodeNotInFederationError(f"{who}: its region or key is named twice")
        if not entry.public_key.startswith(b"ecdsa-sha2-nistp") or (
            len(entry.public_key) > _MAX_KEY_BYTES
        ):
            raise NodeNotInFederationError(f"{who}: the key is not an OpenSSH NIST EC public key")
        record = registry.compute_node(entry.node)
        if not record.active:
            raise NodeNotInFederationError(
                f"{who}: not an active admitted compute node on chain (admitted="
                f"{record.admitted}, suspended={record.suspended})"
            )
        on_chain = region_names[record.region] if record.region < len(region_names) else None
        if on_chain != entry.region:
            raise NodeNotInFederationError(
                f"{who}: the registry puts this node in region {on_chain!r}"
            )
        message = binding_message(
            chain_id=chain_id,
            proposal_id=proposal_id,
            node=entry.node,
            region=entry.region,
            public_key=entry.public_key,
        )
        if len(entry.signature) != 65:
            raise NodeNotInFederationError(
                f"{who}: the signature is {len(entry.signature)} bytes, not 65"
            )
        try:
            signer = Account.recover_message(
                encode_defunct(primitive=message), signature=entry.signature
            )
        except (BadSignature, ValueError) as err:
            raise NodeNotInFederationError(f"{who}: the signature is malformed ({err})") from None
        if signer != record.signer:
            raise NodeNotInFederationError(
                f"{who}: the key was signed by {signer}, not by the node's signer "
                f"{record.signer} (or for another proposal or chain)"
            )
        seen_regions.add(entry.region)
        seen_keys.add(entry.public_key)
        keys.append(entry.public_key)
    return keys


def write_public_keys(directory: Path, keys: Sequence[bytes]) -> list[Path]:
    """The accepted keys as files, what :class:`~visdm.federation.Federation` registers."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, key in enumerate(keys):
        path = directory / f"named-{i}.pub"
        path.write_bytes(key + b"\n")
        paths.append(path)
    return paths
