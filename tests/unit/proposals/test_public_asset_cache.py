"""Loading public assets reads the chain record every time, but a verified manifest and
metadata document once per hash: a round's checks cost one call per asset after the first."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from visdm.chain.contracts import AssetRecord, AssetStatus
from visdm.errors import InvalidProposalError
from visdm.manifest import (
    AssetManifest,
    Licence,
    Location,
    ManifestKey,
    ManifestSample,
    manifest_hash,
    sign_manifest,
)
from visdm.merkle import StandardMerkleTree
from visdm.proposals import PublicAssetCache, load_public_asset
from visdm.storage import MemoryStore, compute_cid
from visdm.types import AssetId

pytestmark = pytest.mark.unit

CHAIN_ID = 31337
REGISTRY = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
OWNER = Account.from_key(keccak(text="visdm-cache-test/owner"))
NODE = Account.from_key(keccak(text="visdm-cache-test/node"))


class Registry:
    """The two things :func:`load_public_asset` asks the AssetRegistry, counted."""

    address = REGISTRY

    def __init__(self, records: dict[int, AssetRecord], events: dict[str, list[Any]]) -> None:
        self.records, self.events = records, events
        self.calls = {"asset": 0, "logs": 0}

    def asset(self, asset_id: int) -> AssetRecord:
        self.calls["asset"] += 1
        return self.records[asset_id]

    def logs(self, name: str, *, where: dict[str, Any]) -> list[Any]:
        self.calls["logs"] += 1
        return [e for e in self.events.get(name, []) if e["args"]["assetId"] == where["assetId"]]


def _asset(store: MemoryStore, asset_id: int, *, metadata: bytes) -> tuple[AssetRecord, list[Any]]:
    samples = tuple(
        ManifestSample(i, compute_cid(f"{asset_id}/{i}".encode()), "cat") for i in range(3)
    )
    manifest = AssetManifest(
        owner=OWNER.address,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        samples=samples,
        samples_root=StandardMerkleTree.of([(s.sample_id,) for s in samples], ("bytes32",)).root,
        keys=(
            ManifestKey("owner", OWNER.address, bytes(32), bytes(80)),
            ManifestKey("node", NODE.address, bytes(range(32)), bytes(80)),
        ),
        location=Location(("local",), (NODE.address,)),
        licence=Licence(("training",)),
    )
    signed = sign_manifest(manifest, bytes(OWNER.key), chain_id=CHAIN_ID, registry=REGISTRY)
    record = AssetRecord(
        AssetId(asset_id),
        OWNER.address,
        AssetStatus.ACTIVE,
        3,
        3,
        0,
        manifest_hash(manifest),
        1,
        keccak(metadata),
        bytes(32),
    )
    events = [
        {"args": {"assetId": asset_id, "manifestCid": store.put(signed)}},
        {"args": {"assetId": asset_id, "metadataCid": store.put(metadata), "node": "0x1"}},
    ]
    return record, events


@pytest.fixture
def market() -> tuple[Registry, MemoryStore]:
    store = MemoryStore()
    records, registered, attested = {}, [], []
    for asset_id in (1, 2):
        record, (reg, att) = _asset(store, asset_id, metadata=b'{"samples":[]}')
        records[asset_id] = record
        registered.append(reg)
        attested.append(att)
    return Registry(records, {"AssetRegistered": registered, "MetadataAttested": attested}), store


def test_a_second_load_reads_only_the_record(market: tuple[Registry, MemoryStore]) -> None:
    registry, store = market
    cache = PublicAssetCache()
    first = [load_public_asset(registry, store, a, chain_id=CHAIN_ID, cache=cache) for a in (1, 2)]
    assert registry.calls == {"asset": 2, "logs": 4}
    for _ in range(3):  # the consumer, the quote API and the worker
        again = [
            load_public_asset(registry, store, a, chain_id=CHAIN_ID, cache=cache) for a in (1, 2)
        ]
        assert again == first
    assert registry.calls == {"asset": 8, "logs": 4}
    assert (cache.hits, cache.misses) == (12, 4)
    # without a cache every load reads the events again
    load_public_asset(registry, store, 1, chain_id=CHAIN_ID, cache=None)
    assert registry.calls["logs"] == 6


def test_a_new_attestation_or_status_is_seen(market: tuple[Registry, MemoryStore]) -> None:
    registry, store = market
    cache = PublicAssetCache()
    load_public_asset(registry, store, 1, chain_id=CHAIN_ID, cache=cache)
    # withdrawn since: the record is read every time
    registry.records[1] = replace(registry.records[1], status=AssetStatus.WITHDRAWN)
    loaded = load_public_asset(registry, store, 1, chain_id=CHAIN_ID, cache=cache)
    assert loaded.record.status == AssetStatus.WITHDRAWN
    # attested again with another document: a new hash, read and checked again
    document = b'{"samples":[{"index":0}]}'
    registry.events["MetadataAttested"].append(
        {"args": {"assetId": 1, "metadataCid": store.put(document), "node": "0x1"}}
    )
    registry.records[1] = replace(registry.records[1], metadata_hash=keccak(document))
    assert load_public_asset(registry, store, 1, chain_id=CHAIN_ID, cache=cache).metadata == {
        "samples": [{"index": 0}]
    }


def test_a_document_that_fails_its_check_is_never_kept(
    market: tuple[Registry, MemoryStore],
) -> None:
    registry, store = market
    cache = PublicAssetCache()
    registry.records[2] = replace(registry.records[2], metadata_hash=keccak(b"other"))
    for _ in range(2):
        with pytest.raises(InvalidProposalError, match="asset 2: its metadata document does not"):
            load_public_asset(registry, store, 2, chain_id=CHAIN_ID, cache=cache)
    registry.records[2] = replace(registry.records[2], manifest_hash=keccak(b"other"))
    with pytest.raises(InvalidProposalError, match="asset 2: its manifest does not match"):
        load_public_asset(registry, store, 2, chain_id=CHAIN_ID, cache=cache)


def test_the_cache_keeps_at_most_its_bytes(market: tuple[Registry, MemoryStore]) -> None:
    registry, store = market
    cache = PublicAssetCache(max_bytes=2_000)  # about one signed manifest and a document
    for asset_id in (1, 2, 1):
        load_public_asset(registry, store, asset_id, chain_id=CHAIN_ID, cache=cache)
    assert cache.hits == 0  # asset 2 pushed asset 1 out
    cache.clear()
    load_public_asset(registry, store, 1, chain_id=CHAIN_ID, cache=cache)
    assert cache.misses == 8
