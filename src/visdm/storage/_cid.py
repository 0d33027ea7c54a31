"""CIDs: parse, validate and print them without a multiformats dependency.

ViSDM only ever writes two kinds of block — ``raw`` leaves and ``dag-pb`` UnixFS nodes, both
hashed with sha2-256 — so this module understands exactly those and refuses everything else
with an :class:`~visdm.errors.InvalidCidError` that names the input. The canonical text form
(the :data:`~visdm.types.Cid` type) is CIDv1 in lower-case base32 (``bafk…`` / ``bafy…``), which
is what ``ipfs add --cid-version=1`` prints. CIDv0 (``Qm…``) and base58btc CIDv1 (``z…``) are
accepted on input and converted, because other IPFS tools print those.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from visdm.errors import InvalidCidError
from visdm.types import Cid

__all__ = [
    "CODEC_DAG_PB",
    "CODEC_RAW",
    "SHA2_256",
    "DecodedCid",
    "cid_digest",
    "decode_cid",
    "encode_varint",
    "make_cid",
    "parse_cid",
    "read_varint",
]

#: multicodec of a raw block (the bytes themselves)
CODEC_RAW = 0x55
#: multicodec of a dag-pb (protobuf merkledag) block
CODEC_DAG_PB = 0x70
#: multihash code of sha2-256
SHA2_256 = 0x12
_DIGEST_BYTES = 32
_CODEC_NAMES = {CODEC_RAW: "raw", CODEC_DAG_PB: "dag-pb"}
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {c: i for i, c in enumerate(_BASE58_ALPHABET)}
_MAX_CID_CHARS = 200  # a sha2-256 CIDv1 is 59 characters; anything huge is not ours


@dataclass(frozen=True, slots=True)
class DecodedCid:
    """The parts of a CID: version, content codec and the sha2-256 digest."""

    version: int
    codec: int
    digest: bytes

    @property
    def codec_name(self) -> str:
        return _CODEC_NAMES[self.codec]

    @property
    def multihash(self) -> bytes:
        return bytes((SHA2_256, _DIGEST_BYTES)) + self.digest

    def to_bytes(self) -> bytes:
        """The binary CIDv1 (what dag-pb links carry)."""
        return bytes((1,)) + encode_varint(self.codec) + self.multihash

    def to_cid(self) -> Cid:
        """The canonical text form: CIDv1, multibase ``b`` (lower-case base32, no padding)."""
        text = base64.b32encode(self.to_bytes()).decode("ascii").rstrip("=").lower()
        return Cid("b" + text)


def make_cid(codec: int, data: bytes) -> Cid:
    """The CIDv1 of one block: ``codec`` over the sha2-256 of ``data``."""
    return DecodedCid(1, codec, hashlib.sha256(data).digest()).to_cid()


def parse_cid(text: str) -> Cid:
    """Check that ``text`` is a CID ViSDM can serve and return its canonical form.

    Accepts CIDv1 in base32 (either case) or base58btc, and CIDv0 (``Qm…``), with a ``raw`` or
    ``dag-pb`` codec and a sha2-256 multihash. Raises :class:`InvalidCidError` otherwise.
    """
    return decode_cid(text).to_cid()


def cid_digest(cid: str) -> bytes:
    """The 32-byte sha2-256 digest inside ``cid`` (ViSDM's sample id for a ciphertext's CID)."""
    return decode_cid(cid).digest


def decode_cid(text: str) -> DecodedCid:
    """Split a CID string into its parts; see :func:`parse_cid` for what is accepted."""
    if not isinstance(text, str):
        raise InvalidCidError(f"a CID must be a string, not {type(text).__name__}: {text!r}")
    if not text or len(text) > _MAX_CID_CHARS or text != text.strip():
        raise InvalidCidError(f"{text!r} is not a CID: expected a string like 'bafkrei…'")
    if len(text) == 46 and text.startswith("Qm"):
        return _decode_v0(text, _base58_decode(text, text))
    prefix, body = text[0], text[1:]
    if prefix in "bB":
        raw = _base32_decode(body, text)
    elif prefix == "z":
        raw = _base58_decode(body, text)
    else:
        raise InvalidCidError(
            f"{text!r} is not a CID ViSDM understands: its multibase prefix {prefix!r} is not "
            "'b' (base32) or 'z' (base58btc), and it is not a CIDv0 ('Qm…')"
        )
    return _decode_v1(raw, text)


def _decode_v0(text: str, raw: bytes) -> DecodedCid:
    if len(raw) != 34 or raw[0] != SHA2_256 or raw[1] != _DIGEST_BYTES:
        raise InvalidCidError(f"{text!r} is not a valid CIDv0: not a sha2-256 multihash")
    return DecodedCid(1, CODEC_DAG_PB, raw[2:])


def _decode_v1(raw: bytes, text: str) -> DecodedCid:
    try:
        version, pos = read_varint(raw, 0)
        codec, pos = read_varint(raw, pos)
        hash_code, pos = read_varint(raw, pos)
        length, pos = read_varint(raw, pos)
    except ValueError as exc:
        raise InvalidCidError(f"{text!r} is not a valid CID: {exc}") from None
    if version != 1:
        raise InvalidCidError(f"{text!r} is not a valid CID: version {version} (expected 1)")
    if codec not in _CODEC_NAMES:
        raise InvalidCidError(
            f"{text!r} has codec 0x{codec:x}; ViSDM stores only raw (0x55) and dag-pb (0x70) blocks"
        )
    if hash_code != SHA2_256 or length != _DIGEST_BYTES:
        raise InvalidCidError(
            f"{text!r} uses hash 0x{hash_code:x} of {length} bytes; ViSDM only uses sha2-256 "
            "(re-add the content with the default hash)"
        )
    digest = raw[pos:]
    if len(digest) != _DIGEST_BYTES:
        raise InvalidCidError(
            f"{text!r} is not a valid CID: the digest has {len(digest)} bytes, expected 32 "
            "(truncated or padded?)"
        )
    return DecodedCid(1, codec, digest)


def _base32_decode(body: str, text: str) -> bytes:
    if not body or not body.isascii():
        raise InvalidCidError(f"{text!r} is not a CID: empty or non-ASCII base32")
    upper = body.upper()
    if upper != body and body.lower() != body:
        raise InvalidCidError(f"{text!r} is not a CID: base32 of mixed case")
    try:
        raw = base64.b32decode(upper + "=" * (-len(upper) % 8))
    except (binascii.Error, ValueError):
        raise InvalidCidError(f"{text!r} is not a CID: invalid base32") from None
    # b32decode ignores non-zero padding bits; a canonical encoding has none.
    if base64.b32encode(raw).decode("ascii").rstrip("=") != upper:
        raise InvalidCidError(f"{text!r} is not a CID: non-canonical base32")
    return raw


def _base58_decode(body: str, text: str) -> bytes:
    if not body:
        raise InvalidCidError(f"{text!r} is not a CID: empty base58btc")
    number = 0
    for char in body:
        value = _BASE58_INDEX.get(char)
        if value is None:
            raise InvalidCidError(f"{text!r} is not a CID: {char!r} is not a base58btc character")
        number = number * 58 + value
    zeros = len(body) - len(body.lstrip("1"))
    return b"\x00" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as used by multiformats and protobuf."""
    if value < 0:
        raise ValueError(f"varint of a negative number: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a minimal unsigned LEB128 at ``pos``; return the value and the next position."""
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and pos - start > 1:
                raise ValueError("varint is not minimally encoded")
            return value, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint longer than 64 bits")
