"""HKDF-SHA256 against RFC 5869 appendix A (test cases 1-3) and an independent implementation."""

from __future__ import annotations

import pytest
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.crypto import hkdf_sha256
from visdm.errors import InvalidInputError

pytestmark = pytest.mark.unit

RFC5869_SHA256 = [
    # (IKM, salt, info, L, OKM), RFC 5869 A.1, A.2, A.3
    (
        b"\x0b" * 22,
        bytes(range(0x0D)),
        bytes(range(0xF0, 0xFA)),
        42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(0x50)),
        bytes(range(0x60, 0xB0)),
        bytes(range(0xB0, 0x100)),
        82,
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        b"\x0b" * 22,
        b"",
        b"",
        42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "okm"), RFC5869_SHA256)
def test_rfc5869_vectors(ikm: bytes, salt: bytes, info: bytes, length: int, okm: str) -> None:
    assert hkdf_sha256(ikm, salt=salt, info=info, length=length).hex() == okm


@settings(derandomize=True, max_examples=100, database=None)
@given(
    ikm=st.binary(max_size=80),
    salt=st.binary(min_size=1, max_size=80),
    info=st.binary(max_size=80),
    length=st.integers(min_value=1, max_value=255 * 32),
)
def test_matches_pycryptodome(ikm: bytes, salt: bytes, info: bytes, length: int) -> None:
    expected = HKDF(ikm, length, salt, SHA256, context=info)
    assert hkdf_sha256(ikm, salt=salt, info=info, length=length) == expected


@pytest.mark.parametrize("length", [0, -1, 255 * 32 + 1])
def test_length_out_of_range(length: int) -> None:
    with pytest.raises(InvalidInputError, match="output length"):
        hkdf_sha256(b"ikm", info=b"", length=length)
