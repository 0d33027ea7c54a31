"""TKNN-Shapley: brute-force Shapley on tiny inputs, and federated values equal to centralised."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.errors import InvalidInputError
from visdm.valuation import TKNNShapley
from visdm.valuation._tknn_shapley import (
    TKNNCounts,
    tknn_counts,
    tknn_shapley_moments,
    tknn_values_from_counts,
)

pytestmark = pytest.mark.unit


def tknn_utility(subset: list[int], near: np.ndarray, match: np.ndarray, classes: int) -> float:
    """The soft-label TKNN utility averaged over validation points (module docstring)."""
    total = 0.0
    for j in range(near.shape[1]):
        inside = [i for i in subset if near[i, j]]
        total += 1 / classes if not inside else sum(match[i, j] for i in inside) / len(inside)
    return total / near.shape[1]


def brute_force(x: np.ndarray, y: np.ndarray, v: np.ndarray, vy: np.ndarray, tau: float) -> list:
    n, classes = x.shape[0], 3
    near = np.sqrt(((x[:, None, :] - v[None, :, :]) ** 2).sum(axis=2)) <= tau
    match = y[:, None] == vy[None, :]
    values = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        phi = 0.0
        for r in range(n):
            weight = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for subset in itertools.combinations(others, r):
                with_i = tknn_utility([*subset, i], near, match, classes)
                phi += weight * (with_i - tknn_utility(list(subset), near, match, classes))
        values.append(phi)
    return values


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), tau=st.floats(0.3, 2.5))
def test_values_are_the_shapley_values_of_the_tknn_utility(seed: int, n: int, tau: float) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 2)), rng.integers(0, 3, n)
    v, vy = rng.normal(size=(3, 2)), rng.integers(0, 3, 3)
    values, _ = tknn_shapley_moments(x, y, v, vy, tau=tau, num_classes=3)
    np.testing.assert_allclose(values, brute_force(x, y, v, vy, tau), atol=1e-12)


def _data(seed: int, n: int = 600, v: int = 40) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(size=(n, 8)) + y[:, None] * 0.8
    vy = rng.integers(0, 4, v)
    xv = rng.normal(size=(v, 8)) + vy[:, None] * 0.8
    return x, y, xv, vy


def test_values_from_summed_region_counts_equal_the_centralised_values_exactly() -> None:
    x, y, xv, vy = _data(1)
    central, central_se = tknn_shapley_moments(x, y, xv, vy, tau=3.0, num_classes=4)
    parts = np.split(np.random.default_rng(2).permutation(x.shape[0]), [100, 350])
    counts = [tknn_counts(x[p], y[p], xv, vy, tau=3.0) for p in parts]
    summed = counts[0] + counts[1] + counts[2]
    assert summed.n == x.shape[0]
    for p in parts:
        local, local_se = tknn_values_from_counts(
            x[p], y[p], xv, vy, summed, tau=3.0, num_classes=4
        )
        np.testing.assert_array_equal(local, central[p])  # bit for bit, not approximately
        np.testing.assert_array_equal(local_se, central_se[p])


def test_values_sum_to_the_utility_gain_and_flag_flipped_labels() -> None:
    x, y, xv, vy = _data(3)
    noisy = np.arange(0, 600, 20)
    y_noisy = y.copy()
    y_noisy[noisy] = (y[noisy] + 2) % 4
    result = TKNNShapley(tau=3.0, num_classes=4).fit(x, y_noisy, xv, vy).result
    near = np.sqrt(((x[:, None, :] - xv[None, :, :]) ** 2).sum(axis=2)) <= 3.0
    match = y_noisy[:, None] == vy[None, :]
    gain = tknn_utility(list(range(600)), near, match, 4) - 0.25
    assert result.total() == pytest.approx(gain, abs=1e-9)  # efficiency
    flagged = np.flatnonzero(result.flagged)
    assert len(set(flagged) & set(noisy)) / len(noisy) > 0.8
    assert result.params["n_train_total"] == 600


def test_counts_from_a_peer_are_checked() -> None:
    assert TKNNCounts.from_lists([3, 1], [2, 0], 5).n == 5
    with pytest.raises(InvalidInputError, match="same_label <= within"):
        TKNNCounts.from_lists([1], [2], 5)
    with pytest.raises(InvalidInputError, match="within <= n"):
        TKNNCounts.from_lists([9], [2], 5)
    with pytest.raises(InvalidInputError, match="equal length"):
        TKNNCounts.from_lists([1, 2], [0], 5)


def test_counts_that_leave_out_the_part_itself_are_refused() -> None:
    x, y, xv, vy = _data(4, n=50, v=5)
    empty = TKNNCounts(np.zeros(5, dtype=np.int64), np.zeros(5, dtype=np.int64), 0)
    with pytest.raises(InvalidInputError, match="do not include it"):
        tknn_values_from_counts(x, y, xv, vy, empty, tau=3.0, num_classes=4)
    with pytest.raises(InvalidInputError, match="validation points"):
        tknn_counts(x, y, xv, vy, tau=3.0) + tknn_counts(x, y, xv[:2], vy[:2], tau=3.0)


@pytest.mark.parametrize("tau", [0.0, -1.0, math.inf, math.nan])
def test_a_bad_radius_is_refused(tau: float) -> None:
    x, y, xv, vy = _data(5, n=10, v=2)
    with pytest.raises(InvalidInputError, match="tau must be"):
        tknn_counts(x, y, xv, vy, tau=tau)
    with pytest.raises(InvalidInputError, match="tau must be"):
        TKNNShapley(tau=tau, num_classes=4)


def test_unfitted_estimator_and_mismatched_dims_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="not been fitted"):
        _ = TKNNShapley(tau=1.0, num_classes=2).result
    with pytest.raises(InvalidInputError, match="num_classes"):
        TKNNShapley(tau=1.0, num_classes=1)
    with pytest.raises(InvalidInputError, match="dims"):
        tknn_counts(np.zeros((3, 2)), [0, 1, 0], np.zeros((2, 3)), [0, 1], tau=1.0)
