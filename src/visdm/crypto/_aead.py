"""Per-blob authenticated encryption: XChaCha20-Poly1305-IETF (libsodium, through PyNaCl).

Why this construction: the 192-bit nonce is large enough to draw at random for every blob
under one data key without a birthday-bound worry, and the AEAD binds *associated data* (the
sample index, design section 3.2) so that a ciphertext moved to another position in an asset
fails to decrypt instead of being silently relabelled.

Envelope (all lengths in bytes)::

    +-------------+---------+------------------------------+
    | magic  (3)  | ver (1) | nonce (24) | ciphertext+tag  |
    | b"VSD"      | 0x01    |  random    | len(pt) + 16    |
    +-------------+---------+------------------------------+

The header lets a reader tell a ViSDM blob from anything else and leaves room for a future
algorithm; the AEAD's associated data is exactly the caller's ``aad`` (the header is checked
byte for byte, not authenticated, since any other header is refused before decryption).
"""

from __future__ import annotations

import nacl.exceptions
import nacl.utils
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_ABYTES,
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
)

from visdm.errors import CiphertextFormatError, DecryptionError, InvalidInputError

__all__ = [
    "BLOB_HEADER",
    "BLOB_OVERHEAD",
    "DATA_KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "decrypt_blob",
    "encrypt_blob",
    "generate_data_key",
]

#: length of a data key (XChaCha20-Poly1305 key)
DATA_KEY_BYTES: int = crypto_aead_xchacha20poly1305_ietf_KEYBYTES  # 32
#: length of the random nonce stored in every blob
NONCE_BYTES: int = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
#: length of the Poly1305 tag
TAG_BYTES: int = crypto_aead_xchacha20poly1305_ietf_ABYTES  # 16
#: magic and version byte that open every encrypted blob
BLOB_HEADER: bytes = b"VSD\x01"
#: bytes a blob adds to its plaintext
BLOB_OVERHEAD: int = len(BLOB_HEADER) + NONCE_BYTES + TAG_BYTES


def generate_data_key() -> bytes:
    """A fresh random 256-bit data key from the operating system's CSPRNG (via libsodium)."""
    return nacl.utils.random(DATA_KEY_BYTES)


def encrypt_blob(key: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` under ``key``, binding ``aad``; returns the envelope above.

    A new random nonce is drawn for every call, so encrypting the same bytes twice gives two
    different envelopes.
    """
    _check_key(key)
    _check_bytes("plaintext", plaintext)
    _check_bytes("aad", aad)
    nonce = nacl.utils.random(NONCE_BYTES)
    try:
        sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(
            bytes(plaintext), bytes(aad), nonce, key
        )
    except nacl.exceptions.CryptoError as exc:  # only for inputs beyond libsodium's size limit
        raise InvalidInputError(f"cannot encrypt a {len(plaintext)}-byte blob: {exc}") from None
    return BLOB_HEADER + nonce + sealed


def decrypt_blob(key: bytes, ciphertext: bytes, *, aad: bytes) -> bytes:
    """Open an envelope made by :func:`encrypt_blob` with the same ``key`` and ``aad``.

    Raises :class:`~visdm.errors.CiphertextFormatError` when the bytes are not an envelope (too
    short, wrong magic or version) and :class:`~visdm.errors.DecryptionError` when the key or
    ``aad`` is wrong or any byte was changed. No partial plaintext is ever returned.
    """
    _check_key(key)
    _check_bytes("aad", aad)
    if not isinstance(ciphertext, bytes | bytearray | memoryview):
        raise CiphertextFormatError(f"ciphertext must be bytes, got {type(ciphertext).__name__}")
    blob = bytes(ciphertext)
    if len(blob) < BLOB_OVERHEAD:
        raise CiphertextFormatError(
            f"ciphertext is {len(blob)} bytes, shorter than the {BLOB_OVERHEAD}-byte minimum of "
            "a ViSDM blob: it was truncated or is not a ViSDM blob"
        )
    header = blob[: len(BLOB_HEADER)]
    if header[:3] != BLOB_HEADER[:3]:
        raise CiphertextFormatError(
            f"ciphertext does not start with ViSDM's magic {BLOB_HEADER[:3]!r} "
            f"(found {header[:3]!r}): it is not a ViSDM blob"
        )
    if header != BLOB_HEADER:
        raise CiphertextFormatError(
            f"ciphertext has envelope version {header[3]}, this ViSDM reads only version "
            f"{BLOB_HEADER[3]}: upgrade ViSDM"
        )
    nonce = blob[len(BLOB_HEADER) : len(BLOB_HEADER) + NONCE_BYTES]
    sealed = blob[len(BLOB_HEADER) + NONCE_BYTES :]
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, bytes(aad), nonce, key)
    except nacl.exceptions.CryptoError:
        raise DecryptionError(
            "blob does not decrypt: wrong data key, wrong associated data (sample index), "
            "or the ciphertext was modified"
        ) from None


def _check_key(key: object) -> None:
    if not isinstance(key, bytes):
        raise InvalidInputError(f"data key must be bytes, got {type(key).__name__}")
    if len(key) != DATA_KEY_BYTES:
        raise InvalidInputError(
            f"data key must be {DATA_KEY_BYTES} bytes, got {len(key)}: "
            "use generate_data_key() or unwrap_key()"
        )


def _check_bytes(what: str, value: object) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInputError(f"{what} must be bytes, got {type(value).__name__}")
