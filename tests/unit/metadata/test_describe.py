"""Per-sample metadata: exact field definitions, and the canonical asset document."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from visdm.errors import InvalidInputError
from visdm.metadata import (
    METADATA_FORMAT,
    AssetMetadata,
    DuplicateLink,
    SampleMetadata,
    describe_images,
    laplacian_variance,
    phash,
)
from visdm.types import SampleId

pytestmark = pytest.mark.unit


def test_grey_image_fields_are_exact() -> None:
    pixels = np.array([[0, 15, 16, 255], [255, 255, 100, 100]], dtype=np.uint8)
    image = Image.fromarray(pixels)
    (meta,) = describe_images([image], byte_sizes=[123], formats=["PNG"])
    assert (meta.width, meta.height, meta.channels, meta.mode) == (4, 2, 1, "L")
    assert (meta.format, meta.byte_size, meta.histogram_channels) == ("PNG", 123, "L")
    expected = np.zeros(16)
    expected[[0, 1, 15, 6]] = [2 / 8, 1 / 8, 3 / 8, 2 / 8]
    np.testing.assert_allclose(meta.histogram[0], expected)
    assert meta.brightness == pytest.approx(pixels.mean())
    assert meta.contrast == pytest.approx(pixels.std())
    assert meta.phash == phash(image)


def test_colour_image_has_three_histograms_and_pillow_luma() -> None:
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (30, 20, 4), dtype=np.uint8), mode="RGBA")
    (meta,) = describe_images([rgba])
    assert (meta.channels, meta.histogram_channels, len(meta.histogram)) == (4, "RGB", 3)
    for channel in meta.histogram:
        assert len(channel) == 16
        assert sum(channel) == pytest.approx(1.0)
    red = np.asarray(rgba)[..., 0]
    np.testing.assert_allclose(meta.histogram[0], np.bincount(red.ravel() >> 4, minlength=16) / 600)
    luma = np.asarray(rgba.convert("L"), dtype=np.float64)
    assert meta.brightness == pytest.approx(luma.mean())
    assert meta.format is None and meta.byte_size is None


@pytest.mark.parametrize("shape", [(2, 2), (5, 9), (64, 33), (200, 150)])
def test_blur_is_the_variance_of_the_reflect101_laplacian(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    luma = rng.integers(0, 256, shape).astype(np.float64)
    expected = scipy.ndimage.laplace(luma, mode="mirror").var()  # scipy 'mirror' = reflect-101
    assert laplacian_variance(luma) == pytest.approx(expected, rel=1e-12)


def test_blur_ranks_a_blurred_image_below_the_sharp_one() -> None:
    rng = np.random.default_rng(2)
    sharp = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8))
    blurred = sharp.resize((16, 16)).resize((64, 64), Image.Resampling.BILINEAR)
    flat = Image.new("L", (64, 64), 77)
    metas = describe_images([sharp, blurred, flat])
    assert metas[0].blur > 10 * metas[1].blur
    assert metas[2].blur == 0.0 and metas[2].contrast == 0.0


def test_one_pixel_images() -> None:
    metas = describe_images([Image.new("L", (1, 1), 7), Image.new("RGB", (1, 9), (1, 2, 3))])
    assert metas[0].blur == 0.0 and metas[0].brightness == 7.0
    assert metas[1].blur == 0.0
    assert laplacian_variance(np.array([[0.0, 4.0, 0.0]])) > 0


def test_describe_checks_lengths_and_inputs() -> None:
    image = Image.new("L", (3, 3))
    with pytest.raises(InvalidInputError, match="2 images but 1 byte sizes and 2 formats"):
        describe_images([image, image], byte_sizes=[1])
    with pytest.raises(InvalidInputError, match=r"PIL\.Image\.Image, got str"):
        describe_images(["not an image"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="non-empty 2-D luma array"):
        laplacian_variance(np.zeros((0, 3)))


def _document(label: str) -> AssetMetadata:
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    (meta,) = describe_images([image], byte_sizes=[99], formats=["PNG"])
    one, two = SampleId(b"\x01" * 32), SampleId(b"\x02" * 32)
    return AssetMetadata(
        manifest_hash=b"\xaa" * 32,
        samples=(SampleMetadata(0, one, label, meta), SampleMetadata(1, two, label, meta)),
        links=(DuplicateLink(two, one, 0),),
        rejected=((2, "blob does not decrypt"),),
    )


def test_asset_document_is_canonical_and_hashed() -> None:
    doc = _document("Sneaker")
    text = doc.to_json()
    assert text == _document("Sneaker").to_json()
    parsed = json.loads(text)
    assert parsed["format"] == METADATA_FORMAT
    assert parsed["samples"][0]["sampleId"] == "0x" + "01" * 32
    assert parsed["samples"][0]["phash"] == format(doc.samples[0].image.phash, "016x")
    assert parsed["duplicateLinks"] == [
        {"sampleId": "0x" + "02" * 32, "otherId": "0x" + "01" * 32, "distance": 0}
    ]
    assert parsed["rejected"] == [{"index": 2, "reason": "blob does not decrypt"}]
    assert text == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    assert len(doc.metadata_hash) == 32
    assert doc.metadata_hash != _document("Bag").metadata_hash
