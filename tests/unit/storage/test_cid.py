"""CID parsing: every accepted spelling, every refusal, and the digest that becomes a sample id."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.errors import InvalidCidError, StorageError
from visdm.storage import cid_digest, compute_cid, parse_cid
from visdm.storage._cid import (
    CODEC_DAG_PB,
    CODEC_RAW,
    DecodedCid,
    decode_cid,
    encode_varint,
    read_varint,
)

from .conformance import MALFORMED

pytestmark = pytest.mark.unit

HELLO_RAW = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
# `ipfs add` of b"hello" as CIDv0 (a dag-pb leaf, no raw leaves), as printed by the Debian
# package ipfs-cid 0.0~git20200813.59cf068-1+b4 (`ipfs_cid hello.txt`):
# {"CIDv0": HELLO_V0, "CIDv1": HELLO_V0_AS_V1}
HELLO_V0 = "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"
HELLO_V0_AS_V1 = "bafybeid3weurg3gvyoi7nisadzolomlvoxoppe2sesktnpvdve3256n5tq"
# the same raw CID as js-ipfs 0.66.1 prints it by default (base58btc)
HELLO_RAW_B58 = "zb2rhZfjRh2FHHB2RkHVEvL2vJnCTcu7kwRqgVsf9gpkLgteo"


def test_raw_cid_is_the_sha256_of_the_bytes() -> None:
    assert compute_cid(b"hello") == HELLO_RAW
    assert cid_digest(HELLO_RAW) == hashlib.sha256(b"hello").digest()
    decoded = decode_cid(HELLO_RAW)
    assert (decoded.version, decoded.codec, decoded.codec_name) == (1, CODEC_RAW, "raw")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (HELLO_RAW, HELLO_RAW),
        (HELLO_RAW.upper(), HELLO_RAW),  # 'B' + upper-case base32
        (HELLO_RAW_B58, HELLO_RAW),
        (HELLO_V0, HELLO_V0_AS_V1),
        (HELLO_V0_AS_V1, HELLO_V0_AS_V1),
    ],
)
def test_parse_cid_canonicalises(text: str, canonical: str) -> None:
    assert parse_cid(text) == canonical


def test_cidv0_is_dag_pb() -> None:
    decoded = decode_cid(HELLO_V0)
    assert decoded.codec == CODEC_DAG_PB
    assert decoded.codec_name == "dag-pb"
    assert cid_digest(HELLO_V0) == cid_digest(HELLO_V0_AS_V1)


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_cids_are_refused_naming_the_input(bad: str) -> None:
    with pytest.raises(InvalidCidError) as info:
        parse_cid(bad)
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, StorageError)


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        (b"\x02\x55\x12\x20" + bytes(32), "version 2"),
        (b"\x01\x71\x12\x20" + bytes(32), "codec 0x71"),
        (b"\x01\x55\x13\x40" + bytes(64), "sha2-256"),
        (b"\x01\x55\x12\x20" + bytes(31), "digest has 31 bytes"),
        (b"\x01\x55\x12\x20" + bytes(33), "digest has 33 bytes"),
        (b"\x01\xd5\x00\x12\x20" + bytes(32), "not minimally encoded"),
        (b"\x01\x55\x12", "truncated varint"),
    ],
)
def test_refusals_say_why(parts: bytes, reason: str) -> None:
    text = "b" + base64.b32encode(parts).decode().rstrip("=").lower()
    with pytest.raises(InvalidCidError, match=reason):
        parse_cid(text)


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidCidError, match="must be a string"):
        parse_cid(b"bafk")  # type: ignore[arg-type]


def test_mixed_case_base32_is_refused() -> None:
    with pytest.raises(InvalidCidError, match="mixed case"):
        parse_cid("b" + HELLO_RAW[1:5].upper() + HELLO_RAW[5:])


@settings(max_examples=200, derandomize=True)
@given(codec=st.sampled_from([CODEC_RAW, CODEC_DAG_PB]), digest=st.binary(min_size=32, max_size=32))
def test_text_form_round_trips(codec: int, digest: bytes) -> None:
    cid = DecodedCid(1, codec, digest).to_cid()
    assert cid.startswith("bafk" if codec == CODEC_RAW else "bafy")
    assert len(cid) == 59
    assert decode_cid(cid) == DecodedCid(1, codec, digest)
    assert parse_cid(cid.upper()) == cid


@settings(max_examples=250, derandomize=True)
@given(text=st.text(max_size=80) | st.from_regex(r"\A[bBzQ][a-zA-Z0-9]{0,70}\Z"))
def test_any_string_parses_or_raises_invalid_cid(text: str) -> None:
    try:
        cid = parse_cid(text)
    except InvalidCidError:
        return
    assert parse_cid(cid) == cid


@settings(max_examples=300, derandomize=True)
@given(value=st.integers(min_value=0, max_value=2**63))
def test_varint_round_trips(value: int) -> None:
    encoded = encode_varint(value)
    assert read_varint(encoded, 0) == (value, len(encoded))


def test_varint_of_negative_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        encode_varint(-1)
