"""Data-OOB with a bagged K-NN learner."""

from __future__ import annotations

import numpy as np
import pytest

from visdm.errors import InvalidInputError
from visdm.valuation import DataOOB

pytestmark = pytest.mark.unit


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2))])
    y = np.array([0] * 100 + [1] * 100)
    flipped = rng.choice(200, size=20, replace=False)
    y[flipped] = 1 - y[flipped]
    return x, y, flipped


def test_flipped_labels_score_low_and_are_flagged() -> None:
    x, y, flipped = _blobs()
    result = DataOOB(n_estimators=50, k=5, seed=1).fit(x, y).result
    noisy = np.zeros(200, dtype=bool)
    noisy[flipped] = True
    assert result.values[noisy].mean() < 0.2 < 0.8 < result.values[~noisy].mean()
    assert result.flagged[noisy].mean() > 0.9
    assert result.flagged[~noisy].mean() < 0.05
    assert ((result.values >= 0) & (result.values <= 1)).all()
    assert result.method == "data_oob"
    assert {"neighbours", "bagging", "total"} <= set(result.timings)
    assert result.params["n_candidates"] == 40


def test_seeded_runs_are_identical_and_seeds_matter() -> None:
    x, y, _ = _blobs()
    a = DataOOB(n_estimators=20, seed=3).fit(x, y).values
    b = DataOOB(n_estimators=20, seed=3).fit(x, y).values
    c = DataOOB(n_estimators=20, seed=4).fit(x, y).values
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_one_bag_leaves_in_bag_samples_at_the_mean() -> None:
    x, y, _ = _blobs()
    result = DataOOB(n_estimators=1, seed=0).fit(x, y).result
    in_bag = np.bincount(np.random.default_rng(0).integers(0, 200, size=200), minlength=200) > 0
    np.testing.assert_allclose(result.values[in_bag], result.values[~in_bag].mean())
    assert not result.flagged[in_bag].any()


def test_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="n_estimators"):
        DataOOB(n_estimators=0)
    with pytest.raises(InvalidInputError, match="k must"):
        DataOOB(k=0)
    with pytest.raises(InvalidInputError, match="n_candidates"):
        DataOOB(k=5, n_candidates=2)
    with pytest.raises(InvalidInputError, match="at least two"):
        DataOOB().fit(np.zeros((1, 2)), [0])
    with pytest.raises(InvalidInputError, match="not been fitted"):
        _ = DataOOB().result
    assert repr(DataOOB(seed=2)) == "DataOOB(n_estimators=100, k=5, seed=2)"
