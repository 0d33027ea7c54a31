"""The training proposal document: round trip, hashing, signatures and hostile input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from eth_account import Account

from visdm.crypto import derive_x25519_keypair, generate_data_key, unwrap_key
from visdm.errors import (
    DecryptionError,
    InvalidInputError,
    InvalidProposalError,
    SignatureError,
)
from visdm.proposals import (
    SelectedAsset,
    TrainingProposal,
    ValidationSetRef,
    open_validation_set,
    pack_arrays,
    parse_proposal,
    proposal_hash,
    seal_validation_set,
    sign_proposal,
    unpack_arrays,
    verify_proposal,
    write_proposal,
)
from visdm.training import canonical_spec_json, parse_model_spec, spec_hash
from visdm.types import Address, Cid

CONSUMER = Account.from_key(b"\x11" * 32)
OTHER = Account.from_key(b"\x22" * 32)
NODE = Account.from_key(b"\x33" * 32)
MARKET = "0x" + "ab" * 20
CID = Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
SPEC = parse_model_spec(
    {
        "architecture": "mlp",
        "input_shape": [1, 28, 28],
        "num_classes": 3,
        "epochs": 1,
        "batch_size": 8,
        "optimizer": "sgd",
        "learning_rate": 0.1,
    }
)


def make(**changes: object) -> TrainingProposal:
    from eth_utils.address import to_checksum_address

    base = TrainingProposal(
        chain_id=31337,
        market=Address(to_checksum_address(MARKET)),
        consumer=Address(CONSUMER.address),
        node=Address(NODE.address),
        created_at=1_700_000_000,
        offer=10**18,
        wtp_bps=8000,
        voting_deadline=1_700_003_600,
        classes=("cat", "dog", "bird"),
        model_spec_json=canonical_spec_json(SPEC),
        model_spec_hash=spec_hash(SPEC),
        validation=ValidationSetRef(CID, b"\x01" * 32, 30, b"\x02" * 80),
        selection=(SelectedAsset(1, (0, 1, 5)), SelectedAsset(4, (2,))),
        selection_root=b"\x03" * 32,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def signed(p: TrainingProposal | None = None) -> bytes:
    return sign_proposal(p or make(), bytes(CONSUMER.key))


def test_round_trip_and_verify() -> None:
    data = signed()
    parsed = verify_proposal(data, chain_id=31337, market=MARKET)
    assert parsed.proposal == make()
    assert parsed.proposal_hash == proposal_hash(make())
    assert parsed.proposal.sample_counts == (3, 1)
    assert parse_proposal(write_proposal(make())).signature is None
    shared = make(min_share_bps=2500)
    assert verify_proposal(signed(shared), chain_id=31337, market=MARKET).proposal == shared
    assert proposal_hash(shared) != proposal_hash(make())
    with pytest.raises(InvalidProposalError, match="minShareBps"):
        make(min_share_bps=10_001)


def test_hash_ignores_formatting_but_not_content() -> None:
    data = signed()
    reformatted = data.replace(b"\n  ", b"\n      ").replace(b"<classes>", b"<!-- hi --><classes>")
    assert parse_proposal(reformatted).proposal_hash == parse_proposal(data).proposal_hash
    verify_proposal(reformatted, chain_id=31337, market=MARKET)
    edited = data.replace(b'wtpBps="8000"', b'wtpBps="1000"')
    with pytest.raises(SignatureError):
        verify_proposal(edited, chain_id=31337, market=MARKET)


def test_signature_is_bound_to_consumer_chain_and_market() -> None:
    with pytest.raises(SignatureError, match="not to the proposal's consumer"):
        sign_proposal(make(), bytes(OTHER.key))
    data = signed()
    with pytest.raises(SignatureError, match="chain 1"):
        verify_proposal(data, chain_id=1, market=MARKET)
    with pytest.raises(SignatureError, match="not 0x"):
        verify_proposal(data, chain_id=31337, market="0x" + "cd" * 20)
    with pytest.raises(SignatureError, match="not signed"):
        verify_proposal(write_proposal(make()), chain_id=31337, market=MARKET)
    # a signature lifted onto another consumer's document does not verify
    other = make(consumer=Address(OTHER.address))
    forged = write_proposal(other, signature=parse_proposal(data).signature)
    with pytest.raises(SignatureError):
        verify_proposal(forged, chain_id=31337, market=MARKET)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
            "<!DOCTYPE> is refused",
        ),
        (b'<?xml version="1.0" encoding="UTF-16"?><x/>', "only UTF-8"),
        (b"\xff\xfe<x/>", "not valid UTF-8"),
        (b"<trainingProposal", "not well-formed"),
        (b'<x xmlns="urn:other"/>', "does not match the training-proposal schema"),
    ],
)
def test_hostile_or_malformed_documents_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidProposalError, match=message):
        parse_proposal(payload)


def test_oversized_document_is_refused_unread() -> None:
    with pytest.raises(InvalidProposalError, match="over the 100-byte limit"):
        parse_proposal(signed(), max_bytes=100)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.replace(b'count="3"', b'count="4"'), "count=4 but lists 3"),
        (lambda d: d.replace(b'wtpBps="8000"', b'wtpBps="10001"'), "schema"),
        (lambda d: d.replace(b">0 1 5<", b">0 x 5<"), "schema"),
        (
            lambda d: d.replace(CONSUMER.address.encode(), CONSUMER.address.lower().encode()),
            "not an EIP-55 checksummed address",
        ),
        (lambda d: d.replace(b">0 1 5<", b">5 1 0<"), "strictly increasing"),
        (lambda d: d.replace(b'"epochs":1', b'"epochs":2'), "modelSpec hash"),
    ],
)
def test_rules_name_the_problem(edit: object, message: str) -> None:
    data = edit(signed())  # type: ignore[operator]
    with pytest.raises(InvalidProposalError, match=message):
        parse_proposal(data)


def test_the_model_refuses_bad_values() -> None:
    with pytest.raises(InvalidProposalError, match="selection is empty"):
        make(selection=())
    with pytest.raises(InvalidProposalError, match="class names repeat"):
        make(classes=("a", "a", "b"))
    with pytest.raises(InvalidProposalError, match=r"class names repeat \(letter case"):
        make(classes=("cat", "Cat", "b"))
    with pytest.raises(InvalidProposalError, match="class names repeat"):
        make(classes=("caf\u00e9", "cafe\u0301", "b"))
    with pytest.raises(InvalidProposalError, match="strictly increasing"):
        make(selection=(SelectedAsset(4, (1,)), SelectedAsset(1, (1,))))


def test_validation_set_is_sealed_to_the_node_and_bound_to_its_hash() -> None:
    images = np.arange(12 * 28 * 28, dtype=np.uint8).reshape(12, 28, 28)
    archive = pack_arrays(images, np.array([0, 1, 2, 1] * 3))
    pair = derive_x25519_keypair(b"\x33" * 32)
    aad = make().validation_aad
    sealed = seal_validation_set(archive, pair.public, aad=aad)
    key = unwrap_key(sealed.wrapped_key, pair.private)
    opened = open_validation_set(sealed.ciphertext, key, sealed.plaintext_hash, aad=aad)
    x, y = unpack_arrays(opened, what="validation")
    assert (x == images).all() and y.tolist() == [0, 1, 2, 1] * 3
    with pytest.raises(InvalidInputError, match="does not match the validationSetHash"):
        open_validation_set(sealed.ciphertext, key, b"\x00" * 32, aad=aad)
    with pytest.raises(DecryptionError):
        open_validation_set(sealed.ciphertext, generate_data_key(), sealed.plaintext_hash, aad=aad)


@pytest.mark.attack
def test_a_sealed_validation_set_cannot_be_reused_by_another_proposal() -> None:
    """Another consumer copies a proposal's validation-set reference (CID, hash, wrapped key)
    into its own proposal to the same node: the node's decryption fails, because the set is
    bound to the proposal it was sealed for (chain, market, consumer, node, selection, spec)."""
    images = np.arange(12 * 28 * 28, dtype=np.uint8).reshape(12, 28, 28)
    archive = pack_arrays(images, np.array([0, 1, 2, 1] * 3))
    node = derive_x25519_keypair(b"\x33" * 32)
    victim = make()
    sealed = seal_validation_set(archive, node.public, aad=victim.validation_aad)
    key = unwrap_key(sealed.wrapped_key, node.private)
    other = Address(Account.from_key(b"\x07" * 32).address)
    for thief in (
        make(consumer=other),
        make(selection_root=b"\x09" * 32),
        make(chain_id=victim.chain_id + 1),
    ):
        assert thief.validation_aad != victim.validation_aad
        with pytest.raises(DecryptionError):
            open_validation_set(
                sealed.ciphertext, key, sealed.plaintext_hash, aad=thief.validation_aad
            )
    # without the binding (the format before it), the reuse went through
    legacy = b"visdm/validation-set/v1"
    unbound = seal_validation_set(archive, node.public, aad=legacy)
    opened = open_validation_set(
        unbound.ciphertext,
        unwrap_key(unbound.wrapped_key, node.private),
        unbound.plaintext_hash,
        aad=legacy,
    )
    assert opened == archive


def test_archives_that_are_not_images_and_labels_are_refused() -> None:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match="not an archive"):
        unpack_arrays(buffer.getvalue(), what="validation set")
    with pytest.raises(InvalidInputError, match="one label per image"):
        unpack_arrays(
            _archive(np.zeros((3, 4, 4), np.uint8), np.zeros(2, np.int64)), what="validation set"
        )
    with pytest.raises(InvalidInputError, match="uint8"):
        pack_arrays(np.zeros((3, 4, 4), np.float32), np.zeros(3, np.int64))  # type: ignore[arg-type]


def _archive(images: np.ndarray, labels: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, images=images, labels=labels)
    return buffer.getvalue()
