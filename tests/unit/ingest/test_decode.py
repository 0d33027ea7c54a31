"""decode_image: what is accepted, and a named reason for everything that is not."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile

from visdm.errors import InvalidImageError, InvalidInputError
from visdm.ingest import ImageLimits, decode_image, sniff_format

from ._files import animated, image_bytes, png_with_header_size

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_allowed_formats_decode_fully(fmt: str) -> None:
    data = image_bytes(fmt, size=(13, 7))
    decoded = decode_image(data, name="x")
    assert (decoded.format, decoded.width, decoded.height) == (fmt, 13, 7)
    assert decoded.byte_size == len(data)
    assert decoded.image.getpixel((0, 0)) is not None  # loaded: no file handle needed


@pytest.mark.parametrize(("fmt", "named"), [("GIF", "GIF"), ("TIFF", "TIFF"), ("PDF", "PDF")])
def test_disallowed_formats_are_named(fmt: str, named: str) -> None:
    with pytest.raises(InvalidImageError, match=f"^cat.img: {named} files are not accepted"):
        decode_image(image_bytes(fmt), name="cat.img")


def test_a_narrower_format_list_refuses_jpeg() -> None:
    limits = ImageLimits(formats=frozenset({"PNG"}))
    with pytest.raises(
        InvalidImageError, match=r"^a\.jpg: JPEG files are not accepted \(allowed: PNG\)"
    ):
        decode_image(image_bytes("JPEG"), name="a.jpg", limits=limits)


def test_non_images_and_empty_files() -> None:
    with pytest.raises(InvalidImageError, match=r"^notes\.txt: not an image Pillow can identify"):
        decode_image(b"hello, this is text", name="notes.txt")
    with pytest.raises(InvalidImageError, match=r"^e\.png: empty file"):
        decode_image(b"", name="e.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_truncated_files_are_refused(fmt: str) -> None:
    data = image_bytes(fmt, size=(64, 64))
    with pytest.raises(
        InvalidImageError, match=r"^t\.bin: (corrupt or truncated|a corrupt|not an image)"
    ):
        decode_image(data[: len(data) * 2 // 3], name="t.bin")


def test_png_with_a_bad_crc_is_refused() -> None:
    data = bytearray(image_bytes("PNG", size=(32, 32)))
    data[-20] ^= 0xFF  # inside the IDAT/IEND region
    with pytest.raises(InvalidImageError, match=r"^crc\.png: corrupt or truncated PNG file"):
        decode_image(bytes(data), name="crc.png")


def test_pixel_limit_is_checked_before_decoding() -> None:
    data = png_with_header_size(8000, 6000)  # 48 MP claimed, a few bytes of pixels
    with pytest.raises(
        InvalidImageError,
        match=r"^big\.png: 8000x6000 = 48000000 pixels is over the 40000000-pixel limit",
    ):
        decode_image(data, name="big.png")
    small = ImageLimits(max_pixels=100)
    with pytest.raises(InvalidImageError, match="over the 100-pixel limit"):
        decode_image(image_bytes("PNG", size=(11, 10)), name="s.png", limits=small)


@pytest.mark.parametrize(("w", "h"), [(10_000, 10_000), (100_000, 100_000)])
def test_pillow_bomb_guards_are_reported_as_bombs(w: int, h: int) -> None:
    """Over Pillow's warning (89 MP) and error (179 MP) thresholds; our limit raised so that
    Pillow's own check is what fires."""
    limits = ImageLimits(max_pixels=10**11)
    with pytest.raises(InvalidImageError, match=r"^bomb\.png: decompression bomb refused"):
        decode_image(png_with_header_size(w, h), name="bomb.png", limits=limits)


def test_oversized_file_is_refused() -> None:
    limits = ImageLimits(max_file_bytes=100)
    with pytest.raises(InvalidImageError, match=r"^f\.png: file is .* over the 100-byte limit"):
        decode_image(image_bytes("PNG", size=(40, 40)), name="f.png", limits=limits)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_are_refused(fmt: str) -> None:
    with pytest.raises(InvalidImageError, match=f"^anim: animated {fmt} with 2 frames"):
        decode_image(animated(fmt), name="anim")


def test_zero_width_header_is_refused() -> None:
    with pytest.raises(InvalidImageError, match=r"^z\.png"):
        decode_image(png_with_header_size(0, 5), name="z.png")


def test_load_truncated_images_must_be_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(InvalidInputError, match="LOAD_TRUNCATED_IMAGES is True"):
        decode_image(image_bytes("PNG"), name="x")


def test_limits_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="max_pixels must be a positive integer"):
        ImageLimits(max_pixels=0)
    with pytest.raises(InvalidInputError, match=r"subset of .*got \['GIF'\]"):
        ImageLimits(formats=frozenset({"GIF"}))
    with pytest.raises(InvalidInputError, match="image data must be bytes, got str"):
        decode_image("not bytes", name="x")  # type: ignore[arg-type]


def test_sniffing_is_only_a_guess() -> None:
    assert sniff_format(b"GIF89a....") == "GIF"
    assert sniff_format(b"\x89PNG\r\n\x1a\n") == "PNG"
    assert sniff_format(b"nothing") is None


def test_the_decoded_image_matches_pillow() -> None:
    data = image_bytes("PNG", size=(9, 9), seed=4)
    expected = Image.open(io.BytesIO(data))
    assert decode_image(data).image.tobytes() == expected.tobytes()
