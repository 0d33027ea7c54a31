"""Blob encryption: round trips, the envelope format, and every way a blob can be wrong."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.crypto import (
    BLOB_HEADER,
    BLOB_OVERHEAD,
    DATA_KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    decrypt_blob,
    encrypt_blob,
    generate_data_key,
)
from visdm.errors import CiphertextFormatError, CryptoError, DecryptionError, InvalidInputError

pytestmark = pytest.mark.unit

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
AAD = (7).to_bytes(8, "big")
PLAINTEXT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def flip(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


def test_round_trip() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    assert decrypt_blob(KEY, blob, aad=AAD) == PLAINTEXT


def test_empty_plaintext_and_empty_aad_round_trip() -> None:
    blob = encrypt_blob(KEY, b"", aad=b"")
    assert len(blob) == BLOB_OVERHEAD
    assert decrypt_blob(KEY, blob, aad=b"") == b""


def test_envelope_layout() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    assert blob.startswith(BLOB_HEADER)
    assert BLOB_OVERHEAD == len(BLOB_HEADER) + NONCE_BYTES + TAG_BYTES == 44
    assert len(blob) == len(PLAINTEXT) + BLOB_OVERHEAD
    assert PLAINTEXT not in blob


def test_fresh_nonce_per_call() -> None:
    first = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    second = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    nonce = slice(len(BLOB_HEADER), len(BLOB_HEADER) + NONCE_BYTES)
    assert first[nonce] != second[nonce]
    assert first != second


def test_known_answer_xchacha20poly1305() -> None:
    # draft-irtf-cfrg-xchacha-03, appendix A.3.1, wrapped in ViSDM's envelope.
    key = bytes(range(0x80, 0xA0))
    nonce = bytes(range(0x40, 0x58))
    aad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    sealed = bytes.fromhex(
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
        "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
        "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
        "21f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49"
    )
    plaintext = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
        b"for the future, sunscreen would be it."
    )
    assert decrypt_blob(key, BLOB_HEADER + nonce + sealed, aad=aad) == plaintext


def test_generate_data_key() -> None:
    keys = {generate_data_key() for _ in range(8)}
    assert len(keys) == 8
    assert all(len(k) == DATA_KEY_BYTES for k in keys)
    blob = encrypt_blob(next(iter(keys)), b"x", aad=b"")
    assert decrypt_blob(next(iter(keys)), blob, aad=b"") == b"x"


def test_wrong_key() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError, match="wrong data key"):
        decrypt_blob(OTHER_KEY, blob, aad=AAD)


def test_wrong_aad() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError):
        decrypt_blob(KEY, blob, aad=(8).to_bytes(8, "big"))
    with pytest.raises(DecryptionError):
        decrypt_blob(KEY, blob, aad=b"")


def test_tampered_tag() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError):
        decrypt_blob(KEY, flip(blob, len(blob) - 1), aad=AAD)


def test_tampered_nonce() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError):
        decrypt_blob(KEY, flip(blob, len(BLOB_HEADER) + 3), aad=AAD)


def test_tampered_body() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError):
        decrypt_blob(KEY, flip(blob, BLOB_OVERHEAD + 10, bit=7), aad=AAD)


def test_appended_byte() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError):
        decrypt_blob(KEY, blob + b"\x00", aad=AAD)


def test_truncated_by_one_byte_fails_authentication() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError):
        decrypt_blob(KEY, blob[:-1], aad=AAD)


@pytest.mark.parametrize("length", [0, 1, 3, 4, 27, 28, BLOB_OVERHEAD - 1])
def test_truncated_below_envelope_minimum(length: int) -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(CiphertextFormatError, match="truncated"):
        decrypt_blob(KEY, blob[:length], aad=AAD)


def test_wrong_magic() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(CiphertextFormatError, match="not a ViSDM blob"):
        decrypt_blob(KEY, b"XYZ" + blob[3:], aad=AAD)


def test_unknown_version() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, aad=AAD)
    with pytest.raises(CiphertextFormatError, match="version 2"):
        decrypt_blob(KEY, blob[:3] + b"\x02" + blob[4:], aad=AAD)


def test_ciphertext_not_bytes() -> None:
    with pytest.raises(CiphertextFormatError, match="must be bytes"):
        decrypt_blob(KEY, "not bytes", aad=AAD)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33), "k" * 32])
def test_bad_key_length_or_type(key: bytes) -> None:
    with pytest.raises(InvalidInputError, match="data key"):
        encrypt_blob(key, b"x", aad=b"")
    with pytest.raises(InvalidInputError, match="data key"):
        decrypt_blob(key, bytes(BLOB_OVERHEAD), aad=b"")


def test_aad_must_be_bytes() -> None:
    with pytest.raises(InvalidInputError, match="aad"):
        encrypt_blob(KEY, b"x", aad=7)  # type: ignore[arg-type]


@settings(derandomize=True, max_examples=200, database=None)
@given(
    plaintext=st.binary(max_size=2048),
    aad=st.binary(max_size=64),
    key=st.binary(min_size=32, max_size=32),
)
def test_property_round_trip(plaintext: bytes, aad: bytes, key: bytes) -> None:
    assert decrypt_blob(key, encrypt_blob(key, plaintext, aad=aad), aad=aad) == plaintext


@settings(derandomize=True, max_examples=300, database=None)
@given(plaintext=st.binary(max_size=256), aad=st.binary(max_size=16), data=st.data())
def test_property_any_single_bit_flip_is_rejected(
    plaintext: bytes, aad: bytes, data: st.DataObject
) -> None:
    blob = encrypt_blob(KEY, plaintext, aad=aad)
    index = data.draw(st.integers(0, len(blob) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    expected: type[CryptoError] = (
        CiphertextFormatError if index < len(BLOB_HEADER) else DecryptionError
    )
    with pytest.raises(expected):
        decrypt_blob(KEY, flip(blob, index, bit), aad=aad)


@settings(derandomize=True, max_examples=100, database=None)
@given(plaintext=st.binary(min_size=1, max_size=256), data=st.data())
def test_property_any_truncation_is_rejected(plaintext: bytes, data: st.DataObject) -> None:
    blob = encrypt_blob(KEY, plaintext, aad=AAD)
    length = data.draw(st.integers(0, len(blob) - 1), label="length")
    with pytest.raises((CiphertextFormatError, DecryptionError)):
        decrypt_blob(KEY, blob[:length], aad=AAD)
