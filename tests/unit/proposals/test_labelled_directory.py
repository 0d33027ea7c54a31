"""A validation directory never shrinks silently: counts are reported, too few is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visdm.errors import InvalidInputError
from visdm.proposals import load_labelled_directory
from visdm.proposals._validation import MIN_VALIDATION_SAMPLES

pytestmark = pytest.mark.unit

SHAPE = (1, 8, 8)


def folder(tmp_path: Path, *, images: int, labelled: int, extra: str = "") -> Path:
    """``images`` distinct PNGs, the first ``labelled`` of them with a row in labels.csv."""
    rng = np.random.default_rng(7)
    root = tmp_path / "val"
    root.mkdir()
    rows = ["filename,label"]
    for i in range(images):
        pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"img{i:04d}.png")
        if i < labelled:
            rows.append(f"img{i:04d}.png,{'cat' if i % 2 else 'dog'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n" + extra)
    return root


def test_a_folder_with_few_labelled_images_is_refused_with_its_counts(tmp_path: Path) -> None:
    root = folder(tmp_path, images=60, labelled=4)
    with pytest.raises(InvalidInputError) as info:
        load_labelled_directory(root, None, SHAPE)
    message = str(info.value)
    assert "\n" not in message
    assert "only 4 of 60 files can score a model (56 skipped (56 " in message
    assert f"needs at least {MIN_VALIDATION_SAMPLES}: label more images" in message


def test_a_folder_with_no_labelled_image_is_refused_in_one_line(tmp_path: Path) -> None:
    root = folder(tmp_path, images=15, labelled=0)
    with pytest.raises(InvalidInputError) as info:
        load_labelled_directory(root, None, SHAPE)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"validation directory {root} has no image that can score a model")
    assert "15 skipped" in message


def test_counts_are_reported_when_enough_images_remain(tmp_path: Path) -> None:
    root = folder(tmp_path, images=40, labelled=12)
    found = load_labelled_directory(root, None, SHAPE)
    assert found.images.shape == (12, 8, 8) and found.images.dtype == np.uint8
    assert found.classes == ("cat", "dog")
    assert sorted(set(found.labels.tolist())) == [0, 1]
    assert (found.files, len(found.skipped)) == (40, 28)
    summary = found.summary()
    assert summary.startswith("validation set: 12 of 40 files scored; 28 skipped (")
    assert "e.g. img0012.png: " in summary and "\n" not in summary


def test_a_whole_folder_says_so(tmp_path: Path) -> None:
    found = load_labelled_directory(folder(tmp_path, images=10, labelled=10), ["dog", "cat"], SHAPE)
    assert found.summary() == "validation set: 10 of 10 files scored"
    assert found.classes == ("dog", "cat")  # the given order indexes the labels
    assert found.labels[0] == 0  # img0000 is a dog


def test_the_minimum_can_be_raised(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"only 10 of 10 files .* at least 50"):
        load_labelled_directory(
            folder(tmp_path, images=10, labelled=10), None, SHAPE, min_samples=50
        )


def test_labels_outside_the_classes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"labels 'dog' are not among .* \(cat, bird\)"):
        load_labelled_directory(folder(tmp_path, images=10, labelled=10), ["cat", "bird"], SHAPE)
