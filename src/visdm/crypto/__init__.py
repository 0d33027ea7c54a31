"""Cryptography for ViSDM: what keeps raw data sovereign and every message attributable.

Design sections 3.1, 3.2 and 5 ask for four things, each one function pair here:

* **blob encryption** — :func:`encrypt_blob` / :func:`decrypt_blob`: XChaCha20-Poly1305 with the
  sample index as associated data, under a random per-asset :func:`generate_data_key`;
* **key wrapping** — :func:`wrap_key` / :func:`unwrap_key`: the data key sealed (libsodium
  sealed box) to each allowed compute node's and the provider's own X25519 key;
* **encryption identity** — :func:`derive_x25519_keypair`: the X25519 key derived from the
  account's secp256k1 secret with HKDF-SHA256 and the label :data:`X25519_KDF_INFO`, so one
  backed-up secret restores both keys;
* **signatures** — :func:`sign_typed` / :func:`verify_typed`: EIP-712 typed data bound to an
  :class:`Eip712Domain` (name, version, chain id, verifying contract).

Every failure is a :class:`~visdm.errors.VisdmError`: malformed input is
``InvalidInputError``, a malformed ciphertext ``CiphertextFormatError``, a wrong key or altered
bytes ``DecryptionError``, a bad signature ``SignatureError``. No libsodium or eth-account
exception escapes, and decryption never returns unauthenticated bytes.
"""

from ._aead import (
    BLOB_HEADER,
    BLOB_OVERHEAD,
    DATA_KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    decrypt_blob,
    encrypt_blob,
    generate_data_key,
)
from ._eip712 import (
    SIGNATURE_BYTES,
    Eip712Domain,
    Eip712Types,
    recover_typed,
    sign_typed,
    typed_data_hash,
    verify_typed,
)
from ._hkdf import hkdf_sha256
from ._x25519 import (
    WRAPPED_KEY_BYTES,
    X25519_KDF_INFO,
    X25519KeyPair,
    derive_x25519_keypair,
    unwrap_key,
    wrap_key,
)

__all__ = [
    "BLOB_HEADER",
    "BLOB_OVERHEAD",
    "DATA_KEY_BYTES",
    "NONCE_BYTES",
    "SIGNATURE_BYTES",
    "TAG_BYTES",
    "WRAPPED_KEY_BYTES",
    "X25519_KDF_INFO",
    "Eip712Domain",
    "Eip712Types",
    "X25519KeyPair",
    "decrypt_blob",
    "derive_x25519_keypair",
    "encrypt_blob",
    "generate_data_key",
    "hkdf_sha256",
    "recover_typed",
    "sign_typed",
    "typed_data_hash",
    "unwrap_key",
    "verify_typed",
    "wrap_key",
]
