"""The decoder returns what the pixels mean: 16-bit grey scaled (not clipped) to 8 bits, the EXIF
orientation applied, and files that carry bytes past the image's end refused."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from visdm.errors import InvalidImageError
from visdm.ingest import decode_image, validate_directory
from visdm.ingest._trailing import image_end
from visdm.metadata import describe_images

from ._files import image_bytes

pytestmark = pytest.mark.unit

WIDTH = 1024
# 0 … 65535 across the width, four rows: a full-range 16-bit gradient
GRADIENT = np.tile(np.linspace(0, 0xFFFF, WIDTH).round().astype(np.uint16), (4, 1))
ZIP = b"PK\x03\x04" + bytes(26) + b"secret.txt" + b"payload " * 8


def sixteen_bit_png(values: NDArray[np.uint16]) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("I;16B", values.shape[::-1], values.astype(">u2").tobytes()).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


def expected_eight_bits(values: NDArray[np.uint16]) -> NDArray[np.uint8]:
    return np.round(values.astype(np.float64) * 255 / 0xFFFF).astype(np.uint8)


# --- 16-bit grey -----------------------------------------------------------------------------
def test_a_sixteen_bit_gradient_stays_a_gradient() -> None:
    data = sixteen_bit_png(GRADIENT)
    raw = Image.open(io.BytesIO(data))
    assert raw.mode.startswith("I")  # Pillow decodes it as 16-bit grey
    # the damage the decoder avoids: Pillow's own conversion clips everything over 255
    assert np.mean(np.asarray(raw.convert("L")) == 255) > 0.99

    decoded = decode_image(data, name="gradient.png")
    pixels = np.asarray(decoded.image)
    assert decoded.mode == "L" and pixels.dtype == np.uint8
    assert np.array_equal(pixels, expected_eight_bits(GRADIENT))
    row = pixels[0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)
    assert len(np.unique(row)) == 256  # every 8-bit level is used, none lost to clipping
    assert np.mean(pixels == 255) < 0.01


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B", "I"])
def test_every_sixteen_bit_mode_scales_the_same(mode: str) -> None:
    from visdm.ingest._decode import _eight_bit_grey

    if mode == "I":
        image = Image.fromarray(GRADIENT.astype(np.int32))
    else:
        dtype = ">u2" if mode == "I;16B" else "<u2"
        image = Image.frombytes(mode, GRADIENT.shape[::-1], GRADIENT.astype(dtype).tobytes())
    assert image.mode == mode
    assert np.array_equal(np.asarray(_eight_bit_grey(image)), expected_eight_bits(GRADIENT))


def test_the_metadata_of_a_sixteen_bit_image_describes_its_real_brightness() -> None:
    mid_grey = np.full((16, 16), 0x8000, dtype=np.uint16)
    decoded = decode_image(sixteen_bit_png(mid_grey), name="grey.png")
    (meta,) = describe_images([decoded.image])
    assert meta.brightness == pytest.approx(128, abs=1)  # clipped, it read 255


# --- EXIF orientation ------------------------------------------------------------------------
STORED = np.random.default_rng(7).integers(0, 256, (6, 10, 3), dtype=np.uint8)
UPRIGHT = {  # what each EXIF orientation means, as NumPy says it
    1: STORED,
    2: STORED[:, ::-1],
    3: STORED[::-1, ::-1],
    4: STORED[::-1],
    5: STORED.transpose(1, 0, 2),
    6: np.rot90(STORED, -1),
    7: np.rot90(STORED[:, ::-1], -1),
    8: np.rot90(STORED, 1),
}


def with_orientation(fmt: str, orientation: int, **params: object) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(STORED).save(buffer, format=fmt, exif=exif, **params)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_the_exif_orientation_is_applied(fmt: str, orientation: int) -> None:
    params = {"lossless": True} if fmt == "WEBP" else {}
    decoded = decode_image(with_orientation(fmt, orientation, **params), name=f"x.{fmt}")
    want = UPRIGHT[orientation]
    assert np.array_equal(np.asarray(decoded.image), want)
    assert (decoded.height, decoded.width) == want.shape[:2]


def test_a_portrait_phone_photo_comes_out_portrait() -> None:
    # smooth ramps survive JPEG: red grows to the right, green downwards, as stored
    rows, cols = np.mgrid[0:40, 0:64]
    stored = np.stack([cols * 4, rows * 6, np.full_like(rows, 128)], axis=-1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", exif=exif, quality=95)
    decoded = decode_image(buffer.getvalue(), name="phone.jpg")
    assert (decoded.width, decoded.height) == (40, 64)  # stored 64 wide, shown 40 wide
    shown = np.asarray(decoded.image).astype(int)
    assert np.abs(shown - np.rot90(stored, -1).astype(int)).mean() < 3
    assert np.abs(shown - np.rot90(stored, 1).astype(int)).mean() > 30  # not the other turn


def test_an_orientation_value_outside_the_standard_changes_nothing() -> None:
    decoded = decode_image(with_orientation("PNG", 9), name="odd.png")
    assert np.array_equal(np.asarray(decoded.image), STORED)


# --- bytes after the image -------------------------------------------------------------------
def samples() -> dict[str, bytes]:
    return {
        "PNG": image_bytes("PNG"),
        "JPEG": image_bytes("JPEG"),
        "progressive JPEG": image_bytes("JPEG", progressive=True),
        "WEBP": image_bytes("WEBP"),
        "BMP": image_bytes("BMP"),
    }


@pytest.mark.parametrize("kind", sorted(samples()))
def test_a_clean_file_ends_where_its_image_ends(kind: str) -> None:
    data = samples()[kind]
    assert image_end(data, kind.rsplit(maxsplit=1)[-1]) == len(data)
    assert decode_image(data, name="clean").byte_size == len(data)


@pytest.mark.attack
@pytest.mark.parametrize("kind", sorted(samples()))
def test_an_appended_archive_is_refused(kind: str) -> None:
    clean = samples()[kind]
    smuggled = clean + ZIP
    # the defence switched off: the decoder alone opens the file as the picture, trailer and all
    with Image.open(io.BytesIO(smuggled)) as opened:
        opened.load()
        assert opened.size == (12, 10)
    with pytest.raises(InvalidImageError) as refused:
        decode_image(smuggled, name="holiday.png")
    message = str(refused.value)
    assert "\n" not in message
    assert f"{len(ZIP)} byte(s) of a ZIP archive" in message
    assert f"at byte {len(clean):,}" in message and "re-save it" in message


@pytest.mark.parametrize("tail", [b"\x00", b"\xff\xd9", b"\x00\x00\x00\x00IEND\xaeB`\x82"])
def test_any_trailer_is_refused_not_only_an_archive(tail: bytes) -> None:
    for kind, clean in samples().items():
        with pytest.raises(InvalidImageError, match="other data follow the end"):
            decode_image(clean + tail, name=kind)


def test_an_end_marker_inside_a_jpeg_segment_is_not_the_end() -> None:
    # a comment (as an EXIF thumbnail would) holding a whole JPEG's SOI … EOI
    clean = image_bytes("JPEG")
    inner = b"\xff\xd8 thumbnail \xff\xd9"
    data = clean[:2] + b"\xff\xfe" + struct.pack(">H", len(inner) + 2) + inner + clean[2:]
    assert image_end(data, "JPEG") == len(data)
    assert decode_image(data, name="commented.jpg").format == "JPEG"


def test_a_bmp_with_an_embedded_colour_profile_after_its_pixels_is_whole() -> None:
    profile = b"ICC profile bytes"
    data = bytearray(image_bytes("BMP"))
    header = struct.unpack_from("<I", data, 14)[0]
    assert header == 40  # Pillow writes BITMAPINFOHEADER: grow it into a V5 header by hand
    pixels = bytes(data[54:])
    v5 = bytearray(124)
    v5[:40] = data[14:54]
    struct.pack_into("<I", v5, 0, 124)
    struct.pack_into("<I", v5, 56, 0x4D424544)  # PROFILE_EMBEDDED
    struct.pack_into("<II", v5, 112, 124 + len(pixels), len(profile))
    whole = b"BM" + struct.pack("<I4xI", 14 + 124 + len(pixels) + len(profile), 14 + 124)
    whole += bytes(v5) + pixels + profile
    assert image_end(whole, "BMP") == len(whole)
    assert image_end(whole + b"x", "BMP") == len(whole)


def test_validation_names_the_file_with_a_trailer_and_keeps_the_others(tmp_path: Path) -> None:
    (tmp_path / "good.png").write_bytes(image_bytes("PNG", seed=1))
    (tmp_path / "polyglot.png").write_bytes(image_bytes("PNG", seed=2) + ZIP)
    (tmp_path / "labels.csv").write_text("filename,label\ngood.png,cat\npolyglot.png,cat\n")
    report = validate_directory(tmp_path)
    assert [s.name for s in report.accepted] == ["good.png"]
    (rejected,) = report.rejected
    assert rejected.name == "polyglot.png" and "ZIP archive follow the end" in rejected.reason
