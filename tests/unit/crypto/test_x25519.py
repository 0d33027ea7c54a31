"""X25519 key derivation from the account secret, and data-key wrapping with sealed boxes."""

from __future__ import annotations

import pytest
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey, SealedBox

from visdm.crypto import (
    WRAPPED_KEY_BYTES,
    X25519_KDF_INFO,
    X25519KeyPair,
    derive_x25519_keypair,
    generate_data_key,
    unwrap_key,
    wrap_key,
)
from visdm.errors import CiphertextFormatError, DecryptionError, InvalidInputError

pytestmark = pytest.mark.unit

# anvil / hardhat development account 0 (public knowledge, never holds real funds)
ANVIL_0_SECRET = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DATA_KEY = bytes(range(100, 132))


@pytest.fixture
def alice() -> X25519KeyPair:
    return derive_x25519_keypair(ANVIL_0_SECRET)


@pytest.fixture
def bob() -> X25519KeyPair:
    return derive_x25519_keypair((2).to_bytes(32, "big"))


def test_label_is_versioned_and_fixed() -> None:
    assert X25519_KDF_INFO == b"visdm/x25519-encryption-key/v1"


def test_derivation_is_hkdf_with_the_label(alice: X25519KeyPair) -> None:
    # Recompute with an independent HKDF and libsodium's own key class.
    private = HKDF(ANVIL_0_SECRET, 32, b"", SHA256, context=X25519_KDF_INFO)
    assert alice.private == private
    assert alice.public == bytes(PrivateKey(private).public_key)


def test_derivation_is_pinned(alice: X25519KeyPair) -> None:
    # Other implementations (the web UI, other languages) must reproduce this pair; a change in
    # the derivation would orphan every wrapped key, so the exact value is pinned.
    assert alice.public.hex() == PINNED_ANVIL_0_X25519_PUBLIC


def test_deterministic_and_distinct() -> None:
    assert derive_x25519_keypair(ANVIL_0_SECRET) == derive_x25519_keypair(ANVIL_0_SECRET)
    assert derive_x25519_keypair(ANVIL_0_SECRET) != derive_x25519_keypair(bytes(31) + b"\x01")


def test_private_key_not_in_repr(alice: X25519KeyPair) -> None:
    text = repr(alice)
    assert alice.private.hex() not in text
    assert str(alice.private) not in text
    assert "public" in text


@pytest.mark.parametrize(
    "secret",
    [b"", bytes(31), bytes(33), bytes(32), SECP256K1_N.to_bytes(32, "big"), b"\xff" * 32],
    ids=["empty", "short", "long", "zero", "order", "max"],
)
def test_invalid_secret(secret: bytes) -> None:
    with pytest.raises(InvalidInputError, match="secp256k1 secret"):
        derive_x25519_keypair(secret)


def test_wrap_round_trip(alice: X25519KeyPair) -> None:
    wrapped = wrap_key(DATA_KEY, alice.public)
    assert len(wrapped) == WRAPPED_KEY_BYTES == 80
    assert unwrap_key(wrapped, alice.private) == DATA_KEY


def test_wraps_are_randomised(alice: X25519KeyPair) -> None:
    assert wrap_key(DATA_KEY, alice.public) != wrap_key(DATA_KEY, alice.public)


def test_wrap_is_a_standard_libsodium_sealed_box(alice: X25519KeyPair) -> None:
    wrapped = wrap_key(DATA_KEY, alice.public)
    assert SealedBox(PrivateKey(alice.private)).decrypt(wrapped) == DATA_KEY
    foreign = SealedBox(PrivateKey(alice.private).public_key).encrypt(DATA_KEY)
    assert unwrap_key(bytes(foreign), alice.private) == DATA_KEY


def test_unwrap_with_wrong_recipient(alice: X25519KeyPair, bob: X25519KeyPair) -> None:
    wrapped = wrap_key(DATA_KEY, alice.public)
    with pytest.raises(DecryptionError, match="another recipient"):
        unwrap_key(wrapped, bob.private)


@pytest.mark.parametrize("index", [0, 31, 32, 47, 48, 79])
def test_unwrap_tampered(alice: X25519KeyPair, index: int) -> None:
    wrapped = bytearray(wrap_key(DATA_KEY, alice.public))
    wrapped[index] ^= 0x01
    with pytest.raises(DecryptionError):
        unwrap_key(bytes(wrapped), alice.private)


@pytest.mark.parametrize("length", [0, 1, 48, 79, 81])
def test_unwrap_wrong_length(alice: X25519KeyPair, length: int) -> None:
    wrapped = wrap_key(DATA_KEY, alice.public) + b"\x00"
    with pytest.raises(CiphertextFormatError, match="expected 80"):
        unwrap_key(wrapped[:length], alice.private)


def test_unwrap_not_bytes(alice: X25519KeyPair) -> None:
    with pytest.raises(CiphertextFormatError):
        unwrap_key("00" * 80, alice.private)  # type: ignore[arg-type]


def test_wrap_rejects_bad_inputs(alice: X25519KeyPair) -> None:
    with pytest.raises(InvalidInputError, match="data key"):
        wrap_key(DATA_KEY[:31], alice.public)
    with pytest.raises(InvalidInputError, match="public key"):
        wrap_key(DATA_KEY, alice.public[:31])
    with pytest.raises(InvalidInputError, match="private key"):
        unwrap_key(wrap_key(DATA_KEY, alice.public), alice.private + b"\x00")


def test_wrap_rejects_low_order_public_key() -> None:
    with pytest.raises(InvalidInputError, match="not a usable X25519 public key"):
        wrap_key(DATA_KEY, bytes(32))


@settings(derandomize=True, max_examples=50, database=None)
@given(secret=st.integers(1, SECP256K1_N - 1))
def test_property_wrap_unwrap_for_any_account(secret: int) -> None:
    pair = derive_x25519_keypair(secret.to_bytes(32, "big"))
    key = generate_data_key()
    assert unwrap_key(wrap_key(key, pair.public), pair.private) == key


#: derive_x25519_keypair(anvil account 0).public; test_derivation_is_hkdf_with_the_label
#: recomputes the same derivation independently
PINNED_ANVIL_0_X25519_PUBLIC = "715d707f689211eda4a3bc96f49a9cc527f605263befecf4b3c3b08e728ab243"
