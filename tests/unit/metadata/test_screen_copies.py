"""The validation screen with copy hashes: cropped, re-toned and turned copies of selected
training images cannot score (the steering attack of ``test_screen.py`` with disguises), and
honest validation images still do."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from visdm.datasets import load_fashion_mnist
from visdm.metadata import array_copy_hashes, array_phashes, screen_validation_set

pytestmark = pytest.mark.unit

TRAIN_X, _ = load_fashion_mnist("train", limit=210)
VAL_X, _ = load_fashion_mnist("test", limit=100)


def _disguise(pixels: np.ndarray, k: int) -> np.ndarray:
    """A crop of 1–2 pixels (resized back to 28×28, the model's layout), a contrast change, and
    a quarter turn for every other one."""
    image = Image.fromarray(pixels)
    cut = 1 + k % 2
    image = image.crop((cut, 0, 28, 28 - (k % 3))).resize((28, 28), Image.Resampling.BILINEAR)
    image = ImageEnhance.Contrast(image).enhance(0.7 + 0.1 * (k % 5))
    if k % 2:
        image = image.transpose(Image.Transpose.ROTATE_90)
    return np.asarray(image)


@pytest.mark.attack
def test_disguised_copies_of_selected_images_do_not_score() -> None:
    copies = np.stack([_disguise(TRAIN_X[3 * k], k) for k in range(30)])
    val = np.concatenate([VAL_X, copies])
    selected = array_phashes(TRAIN_X)
    # pHash alone (the defence as it was): most disguised copies would score
    old = screen_validation_set(val, selected)
    assert int(np.sum(old.keep >= len(VAL_X))) >= 15
    # with the selected samples' copy hashes they are dropped, the honest images stay
    # (measured: 28 of the 30 dropped, every honest image kept)
    new = screen_validation_set(val, selected, selected_copy_hashes=array_copy_hashes(TRAIN_X))
    assert int(np.sum(new.keep >= len(VAL_X))) <= 2
    honest_kept = int(np.sum(new.keep < len(VAL_X)))
    assert honest_kept >= int(np.sum(old.keep < len(VAL_X))) - 3
    assert new.near_selected >= 28


def test_a_cropped_copy_inside_the_validation_set_is_a_duplicate() -> None:
    val = np.concatenate([VAL_X[:20], np.stack([_disguise(VAL_X[k], k) for k in range(5)])])
    screen = screen_validation_set(val, array_phashes(TRAIN_X))
    assert screen.duplicates >= 4
    assert set(range(20)) - set(screen.keep.tolist()) == set()


def test_copy_hashes_of_colour_images_use_their_luma() -> None:
    rgb = np.stack([np.stack([x, x // 2, 255 - x], axis=-1) for x in TRAIN_X[:5]])
    luma = np.stack([np.asarray(Image.fromarray(a).convert("L")) for a in rgb])
    assert np.array_equal(array_copy_hashes(rgb), array_copy_hashes(luma))
    assert array_copy_hashes(luma[..., None]).tolist() == array_copy_hashes(luma).tolist()
