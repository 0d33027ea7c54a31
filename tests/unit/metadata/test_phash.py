"""pHash: bit-for-bit agreement with imagehash.phash on real images, and input checks."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image

from visdm.errors import InvalidInputError
from visdm.metadata import (
    phash,
    phash_batch,
    phash_from_grids,
    phash_from_hex,
    phash_grids,
    phash_to_hex,
)

from ._corpus import corpus

pytestmark = pytest.mark.unit


def _reference(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def test_agrees_with_imagehash_on_a_corpus_of_real_images() -> None:
    images = corpus()
    ours = phash_batch([image for _, image in images])
    reference = np.array([_reference(image) for _, image in images], dtype=np.uint64)
    agree = ours == reference
    rate = float(agree.mean())
    disagreeing = [images[i][0] for i in np.flatnonzero(~agree)]
    print(f"\npHash agreement with imagehash.phash: {rate:.6f} on {len(images)} images")
    assert len(images) >= 6000
    assert rate >= 0.999, f"disagree on {disagreeing[:20]}"


@pytest.mark.parametrize(
    "mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F"]
)
def test_every_pillow_mode_hashes_like_imagehash(mode: str) -> None:
    rng = np.random.default_rng(7)
    base = Image.fromarray(rng.integers(0, 256, (61, 45, 3), dtype=np.uint8))
    image = base.convert(mode) if mode not in ("I;16",) else base.convert("L").convert("I;16")
    assert phash_to_hex(phash(image)) == str(imagehash.phash(image))


def test_extreme_shapes_and_flat_images() -> None:
    rng = np.random.default_rng(3)
    images = [
        Image.new("L", (1, 1), 9),
        Image.new("RGB", (32, 32), (0, 0, 0)),  # all-zero DCT: every bit 0
        Image.new("L", (32, 32), 255),
        Image.fromarray(rng.integers(0, 256, (1, 900), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (900, 2), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)),  # no resize at all
        Image.fromarray(rng.integers(0, 256, (32, 500), dtype=np.uint8)),  # vertical skipped
        Image.fromarray(rng.integers(0, 256, (500, 32), dtype=np.uint8)),  # horizontal skipped
    ]
    ours = phash_batch(images)
    assert [int(h) for h in ours] == [_reference(i) for i in images]
    assert int(ours[1]) == 0


def test_batch_mixes_sizes_and_keeps_order() -> None:
    rng = np.random.default_rng(11)
    images = [
        Image.fromarray(rng.integers(0, 256, (int(h), int(w)), dtype=np.uint8))
        for h, w in rng.integers(20, 90, size=(40, 2))
    ]
    images += images[:5]  # same sizes again, later in the batch
    ours = phash_batch(images)
    assert [int(h) for h in ours] == [_reference(i) for i in images]
    assert [int(h) for h in ours] == [int(phash(i)) for i in images]


def test_decoded_jpeg_round_trip_matches() -> None:
    rng = np.random.default_rng(5)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 80, 3), dtype=np.uint8)).save(buffer, "JPEG")
    image = Image.open(io.BytesIO(buffer.getvalue()))
    assert phash_to_hex(phash(image)) == str(imagehash.phash(image))


def test_grids_are_pillows_lanczos_resize() -> None:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
    expected = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(phash_grids([image])[0], expected)


def test_empty_batch() -> None:
    assert phash_batch([]).shape == (0,)
    assert phash_from_grids(np.zeros((0, 32, 32), dtype=np.uint8)).shape == (0,)


def test_hex_round_trip() -> None:
    assert phash_to_hex(0xFEDCBA9876543210) == "fedcba9876543210"
    assert phash_from_hex("fedcba9876543210") == 0xFEDCBA9876543210
    assert phash_to_hex(1) == "0000000000000001"


@pytest.mark.parametrize(
    "text", ["", "0x00000000000001", "+000000000000001", "0_00000000000001", "xyz", "1" * 17]
)
def test_bad_hex_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="16 hex digits"):
        phash_from_hex(text)


@pytest.mark.parametrize("value", [-1, 1 << 64, True, 1.5])
def test_bad_hash_values_are_refused(value: object) -> None:
    with pytest.raises(InvalidInputError, match="pHash"):
        phash_to_hex(value)  # type: ignore[arg-type]


def test_non_images_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"PIL\.Image\.Image, got bytes"):
        phash(b"\x89PNG")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="empty 0x5 image"):
        phash(Image.new("L", (0, 5)))


def test_bad_grids_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"\(N, 32, 32\) uint8.*float64 \(2, 32, 32\)"):
        phash_from_grids(np.zeros((2, 32, 32)))
    with pytest.raises(InvalidInputError, match=r"uint8 \(2, 16, 16\)"):
        phash_from_grids(np.zeros((2, 16, 16), dtype=np.uint8))
