"""What a proposal selects: sample ids resolved from public manifests, and their Merkle root.

``selectionRoot`` on chain is the OpenZeppelin StandardMerkleTree root over the leaves
``(uint256 assetId, uint256 index, bytes32 sampleId)`` of every selected sample. Consumer and
node both compute it from the public manifests, so a node can prove to itself that the sample
list it was handed is the one the providers voted on, and a provider can later prove that one
of its samples was in a round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from visdm.chain.contracts import AssetRecord, AssetRegistry
from visdm.errors import InvalidProposalError
from visdm.jsonsafe import load_untrusted_object
from visdm.manifest import MAX_MANIFEST_BYTES, AssetManifest, privacy_refusal, verify_manifest
from visdm.merkle import StandardMerkleTree
from visdm.storage import ContentStore
from visdm.types import Address, Cid

from ._document import SelectedAsset

__all__ = [
    "SELECTION_LEAF",
    "PublicAsset",
    "SelectedSample",
    "accepted_indexes",
    "asset_refusal",
    "licence_refusal",
    "load_public_asset",
    "resolve_selection",
    "selection_root",
]

SELECTION_LEAF = ("uint256", "uint256", "bytes32")
#: a metadata document larger than this is not read (about 1 KiB per sample)
MAX_METADATA_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class PublicAsset:
    """An asset's on-chain record with its verified manifest and attested metadata."""

    record: AssetRecord
    manifest: AssetManifest
    metadata: dict[str, Any] | None  # the node's metadata document, once attested


@dataclass(frozen=True, slots=True)
class SelectedSample:
    asset_id: int
    index: int
    sample_id: bytes
    cid: Cid
    label: str
    owner: Address


def load_public_asset(
    assets: AssetRegistry, store: ContentStore, asset_id: int, *, chain_id: int
) -> PublicAsset:
    """Fetch and verify an asset's manifest (owner's signature and on-chain hash) and, when
    attested, its metadata document (keccak checked against the attested hash)."""
    record = assets.asset(asset_id)
    if record.owner == Address("0x" + "0" * 40) or asset_id <= 0:
        raise InvalidProposalError(f"asset {asset_id} does not exist")
    (registered,) = assets.logs("AssetRegistered", where={"assetId": asset_id})[:1] or (None,)
    if registered is None:
        raise InvalidProposalError(f"asset {asset_id} has no AssetRegistered event")
    parsed = verify_manifest(
        store.get(registered["args"]["manifestCid"], max_bytes=MAX_MANIFEST_BYTES),
        chain_id=chain_id,
        registry=assets.address,
    )
    if parsed.manifest_hash != record.manifest_hash or parsed.manifest.owner != record.owner:
        raise InvalidProposalError(f"asset {asset_id}: its manifest does not match the chain")
    metadata = None
    attested = assets.logs("MetadataAttested", where={"assetId": asset_id})
    if attested:
        raw = store.get(attested[-1]["args"]["metadataCid"], max_bytes=MAX_METADATA_BYTES)
        if keccak(raw) != record.metadata_hash:
            raise InvalidProposalError(
                f"asset {asset_id}: its metadata document does not match the attested hash"
            )
        metadata = load_untrusted_object(
            raw,
            what=f"asset {asset_id}'s metadata document",
            max_bytes=MAX_METADATA_BYTES,
            error=InvalidProposalError,
            hint=f"the node {attested[-1]['args']['node']} attested a broken document; leave "
            "the asset out of the selection",
        )
    return PublicAsset(record, parsed.manifest, metadata)


def accepted_indexes(asset: PublicAsset) -> tuple[int, ...]:
    """The samples the node accepted (all of them before attestation)."""
    if asset.metadata is None:
        return tuple(s.index for s in asset.manifest.samples)
    try:
        return tuple(sorted(int(s["index"]) for s in asset.metadata["samples"]))
    except (KeyError, TypeError, ValueError):  # the attesting node's document, not ours
        raise InvalidProposalError(
            f"asset {asset.record.asset_id}'s metadata document does not list its samples' "
            "indexes; leave the asset out of the selection"
        ) from None


def resolve_selection(
    selection: Sequence[SelectedAsset], public: dict[int, PublicAsset]
) -> list[SelectedSample]:
    """The selected samples with their ids, CIDs, labels and owners, in selection order."""
    out = []
    for chosen in selection:
        asset = public.get(chosen.asset_id)
        if asset is None:
            raise InvalidProposalError(f"asset {chosen.asset_id} was not loaded")
        by_index = {s.index: s for s in asset.manifest.samples}
        missing = [i for i in chosen.indexes if i not in by_index]
        if missing:
            raise InvalidProposalError(
                f"asset {chosen.asset_id} has no sample with index "
                + ", ".join(map(str, missing[:5]))
            )
        for i in chosen.indexes:
            entry = by_index[i]
            out.append(
                SelectedSample(
                    chosen.asset_id,
                    i,
                    bytes(entry.sample_id),
                    entry.cid,
                    entry.label,
                    asset.record.owner,
                )
            )
    return out


def selection_root(samples: Sequence[SelectedSample]) -> bytes:
    """The ``selectionRoot`` committed on chain."""
    tree = StandardMerkleTree.of(
        [(s.asset_id, s.index, s.sample_id) for s in samples], SELECTION_LEAF
    )
    return tree.root


def licence_refusal(asset: PublicAsset, consumer: str, now: int) -> str | None:
    """Why the asset's licence does not let ``consumer`` train on it at ``now`` (or ``None``).

    Training needs the purpose ``training``; a denied consumer is refused; a non-empty allow
    list admits only its members; an expired licence admits nobody.
    """
    licence = asset.manifest.licence
    who = str(consumer).lower()
    if "training" not in licence.purposes:
        return f"its licence allows {', '.join(licence.purposes)}, not training"
    if who in {str(a).lower() for a in licence.denied_consumers}:
        return f"its licence denies consumer {consumer}"
    allowed = {str(a).lower() for a in licence.allowed_consumers}
    if allowed and who not in allowed:
        return f"its licence admits only {len(allowed)} named consumer(s), not {consumer}"
    if licence.expires is not None and licence.expires.timestamp() < now:
        return f"its licence expired at {licence.expires.isoformat()}"
    return None


def asset_refusal(
    asset: PublicAsset,
    *,
    consumer: str,
    node: str,
    now: int,
    dp: tuple[float, float] | None,
    training_samples: int,
) -> str | None:
    """Why ``consumer`` may not train on ``asset`` at ``node`` (or ``None``): the asset is the
    consumer's or the node's own (it could vote for itself and be paid for its own data), its
    licence refuses the consumer, or the spec's privacy (``dp`` = (ε, δ) or ``None`` without
    DP, over ``training_samples``) does not meet the licence's terms."""
    owner = str(asset.record.owner).lower()
    if owner == str(consumer).lower():
        return "it is your own asset: a consumer cannot select (and vote and be paid for) its data"
    if owner == str(node).lower():
        return "it belongs to the compute node that would train on it"
    refusal = licence_refusal(asset, consumer, now)
    if refusal is None:
        refusal = privacy_refusal(asset.manifest.licence, dp, training_samples)
    return refusal
