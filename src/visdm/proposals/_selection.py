"""What a proposal selects: sample ids resolved from public manifests, and their Merkle root.

``selectionRoot`` on chain is the OpenZeppelin StandardMerkleTree root over the leaves
``(uint256 assetId, uint256 index, bytes32 sampleId)`` of every selected sample. Consumer and
node both compute it from the public manifests, so a node can prove to itself that the sample
list it was handed is the one the providers voted on, and a provider can later prove that one
of its samples was in a round.

Loading a public asset reads its record from the chain every time (status and hashes change),
but the manifest and the metadata document are content the chain commits to by hash: a
process keeps them, verified, in a :class:`PublicAssetCache` keyed by chain, registry, asset
and that hash. A round with 1,000 assets is checked by the consumer, the quote API and the
worker; with the cache each asset costs one call after the first load instead of a call, two
``eth_getLogs`` from block 0, a signature check and a parse each time. A selection is loaded
with :func:`load_public_assets`, which reads the events of every asset the cache lacks in one
``eth_getLogs`` per event and chunk of :data:`EVENTS_PER_QUERY` assets, from the registry's
deployment block, instead of two queries per asset.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
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
    "PublicAssetCache",
    "SelectedSample",
    "accepted_indexes",
    "asset_refusal",
    "licence_refusal",
    "load_public_asset",
    "load_public_assets",
    "resolve_selection",
    "selection_root",
]

SELECTION_LEAF = ("uint256", "uint256", "bytes32")
#: asset ids per ``eth_getLogs`` topic list (providers bound a filter's size)
EVENTS_PER_QUERY = 200
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


_CacheKey = tuple[int, str, int, str, bytes]


class PublicAssetCache:
    """Verified manifests and metadata documents, least recently used first out once their
    raw bytes pass ``max_bytes``. Keys name what the chain committed (chain id, registry,
    asset, hash), so an entry can never stand for other bytes. Thread-safe.

    Cached metadata documents are shared between callers: read them, never change them.
    """

    def __init__(self, *, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[_CacheKey, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: _CacheKey) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: _CacheKey, value: Any, size: int) -> None:
        with self._lock:
            if key in self._entries or size > self.max_bytes:
                return
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def holds(self, key: _CacheKey) -> bool:
        """Whether ``key`` is cached, without counting a hit or a miss."""
        with self._lock:
            return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


#: the process's cache, shared by the consumer, the quote API and the worker
SHARED_CACHE = PublicAssetCache()


def load_public_asset(
    assets: AssetRegistry,
    store: ContentStore,
    asset_id: int,
    *,
    chain_id: int,
    cache: PublicAssetCache | None = SHARED_CACHE,
) -> PublicAsset:
    """Fetch and verify an asset's manifest (owner's signature and on-chain hash) and, when
    attested, its metadata document (keccak checked against the attested hash).

    The record is read from the chain on every call; the manifest and the document come from
    ``cache`` when it holds them for the hashes the record names (``None``: no cache).
    """
    return _load(assets, store, asset_id, assets.asset(asset_id), chain_id=chain_id, cache=cache)


def load_public_assets(
    assets: AssetRegistry,
    store: ContentStore,
    asset_ids: Sequence[int],
    *,
    chain_id: int,
    from_block: int = 0,
    cache: PublicAssetCache | None = SHARED_CACHE,
) -> dict[int, PublicAsset]:
    """:func:`load_public_asset` for a selection: one record call per asset, and the events of
    the assets ``cache`` lacks in one query per event kind and :data:`EVENTS_PER_QUERY` assets,
    from ``from_block`` (the registry's deployment block), instead of two queries per asset."""
    records = {a: assets.asset(a) for a in dict.fromkeys(int(a) for a in asset_ids)}
    for asset_id, record in records.items():
        _require_exists(asset_id, record)
    where = (chain_id, str(assets.address).lower())

    def lacking(kind: str, hash_of: Any) -> list[int]:
        return [
            a
            for a, r in records.items()
            if cache is None or not cache.holds((*where, a, kind, bytes(hash_of(r))))
        ]

    unread = lacking("manifest", lambda r: r.manifest_hash)
    registered = _events_of(assets, "AssetRegistered", unread, from_block)
    unattested = lacking("metadata", lambda r: r.metadata_hash)
    attested = _events_of(assets, "MetadataAttested", unattested, from_block)
    return {
        a: _load(
            assets,
            store,
            a,
            record,
            chain_id=chain_id,
            cache=cache,
            registered=registered.get(a, [])[:1] if a in unread else None,
            attested=attested.get(a, []) if a in unattested else None,
        )
        for a, record in records.items()
    }


def _events_of(
    assets: AssetRegistry, name: str, asset_ids: Sequence[int], from_block: int
) -> dict[int, list[Any]]:
    """``name`` events of ``asset_ids`` by asset, oldest first, a chunk of ids per query."""
    found: dict[int, list[Any]] = {}
    for start in range(0, len(asset_ids), EVENTS_PER_QUERY):
        chunk = list(asset_ids[start : start + EVENTS_PER_QUERY])
        for event in assets.logs(name, from_block=from_block, where={"assetId": chunk}):
            found.setdefault(int(event["args"]["assetId"]), []).append(event)
    return found


def _require_exists(asset_id: int, record: AssetRecord) -> None:
    if record.owner == Address("0x" + "0" * 40) or asset_id <= 0:
        raise InvalidProposalError(f"asset {asset_id} does not exist")


def _load(
    assets: AssetRegistry,
    store: ContentStore,
    asset_id: int,
    record: AssetRecord,
    *,
    chain_id: int,
    cache: PublicAssetCache | None,
    registered: list[Any] | None = None,
    attested: list[Any] | None = None,
) -> PublicAsset:
    """One asset from its ``record``; ``registered`` / ``attested``: its events when already
    read (``None``: queried here if the cache lacks what they name)."""
    _require_exists(asset_id, record)
    where = (chain_id, str(assets.address).lower(), asset_id)
    manifest_key = (*where, "manifest", bytes(record.manifest_hash))
    manifest: AssetManifest | None = None if cache is None else cache.get(manifest_key)
    if manifest is None:
        if registered is None:
            registered = assets.logs("AssetRegistered", where={"assetId": asset_id})[:1]
        if not registered:
            raise InvalidProposalError(f"asset {asset_id} has no AssetRegistered event")
        cid = registered[0]["args"]["manifestCid"]
        raw_manifest = store.get(cid, max_bytes=MAX_MANIFEST_BYTES)
        parsed = verify_manifest(raw_manifest, chain_id=chain_id, registry=assets.address)
        if parsed.manifest_hash != record.manifest_hash or parsed.manifest.owner != record.owner:
            raise InvalidProposalError(f"asset {asset_id}: its manifest does not match the chain")
        manifest = parsed.manifest
        if cache is not None:
            cache.put(manifest_key, manifest, len(raw_manifest))
    metadata_key = (*where, "metadata", bytes(record.metadata_hash))
    metadata: dict[str, Any] | None = None if cache is None else cache.get(metadata_key)
    if metadata is None:
        metadata = _load_metadata(
            assets, store, asset_id, record=record, cache=cache, key=metadata_key, events=attested
        )
    return PublicAsset(record, manifest, metadata)


def _load_metadata(
    assets: AssetRegistry,
    store: ContentStore,
    asset_id: int,
    *,
    record: AssetRecord,
    cache: PublicAssetCache | None,
    key: _CacheKey,
    events: list[Any] | None = None,
) -> dict[str, Any] | None:
    attested = (
        events
        if events is not None
        else assets.logs("MetadataAttested", where={"assetId": asset_id})
    )
    if not attested:
        return None
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
    if cache is not None:
        cache.put(key, metadata, len(raw))
    return metadata


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
