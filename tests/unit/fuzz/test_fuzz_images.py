"""Fuzzing the provider's inputs: image files (the one decoder the provider, the node and the
sandbox share) and ``labels.csv``. Images start from valid files of every format and mode and
are damaged where decoders look: headers, chunk lengths, EXIF, the end."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ._harness import fuzz
from ._strategies import HOSTILE_TEXT, mangled
from ._targets import image, image_seed_bytes, labels_csv

pytestmark = pytest.mark.unit


@cache
def seeds() -> tuple[bytes, ...]:
    exif = Image.Exif()
    exif[0x0112] = 6
    sixteen = io.BytesIO()
    Image.frombytes("I;16B", (5, 4), bytes(range(40))).save(sixteen, format="PNG")
    return (
        image_seed_bytes("PNG"),
        image_seed_bytes("PNG", "L"),
        image_seed_bytes("PNG", "P"),
        image_seed_bytes("PNG", "RGBA"),
        image_seed_bytes("PNG", "1"),
        image_seed_bytes("PNG", "RGB", exif=exif),
        sixteen.getvalue(),
        image_seed_bytes("JPEG"),
        image_seed_bytes("JPEG", "L", progressive=True),
        image_seed_bytes("JPEG", "RGB", exif=exif),
        image_seed_bytes("WEBP"),
        image_seed_bytes("WEBP", "RGBA", lossless=True),
        image_seed_bytes("BMP"),
        image_seed_bytes("BMP", "P"),
    )


def png_with(width: int, height: int, depth: int, colour: int, orientation: int) -> bytes:
    """A PNG whose IHDR says anything (CRC fixed, so the decoder believes it), with an eXIf
    chunk holding any orientation."""
    data = bytearray(image_seed_bytes("PNG"))
    data[16:29] = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    return bytes(data[:33]) + chunk + bytes(data[33:])


@fuzz(250)
@given(st.sampled_from(range(14)).flatmap(lambda i: mangled(seeds()[i], max_edits=4)))
def test_damaged_images_of_every_format(data: bytes) -> None:
    image(data)


@fuzz(80)
@given(
    st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 7, 2**16, 2**31, 2**32 - 1])),
    st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 5, 2**16, 2**31])),
    st.sampled_from([0, 1, 2, 4, 8, 16, 3]),
    st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
    st.integers(0, 2**16 - 1),
)
def test_png_headers_that_lie(width: int, height: int, depth: int, colour: int, turn: int) -> None:
    image(png_with(width, height, depth, colour, turn))


@fuzz(40)
@given(st.sampled_from(range(14)), st.binary(min_size=1, max_size=64))
def test_anything_appended_to_a_valid_image(seed: int, tail: bytes) -> None:
    image(seeds()[seed] + tail)


@fuzz(150)
@given(st.binary(max_size=200).map(lambda b: b"\x89PNG\r\n\x1a\n" + b) | st.binary(max_size=200))
def test_random_bytes_behind_a_magic_number(data: bytes) -> None:
    image(data)


# --- labels.csv ------------------------------------------------------------------------------
NAMES = st.one_of(st.sampled_from(["a.png", "dir/b.png", "C.png", "c.png", "A.PNG"]), HOSTILE_TEXT)


def csv_field(text: str, quoting: int) -> str:
    if quoting == 0:
        return text
    if quoting == 1:
        return '"' + text.replace('"', '""') + '"'
    return '"' + text  # an unclosed quote


@st.composite
def labels_files(draw: st.DrawFn) -> bytes:
    header = draw(
        st.sampled_from(["filename,label", "FILENAME , Label", "name,label", "", "a,b,c"])
    )
    rows = draw(
        st.lists(
            st.tuples(NAMES, HOSTILE_TEXT, st.integers(0, 2), st.sampled_from([",", ";", ",,"])),
            max_size=6,
        )
    )
    lines = [header] + [
        csv_field(name, quoting) + sep + csv_field(label, quoting)
        for name, label, quoting, sep in rows
    ]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding, "replace")


@fuzz(200)
@given(labels_files())
def test_labels_files(data: bytes) -> None:
    labels_csv(data)


@fuzz(80)
@given(st.binary(max_size=300) | labels_files().flatmap(mangled))
def test_damaged_labels_files(data: bytes) -> None:
    labels_csv(data)
