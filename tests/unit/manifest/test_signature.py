"""EIP-712 manifest signatures: the owner's, for one chain and one registry, over every byte
that matters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from visdm.crypto import sign_typed
from visdm.errors import SignatureError
from visdm.manifest import (
    MANIFEST_TYPES,
    manifest_domain,
    manifest_hash,
    parse_manifest,
    sign_manifest,
    verify_manifest,
    write_manifest,
)

from ._fixtures import CHAIN_ID, REGISTRY, World, account, build

pytestmark = pytest.mark.unit


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build(tmp_path)


@pytest.fixture
def signed(world: World) -> bytes:
    return sign_manifest(
        world.manifest, bytes(world.owner.key), chain_id=CHAIN_ID, registry=REGISTRY
    )


def test_the_owners_signature_verifies(world: World, signed: bytes) -> None:
    parsed = verify_manifest(signed, chain_id=CHAIN_ID, registry=REGISTRY)
    assert parsed.manifest == world.manifest
    assert parsed.manifest_hash == manifest_hash(world.manifest)
    assert parsed.signature is not None and len(parsed.signature) == 65
    assert verify_manifest(parsed, chain_id=CHAIN_ID, registry=REGISTRY) is parsed


def test_reformatting_keeps_the_signature_valid(signed: bytes) -> None:
    compact = re.sub(rb">\s+<", b"><", signed)
    verify_manifest(compact, chain_id=CHAIN_ID, registry=REGISTRY)


def test_signing_with_someone_elses_key_is_refused(world: World) -> None:
    with pytest.raises(SignatureError, match=f"not to the manifest's owner {world.owner.address}"):
        sign_manifest(
            world.manifest, bytes(world.consumer.key), chain_id=CHAIN_ID, registry=REGISTRY
        )


def test_a_signature_by_the_wrong_key_does_not_verify(world: World) -> None:
    stranger = account("stranger")
    message = {"manifestHash": manifest_hash(world.manifest), "owner": world.manifest.owner}
    forged = sign_typed(
        bytes(stranger.key),
        manifest_domain(CHAIN_ID, REGISTRY),
        MANIFEST_TYPES,
        "AssetManifest",
        message,
    )
    data = write_manifest(world.manifest, signature=forged)
    with pytest.raises(
        SignatureError,
        match=f"signature is not from {world.owner.address} \\(it recovers {stranger.address}\\)",
    ):
        verify_manifest(data, chain_id=CHAIN_ID, registry=REGISTRY)


def test_a_label_changed_after_signing_is_detected(signed: bytes) -> None:
    edited = signed.replace(b'label="Bag"', b'label="Coat"', 1)
    assert edited != signed
    parse_manifest(edited)  # still a well-formed, valid manifest...
    with pytest.raises(SignatureError, match="wrong signer, altered data"):
        verify_manifest(edited, chain_id=CHAIN_ID, registry=REGISTRY)  # ...but not the signed one


@pytest.mark.parametrize(
    "edit",
    [
        lambda x: x.replace(b"<region>eu-west</region>", b"<region>us-east</region>"),
        lambda x: x.replace(b"<purpose>evaluation</purpose>", b"<purpose>commercial</purpose>"),
        lambda x: re.sub(rb"<deniedConsumer>[^<]+</deniedConsumer>", b"", x),
        lambda x: x.replace(b"2026-03-01T00:00:00Z", b"2099-03-01T00:00:00Z"),
        lambda x: x.replace(b"2025-03-01T12:00:00Z", b"2025-03-01T12:00:01Z"),
    ],
)
def test_any_term_edited_after_signing_is_detected(signed: bytes, edit: object) -> None:
    edited = edit(signed)  # type: ignore[operator]
    assert edited != signed
    with pytest.raises(SignatureError):
        verify_manifest(edited, chain_id=CHAIN_ID, registry=REGISTRY)


def test_the_signature_is_bound_to_chain_and_registry(signed: bytes) -> None:
    with pytest.raises(SignatureError, match="on chain 1 at"):
        verify_manifest(signed, chain_id=1, registry=REGISTRY)
    other = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    with pytest.raises(SignatureError, match=f"at {other}"):
        verify_manifest(signed, chain_id=CHAIN_ID, registry=other)


def test_unsigned_and_malformed_signatures(world: World, signed: bytes) -> None:
    with pytest.raises(SignatureError, match="is not signed: it has no <signature>"):
        verify_manifest(write_manifest(world.manifest), chain_id=CHAIN_ID, registry=REGISTRY)
    bad_v = re.sub(rb"([0-9a-f]{2})</signature>", b"00</signature>", signed)
    with pytest.raises(SignatureError, match="v=0, expected 27 or 28"):
        verify_manifest(bad_v, chain_id=CHAIN_ID, registry=REGISTRY)
