"""The whole off-chain registration: provider validates, encrypts, writes and signs; a compute
node verifies, unwraps, decrypts, describes and links — without any service running."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from visdm.crypto import unwrap_key
from visdm.errors import DecryptionError
from visdm.ingest import decode_image, decrypt_sample
from visdm.manifest import ManifestSample, sign_manifest, verify_manifest
from visdm.merkle import StandardMerkleTree
from visdm.metadata import (
    AssetMetadata,
    DuplicateLink,
    HammingIndex,
    SampleMetadata,
    describe_images,
)
from visdm.types import SampleId

from ._fixtures import CHAIN_ID, REGISTRY, World, build, x25519

pytestmark = pytest.mark.unit


def _node_side(world: World, signed: bytes, index: HammingIndex[SampleId]) -> AssetMetadata:
    parsed = verify_manifest(signed, chain_id=CHAIN_ID, registry=REGISTRY)
    manifest = parsed.manifest
    node = world.nodes[1]
    data_key = unwrap_key(manifest.key_for(node.address).wrapped, x25519(node).private)
    images, sizes, formats, accepted, rejected = [], [], [], [], []
    for sample in manifest.samples:
        try:
            plain = decrypt_sample(world.store, sample.cid, index=sample.index, data_key=data_key)
        except DecryptionError as exc:
            rejected.append((sample.index, str(exc)))
            continue
        decoded = decode_image(plain, name=f"sample {sample.index}")
        images.append(decoded.image)
        sizes.append(decoded.byte_size)
        formats.append(decoded.format)
        accepted.append(sample)
    described = describe_images(images, byte_sizes=sizes, formats=formats)
    samples = tuple(
        SampleMetadata(s.index, s.sample_id, s.label, d)
        for s, d in zip(accepted, described, strict=True)
    )
    links = index.link([s.sample_id for s in samples], [d.phash for d in described])
    return AssetMetadata(
        manifest_hash=parsed.manifest_hash,
        samples=samples,
        links=tuple(DuplicateLink(a, b, d) for a, b, d in links),
        rejected=tuple(rejected),
    )


def test_provider_to_node(tmp_path: Path) -> None:
    world = build(tmp_path, n=6)
    signed = sign_manifest(
        world.manifest, bytes(world.owner.key), chain_id=CHAIN_ID, registry=REGISTRY
    )
    index: HammingIndex[SampleId] = HammingIndex()
    meta = _node_side(world, signed, index)
    assert [s.index for s in meta.samples] == list(range(6))
    assert [s.label for s in meta.samples] == ["Shirt", "Bag"] * 3
    assert all(
        s.image.format == "PNG" and (s.image.width, s.image.height) == (12, 10)
        for s in meta.samples
    )
    assert meta.rejected == ()
    assert meta.links == ()  # six unrelated random images
    assert len(index) == 6


def test_a_blob_sealed_for_another_index_is_rejected_not_fatal(tmp_path: Path) -> None:
    """A (malicious) provider swaps two samples' CIDs in an otherwise valid, signed manifest:
    each blob still matches its CID, but its AEAD was bound to the other index."""
    world = build(tmp_path, n=3)
    m = world.manifest
    swapped = (
        ManifestSample(0, m.samples[1].cid, m.samples[0].label),
        ManifestSample(1, m.samples[0].cid, m.samples[1].label),
        m.samples[2],
    )
    root = StandardMerkleTree.of([(s.sample_id,) for s in swapped], ["bytes32"]).root
    world.manifest = replace(m, samples=swapped, samples_root=root)
    signed = sign_manifest(
        world.manifest, bytes(world.owner.key), chain_id=CHAIN_ID, registry=REGISTRY
    )
    meta = _node_side(world, signed, HammingIndex())
    assert [s.index for s in meta.samples] == [2]
    assert [i for i, _ in meta.rejected] == [0, 1]
    assert all("wrong associated data" in reason for _, reason in meta.rejected)
    assert b'"rejected":[{"index":0' in meta.to_json()
