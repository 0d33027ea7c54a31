"""The validation-set screen: duplicates and near-copies of selected samples never score.

The steering attack (a consumer who fills its validation set with a friend's selected images to
move the data price to the friend) is performed against the real KNN-Shapley valuation, with
the screen off and on.
"""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image

from visdm.datasets import load_fashion_mnist
from visdm.errors import InvalidInputError
from visdm.metadata import (
    DIHEDRAL_TRANSFORMS,
    array_phashes,
    dihedral_phashes,
    minimum_validation_samples,
    screen_validation_set,
)

pytestmark = pytest.mark.unit

TRAIN_X, TRAIN_Y = load_fashion_mnist("train", limit=210)
VAL_X, VAL_Y = load_fashion_mnist("test", limit=300)


def _reference(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def _jpeg(pixels: np.ndarray) -> np.ndarray:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(out.getvalue())))


def test_array_hashes_equal_imagehash_for_grey_and_rgb_arrays() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(6, 20, 30, 3), dtype=np.uint8)
    assert array_phashes(rgb).tolist() == [_reference(Image.fromarray(a)) for a in rgb]
    grey = TRAIN_X[:6]
    assert array_phashes(grey).tolist() == [_reference(Image.fromarray(a)) for a in grey]
    assert array_phashes(grey[..., None]).tolist() == array_phashes(grey).tolist()


def test_dihedral_hashes_are_the_hashes_of_the_eight_flips_and_rotations() -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(3, 12, 17), dtype=np.uint8)
    hashes = dihedral_phashes(images)
    assert hashes.shape == (3, DIHEDRAL_TRANSFORMS)
    for image, row in zip(images, hashes, strict=True):
        pil = Image.fromarray(image)
        expected = {_reference(pil)} | {_reference(pil.transpose(t)) for t in Image.Transpose}
        assert row[0] == _reference(pil)
        assert set(row.tolist()) == expected


def test_an_honest_set_keeps_most_of_its_samples_and_the_counts_add_up() -> None:
    screen = screen_validation_set(VAL_X, array_phashes(TRAIN_X))
    counts = screen.counts()
    assert counts["given"] == 300
    assert counts["given"] == counts["duplicates"] + counts["nearSelected"] + counts["used"]
    # pHash is coarse on 28x28 Fashion-MNIST: some distinct images fall within 8 bits
    assert counts["used"] >= 200, counts
    assert screen.usable
    assert np.all(np.diff(screen.keep) > 0)


def test_copies_of_selected_samples_are_dropped_however_they_are_turned() -> None:
    friend = TRAIN_X[200:210]
    copies = np.concatenate(
        [
            friend,
            friend[:, :, ::-1],  # mirrored
            np.rot90(friend, 1, axes=(1, 2)),
            np.rot90(friend, 2, axes=(1, 2))[:, ::-1, :],  # a vertical flip
            np.stack([_jpeg(a) for a in friend]),  # re-encoded
        ]
    )
    screen = screen_validation_set(copies, array_phashes(TRAIN_X))
    assert screen.used == 0
    assert screen.duplicates + screen.near_selected == len(copies)
    assert not screen.usable


def test_repeats_within_the_set_keep_only_the_first() -> None:
    one = VAL_X[:1]
    repeated = np.concatenate([VAL_X[:20], np.repeat(one, 30, axis=0), one[:, :, ::-1]])
    screen = screen_validation_set(repeated, np.zeros(0, dtype=np.uint64))
    assert 0 in screen.keep.tolist()
    assert not set(range(20, 51)) & set(screen.keep.tolist())
    assert screen.duplicates >= 31
    assert screen.near_selected == 0


def test_the_minimum_is_ten_samples_or_a_tenth_of_the_set() -> None:
    assert minimum_validation_samples(5) == 10
    assert minimum_validation_samples(100) == 10
    assert minimum_validation_samples(1001) == 101
    assert minimum_validation_samples(40, min_samples=3, min_share=0.5) == 20


def test_bad_inputs_are_refused_with_one_line() -> None:
    hashes = array_phashes(TRAIN_X[:3])
    with pytest.raises(InvalidInputError, match="uint8"):
        screen_validation_set(VAL_X.astype(np.float32), hashes)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="1 or 3 channels"):
        screen_validation_set(np.zeros((4, 8, 8, 2), np.uint8), hashes)
    with pytest.raises(InvalidInputError, match="unsigned 64-bit"):
        screen_validation_set(VAL_X[:10], [-1])
    with pytest.raises(InvalidInputError, match="radius"):
        screen_validation_set(VAL_X[:10], hashes, radius=65)


def _friend_share(
    x: np.ndarray, y: np.ndarray, providers: np.ndarray, xv: np.ndarray, yv: np.ndarray
) -> float:
    """The friend's (provider 0) share of the price under KNN-Shapley on pixel features."""
    from visdm.valuation import KNNShapley

    def features(images: np.ndarray) -> np.ndarray:
        flat = images.reshape(len(images), -1).astype(np.float64)
        return flat / np.linalg.norm(flat, axis=1, keepdims=True)

    values = KNNShapley(k=5).fit(features(x), y, features(xv), yv).result.values
    per_provider = np.clip(np.bincount(providers, weights=values), 0, None)
    return float(per_provider[0] / per_provider.sum())


@pytest.mark.attack
def test_a_validation_set_of_the_friends_images_cannot_steer_the_payouts() -> None:
    # 210 selected samples: the friend (provider 0) owns the last 10, twenty others 10 each
    providers = np.concatenate([np.repeat(np.arange(1, 21), 10), np.zeros(10, np.int64)])
    friend_x, friend_y = TRAIN_X[200:], TRAIN_Y[200:]
    honest = _friend_share(TRAIN_X, TRAIN_Y, providers, VAL_X, VAL_Y)
    steer_x = np.concatenate([VAL_X, *([friend_x] * 15), *([friend_x[:, :, ::-1]] * 15)])
    steer_y = np.concatenate([VAL_Y, *([friend_y] * 30)])
    # the defence off: the friend's share grows several times over
    steered = _friend_share(TRAIN_X, TRAIN_Y, providers, steer_x, steer_y)
    assert steered > 3 * honest, (honest, steered)
    # the defence on: the copies are screened out before they score
    selected = array_phashes(TRAIN_X)
    screen = screen_validation_set(steer_x, selected)
    assert screen.usable
    assert screen.counts()["given"] == len(steer_x)
    assert not set(screen.keep.tolist()) & set(range(len(VAL_X), len(steer_x)))
    honest_screen = screen_validation_set(VAL_X, selected)
    assert screen.keep.tolist() == honest_screen.keep.tolist()
    screened = _friend_share(
        TRAIN_X, TRAIN_Y, providers, steer_x[screen.keep], steer_y[screen.keep]
    )
    fair = _friend_share(
        TRAIN_X, TRAIN_Y, providers, VAL_X[honest_screen.keep], VAL_Y[honest_screen.keep]
    )
    assert screened == pytest.approx(fair)
    # a set of nothing but copies is refused outright
    only_copies = screen_validation_set(steer_x[len(VAL_X) :], selected)
    assert (only_copies.used, only_copies.usable) == (0, False)
