"""The account's X25519 encryption key, and data-key wrapping with libsodium sealed boxes.

Why derive instead of generate: design section 3.1 wants one secret to back up both identities.
The X25519 private key is ``HKDF-SHA256(ikm=secp256k1 secret, salt="", info=X25519_KDF_INFO,
L=32)``. HKDF with a fixed, versioned label makes the two keys independent in practice (the
X25519 key reveals nothing usable about the signing key) while staying deterministic: the same
Ethereum secret always gives the same X25519 key pair, on any machine and in any language that
has HKDF. Changing the label changes every encryption key, so it carries a version.

Why sealed boxes: a data key is wrapped for a recipient (a compute node, or the provider
itself) who only needs to publish one X25519 public key. ``crypto_box_seal`` uses a fresh
ephemeral sender key per wrap, so wraps are anonymous and unlinkable, and the format (32-byte
ephemeral public key + box) is libsodium's, readable by any libsodium binding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.exceptions
from nacl.bindings import (
    crypto_box_PUBLICKEYBYTES,
    crypto_box_seal,
    crypto_box_seal_open,
    crypto_box_SEALBYTES,
    crypto_box_SECRETKEYBYTES,
    crypto_scalarmult_base,
)

from visdm.errors import CiphertextFormatError, DecryptionError, InvalidInputError

from ._aead import DATA_KEY_BYTES
from ._hkdf import hkdf_sha256

__all__ = [
    "WRAPPED_KEY_BYTES",
    "X25519_KDF_INFO",
    "X25519KeyPair",
    "derive_x25519_keypair",
    "unwrap_key",
    "wrap_key",
]

#: HKDF ``info`` label for the account's X25519 key; never change it without a new version
X25519_KDF_INFO: bytes = b"visdm/x25519-encryption-key/v1"
#: length of a wrapped data key: ephemeral public key (32) + MAC (16) + key (32)
WRAPPED_KEY_BYTES: int = crypto_box_SEALBYTES + DATA_KEY_BYTES

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True, slots=True)
class X25519KeyPair:
    """An X25519 key pair; ``private`` is kept out of ``repr`` so it never reaches a log."""

    public: bytes
    private: bytes = field(repr=False)

    @classmethod
    def from_private(cls, private: bytes) -> X25519KeyPair:
        """The pair for a 32-byte private scalar (libsodium clamps it when used)."""
        _check_len("X25519 private key", private, crypto_box_SECRETKEYBYTES)
        return cls(public=crypto_scalarmult_base(bytes(private)), private=bytes(private))


def derive_x25519_keypair(secp256k1_secret: bytes) -> X25519KeyPair:
    """Derive the account's X25519 key pair from its 32-byte secp256k1 secret (deterministic)."""
    _check_len("secp256k1 secret", secp256k1_secret, 32)
    if not 0 < int.from_bytes(secp256k1_secret, "big") < _SECP256K1_N:
        raise InvalidInputError("secp256k1 secret is out of range (0 or >= the curve order)")
    private = hkdf_sha256(bytes(secp256k1_secret), info=X25519_KDF_INFO, length=32)
    return X25519KeyPair.from_private(private)


def wrap_key(data_key: bytes, recipient_public: bytes) -> bytes:
    """Seal ``data_key`` to ``recipient_public`` (an X25519 public key); only its owner unwraps."""
    _check_len("data key", data_key, DATA_KEY_BYTES)
    _check_len("recipient X25519 public key", recipient_public, crypto_box_PUBLICKEYBYTES)
    try:
        return crypto_box_seal(bytes(data_key), bytes(recipient_public))
    except nacl.exceptions.CryptoError:
        # libsodium refuses low-order points (the shared secret would be all zeros).
        raise InvalidInputError(
            f"recipient key {bytes(recipient_public).hex()} is not a usable X25519 public key"
        ) from None


def unwrap_key(wrapped: bytes, recipient_private: bytes) -> bytes:
    """Open a key made by :func:`wrap_key` with the recipient's X25519 private key.

    Raises :class:`~visdm.errors.CiphertextFormatError` when ``wrapped`` has the wrong length
    and :class:`~visdm.errors.DecryptionError` when it was sealed to someone else or modified.
    """
    _check_len("X25519 private key", recipient_private, crypto_box_SECRETKEYBYTES)
    if not isinstance(wrapped, bytes | bytearray | memoryview):
        raise CiphertextFormatError(f"wrapped key must be bytes, got {type(wrapped).__name__}")
    if len(wrapped) != WRAPPED_KEY_BYTES:
        raise CiphertextFormatError(
            f"wrapped key is {len(wrapped)} bytes, expected {WRAPPED_KEY_BYTES}: "
            "it was truncated or is not a sealed data key"
        )
    private = bytes(recipient_private)
    public = crypto_scalarmult_base(private)
    try:
        return crypto_box_seal_open(bytes(wrapped), public, private)
    except nacl.exceptions.CryptoError:
        raise DecryptionError(
            "wrapped key does not open: it was sealed to another recipient's key, or modified"
        ) from None


def _check_len(what: str, value: object, length: int) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInputError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) != length:
        raise InvalidInputError(f"{what} must be {length} bytes, got {len(value)}")
