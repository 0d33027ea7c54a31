"""The copy hash: its bits follow the image through the dihedral group exactly, its encodings
round-trip, and every bad input is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visdm.datasets import load_fashion_mnist
from visdm.errors import InvalidInputError
from visdm.metadata import (
    COPY_HASH_BITS,
    COPY_HASH_WORDS,
    DIHEDRAL_NAMES,
    copy_hash_from_hex,
    copy_hash_to_hex,
    copy_hash_words,
    copy_probes,
    describe_images,
    dihedral_copy_hashes,
    match_probe,
    transform_image,
)
from visdm.metadata._copyhash import RASTER_SIDE, words_to_bits

pytestmark = pytest.mark.unit

IMAGES, _ = load_fashion_mnist("train", limit=120)


def _hashes(grays: list[np.ndarray]) -> list[int]:
    return [int(p.copy_hash) for p in copy_probes(grays)]


@pytest.mark.parametrize("transform", range(8), ids=DIHEDRAL_NAMES)
def test_a_transformed_image_hashes_to_the_transformed_hash(transform: int) -> None:
    # the sign rules of the DCT make the dihedral group act on the bits exactly, so the hash of
    # a flipped or rotated image is computed from the original's public hash alone
    originals = copy_hash_words(_hashes(list(IMAGES)))
    turned = _hashes([np.ascontiguousarray(transform_image(a, transform)) for a in IMAGES])
    expected = dihedral_copy_hashes(originals)[:, transform]
    assert np.array_equal(copy_hash_words(turned), expected)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L"))


def test_the_group_acts_on_a_non_square_colour_image_too() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (45, 60, 3), dtype=np.uint8)
    rgb[10:30, 20:50] = (250, 40, 10)
    words = copy_hash_words(_hashes([_luma(rgb)]))
    for transform in range(8):
        turned = _luma(transform_image(rgb, transform))
        assert copy_hash_words(_hashes([turned]))[0].tolist() == (
            dihedral_copy_hashes(words)[0, transform].tolist()
        )


def test_a_large_image_under_the_group_stays_close() -> None:
    # shrinking to the raster is not exactly equivariant (Pillow's fixed-point BOX filter), so
    # a large image's transforms are near the transformed hash rather than equal to it
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    rgb[60:200, 100:330] = (30, 200, 90)
    words = copy_hash_words(_hashes([_luma(rgb)]))
    table = dihedral_copy_hashes(words)
    for transform in range(8):
        probe = copy_probes([_luma(transform_image(rgb, transform))])[0]
        assert match_probe(probe, words_to_bits(table[0, transform])) <= 6


def test_the_identity_is_column_zero_and_transforms_compose() -> None:
    words = copy_hash_words(_hashes(list(IMAGES[:20])))
    table = dihedral_copy_hashes(words)
    assert np.array_equal(table[:, 0], words)
    # two mirrors undo each other; four quarter turns are the identity
    assert np.array_equal(dihedral_copy_hashes(table[:, 1])[:, 1], words)
    assert np.array_equal(dihedral_copy_hashes(table[:, 2])[:, 6], words)


def test_hex_and_words_round_trip() -> None:
    values = [*_hashes(list(IMAGES[:30])), 0, (1 << COPY_HASH_BITS) - 1, 1 << 105, 1]
    words = copy_hash_words(values)
    assert words.shape == (len(values), COPY_HASH_WORDS)
    for value, row in zip(values, words, strict=True):
        text = copy_hash_to_hex(value)
        assert len(text) == COPY_HASH_BITS // 4
        assert copy_hash_from_hex(text) == value
        bits = words_to_bits(row)
        assert int("".join("1" if b else "0" for b in bits), 2) == value


def test_flat_and_symmetric_images_hash_the_same_on_every_machine() -> None:
    # exact zeros (a flat image's AC terms, a symmetric image's odd ones) are 0 bits, never a
    # sign left to rounding
    flat = np.full((28, 28), 77, dtype=np.uint8)
    assert _hashes([flat]) == [0]
    symmetric = np.zeros((28, 28), dtype=np.uint8)
    symmetric[6:22, 4:24] = 200
    probe = copy_probes([symmetric])[0]
    bits = probe.bits()
    mirrored = words_to_bits(dihedral_copy_hashes(copy_hash_words([probe.copy_hash]))[0, 1])
    odd_v = np.array([i for i in range(COPY_HASH_BITS) if bits[i] != mirrored[i]])
    assert odd_v.size == 0 or not bits[odd_v].any()


def test_a_large_image_is_hashed_on_a_small_raster() -> None:
    big = np.zeros((600, 900), dtype=np.uint8)
    big[100:500, 200:700] = 180
    probe = copy_probes([big])[0]
    assert max(probe.raster.shape) == RASTER_SIDE
    assert probe.raster.shape == (43, 64)
    # the same picture at another size is the same hash or within a few bits
    small = np.asarray(Image.fromarray(big).resize((450, 300), Image.Resampling.BILINEAR))
    other = copy_probes([small])[0]
    assert match_probe(other, probe.bits()) <= 4


def test_describe_images_publishes_the_copy_hash_but_never_the_pixels() -> None:
    meta = describe_images([Image.fromarray(IMAGES[0])])[0]
    assert meta.copy_hash == copy_probes([IMAGES[0]])[0].copy_hash
    assert meta.probe is not None
    fields = meta.to_dict()
    assert fields["copyHash"] == copy_hash_to_hex(meta.copy_hash)
    assert not any("probe" in key or "raster" in key for key in fields)


def test_a_probe_matches_its_own_hash_at_zero() -> None:
    probes = copy_probes(list(IMAGES[:10]))
    assert [match_probe(p, p.bits()) for p in probes] == [0.0] * 10


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0" * 41, "42 lower-case hex digits"),
        ("0" * 43, "42 lower-case hex digits"),
        ("A" * 42, "42 lower-case hex digits"),
        ("0x" + "0" * 40, "42 lower-case hex digits"),
        (" " + "0" * 41, "42 lower-case hex digits"),
        (7, "42 lower-case hex digits"),
        (None, "42 lower-case hex digits"),
    ],
)
def test_a_malformed_hex_copy_hash_is_refused(text: object, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why):
        copy_hash_from_hex(text)


@pytest.mark.parametrize("value", [-1, 1 << COPY_HASH_BITS, True, 1.5, "00"])
def test_an_out_of_range_copy_hash_is_refused(value: object) -> None:
    with pytest.raises(InvalidInputError, match="copy hash"):
        copy_hash_to_hex(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="copy hash"):
        copy_hash_words([value])  # type: ignore[list-item]


def test_bad_arrays_and_transforms_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"\(N, 3\) uint64"):
        copy_hash_words(np.zeros((2, 2), dtype=np.uint64))
    with pytest.raises(InvalidInputError, match="uint8 luma"):
        copy_probes([np.zeros((4, 4), dtype=np.float32)])
    with pytest.raises(InvalidInputError, match="uint8 luma"):
        copy_probes([np.zeros((0, 4), dtype=np.uint8)])
    with pytest.raises(InvalidInputError, match="uint8 luma"):
        copy_probes([np.zeros((4, 4, 3), dtype=np.uint8)])
    with pytest.raises(InvalidInputError, match=r"0\.\.7"):
        transform_image(IMAGES[0], 8)
    with pytest.raises(InvalidInputError, match=r"0\.\.7"):
        transform_image(IMAGES[0], True)
    probe = copy_probes([IMAGES[0]])[0]
    with pytest.raises(InvalidInputError, match="168 bits"):
        match_probe(probe, np.zeros(64, dtype=bool))
