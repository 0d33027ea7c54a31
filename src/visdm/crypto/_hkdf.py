"""HKDF-SHA256 (RFC 5869), written out because the project does not depend on ``cryptography``.

It is twenty lines over :mod:`hmac` and is checked against the RFC's own test vectors
(``tests/unit/crypto/test_hkdf.py``), so there is no reason to pull in a large dependency for it.
"""

from __future__ import annotations

import hashlib
import hmac

from visdm.errors import InvalidInputError

__all__ = ["hkdf_sha256"]

_HASH_LEN = hashlib.sha256().digest_size  # 32
_MAX_LENGTH = 255 * _HASH_LEN


def hkdf_sha256(ikm: bytes, *, info: bytes, length: int = 32, salt: bytes = b"") -> bytes:
    """Derive ``length`` bytes from input keying material ``ikm`` (RFC 5869, section 2).

    ``salt`` defaults to the empty string, which RFC 5869 section 2.2 defines as ``HashLen``
    zero bytes. ``info`` is the context label that separates one use of ``ikm`` from another.
    """
    if not 1 <= length <= _MAX_LENGTH:
        raise InvalidInputError(f"HKDF-SHA256 output length {length} is not in 1..{_MAX_LENGTH}")
    # Extract: PRK = HMAC-Hash(salt, IKM); an empty salt is HashLen zeros (RFC 5869, 2.2).
    prk = hmac.new(salt or bytes(_HASH_LEN), ikm, hashlib.sha256).digest()
    # Expand: T(i) = HMAC-Hash(PRK, T(i-1) | info | i), OKM = first `length` bytes of T(1)|T(2)...
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]
