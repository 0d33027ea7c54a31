"""Fuzzing validation archives (``read_array_headers``, ``unpack_arrays``) at the structure the
bytes-level fuzz tests cannot reach: archives that are valid zips of well-formed ``.npy``
members whose headers say anything — any dtype, shape, order or version, members missing,
renamed, repeated or deflated. (Byte-level damage and random bytes are fuzzed against the real
sandbox in ``tests/integration/sandbox/test_raw_inputs.py``.)"""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ._harness import fuzz
from ._targets import archive

pytestmark = pytest.mark.unit

DTYPES = ["|u1", "<i8", ">i8", "<u2", "<f8", "|b1", "|O", "<c16", "|S4", "<U2", "V8", "junk"]
SHAPES = st.one_of(
    st.lists(st.integers(0, 70), min_size=0, max_size=5).map(tuple),
    st.sampled_from([(4, 8, 8), (4,), (-1, 8, 8), (2**62, 8, 8), (2**40, 2**40), (4, 1, 8, 8)]),
)


def npy(descr: str, shape: tuple[int, ...], fortran: bool, body: bytes, version: int) -> bytes:
    """A ``.npy`` member written by hand, so that its header may lie about its body."""
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    magic = b"\x93NUMPY" + bytes([version, 0])
    length = 2 if version == 1 else 4
    padded = header + " " * (-(len(magic) + length + len(header) + 1) % 64) + "\n"
    return magic + len(padded).to_bytes(length, "little") + padded.encode("latin-1") + body


@st.composite
def members(draw: st.DrawFn, name: str) -> tuple[str, bytes]:
    # mostly plausible, so that the checks past the zip directory see most inputs
    plausible = ("|u1", (4, 8, 8)) if name == "images" else ("<i8", (4,))
    descr = draw(st.one_of(st.just(plausible[0]), st.sampled_from(DTYPES)))
    shape = draw(st.one_of(st.just(plausible[1]), SHAPES))
    honest = draw(st.booleans())
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if honest and descr not in ("|O", "junk", "V8") and 0 <= count <= 4096:
        size = count * np.dtype(descr).itemsize
        body = draw(st.binary(min_size=size, max_size=size))
    else:
        body = draw(st.binary(max_size=600))
    fortran = draw(st.one_of(st.just(False), st.booleans()))
    member = npy(descr, shape, fortran, body, draw(st.one_of(st.just(1), st.sampled_from([2, 3]))))
    return draw(st.one_of(st.just(name), st.sampled_from([f"{name}.npy", "other.npy"]))), member


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    entries = [draw(members("images")), draw(members("labels"))]
    entries = draw(
        st.one_of(
            st.just(entries),
            st.sampled_from([entries[:1], [*entries, entries[0]], entries[::-1]]),
        )
    )
    buffer = io.BytesIO()
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression=compression) as out:
        warnings.simplefilter("ignore", UserWarning)  # a repeated member is the point
        for name, data in entries:
            out.writestr(name if name.endswith(".npy") else f"{name}.npy", data)
    return buffer.getvalue()


def honest_archive(images: np.ndarray, labels: np.ndarray) -> bytes:
    from visdm.proposals import pack_arrays

    return pack_arrays(images, labels)


@fuzz(200)
@given(archives())
def test_archives_whose_headers_say_anything(data: bytes) -> None:
    archive(data)


@fuzz(60)
@given(
    st.integers(0, 70),
    st.sampled_from([(8, 8), (8, 9), (1, 8, 8), (8, 8, 3)]),
    st.sampled_from([np.int64, np.int32, np.uint8]),
)
def test_honest_archives_of_every_size_and_layout(
    samples: int, shape: tuple[int, ...], label_type: type
) -> None:
    images = np.zeros((samples, *shape), dtype=np.uint8)
    labels = np.arange(samples).astype(label_type)
    archive(honest_archive(images, labels))


def test_every_corrupt_byte_of_a_deflated_member_is_refused_in_one_line() -> None:
    """A corrupt deflate stream met while reading a member's ``.npy`` header raised zlib's own
    error; every byte of the first member's compressed data is damaged in turn here."""
    from visdm.errors import InvalidInputError
    from visdm.proposals._validation import read_array_headers

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("images.npy", npy("|u1", (4, 8, 8), False, bytes(range(256)), 1))
        out.writestr("labels.npy", npy("<i8", (4,), False, bytes(32), 1))
    clean = buffer.getvalue()
    info = zipfile.ZipFile(io.BytesIO(clean)).getinfo("images.npy")
    start = info.header_offset + 30 + len(info.filename)  # the local header, then the data
    refused = 0
    for at in range(start, start + info.compress_size):
        damaged = bytearray(clean)
        damaged[at] ^= 0x5A
        try:
            read_array_headers(bytes(damaged), what="the archive")
        except InvalidInputError as exc:
            assert len(str(exc).splitlines()) == 1
            refused += 1
    assert refused > 0
