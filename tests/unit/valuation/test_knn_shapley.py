"""Exact KNN-Shapley: brute-force Shapley on tiny inputs, the efficiency axiom, batching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.errors import InvalidInputError
from visdm.types import SampleId
from visdm.valuation import KNNShapley, knn_shapley_values

pytestmark = pytest.mark.unit


def _order(x: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Training indices by (distance, index): the order the utility is defined with."""
    d = ((x - point) ** 2).sum(axis=1)
    return np.lexsort((np.arange(x.shape[0]), d))


def knn_utility(subset: frozenset[int], rank: np.ndarray, match: np.ndarray, k: int) -> float:
    """Jia et al. eq. 5: the K nearest members of the subset that carry the right label, / K."""
    nearest = sorted(subset, key=lambda i: rank[i])[:k]
    return float(sum(match[i] for i in nearest)) / k


def brute_force_shapley(
    x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, k: int
) -> np.ndarray:
    """Shapley values by enumerating every permutation of the players (N <= 7)."""
    n = x.shape[0]
    values = np.zeros(n)
    perms = list(itertools.permutations(range(n)))
    for point, label in zip(xv, yv, strict=True):
        rank = np.empty(n, dtype=int)
        rank[_order(x, point)] = np.arange(n)
        match = y == label
        cache: dict[frozenset[int], float] = {}

        def u(
            s: frozenset[int],
            rank: np.ndarray = rank,
            match: np.ndarray = match,
            cache: dict[frozenset[int], float] = cache,
        ) -> float:
            if s not in cache:
                cache[s] = knn_utility(s, rank, match, k)
            return cache[s]

        for perm in perms:
            before: frozenset[int] = frozenset()
            for i in perm:
                after = before | {i}
                values[i] += u(after) - u(before)
                before = after
    return values / (len(perms) * xv.shape[0])


def full_utility(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, k: int) -> float:
    total = 0.0
    for point, label in zip(xv, yv, strict=True):
        nearest = _order(x, point)[:k]
        total += float((y[nearest] == label).sum()) / k
    return total / xv.shape[0]


problems = st.builds(
    lambda n, v, d, k, classes, seed: (n, v, d, k, classes, seed),
    st.integers(1, 6),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 8),
    st.integers(2, 3),
    st.integers(0, 2**32 - 1),
)


def _draw(n: int, v: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, d)),
        rng.integers(0, classes, n),
        rng.standard_normal((v, d)),
        rng.integers(0, classes, v),
    )


@settings(max_examples=40, deadline=None)
@given(problems)
def test_equals_brute_force_shapley(problem: tuple[int, ...]) -> None:
    n, v, d, k, classes, seed = problem
    x, y, xv, yv = _draw(n, v, d, classes, seed)
    got = knn_shapley_values(x, y, xv, yv, k=k)
    np.testing.assert_allclose(got, brute_force_shapley(x, y, xv, yv, k), atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_equals_brute_force_at_seven_players(k: int) -> None:
    x, y, xv, yv = _draw(7, 4, 2, 2, seed=11)
    got = knn_shapley_values(x, y, xv, yv, k=k)
    np.testing.assert_allclose(got, brute_force_shapley(x, y, xv, yv, k), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 400),
    v=st.integers(1, 30),
    k=st.integers(1, 12),
    classes=st.integers(2, 5),
    seed=st.integers(0, 2**32 - 1),
    batch_bytes=st.sampled_from([1, 4096, 1 << 26]),
)
def test_efficiency_axiom(
    n: int, v: int, k: int, classes: int, seed: int, batch_bytes: int
) -> None:
    """Sum of values = U(all) - U(empty) = U(all), for any batching."""
    x, y, xv, yv = _draw(n, v, 4, classes, seed)
    values = knn_shapley_values(x, y, xv, yv, k=k, max_batch_bytes=batch_bytes)
    assert values.sum() == pytest.approx(full_utility(x, y, xv, yv, k), abs=1e-9)


def test_batching_does_not_change_values() -> None:
    x, y, xv, yv = _draw(500, 37, 8, 4, seed=3)
    one = knn_shapley_values(x, y, xv, yv, k=5, max_batch_bytes=1)
    many = knn_shapley_values(x, y, xv, yv, k=5, max_batch_bytes=1 << 30)
    np.testing.assert_allclose(one, many, rtol=0, atol=1e-15)


def test_ties_go_to_the_lower_index() -> None:
    """Two identical points with different labels: the lower index counts as nearer."""
    x = np.array([[0.0], [0.0], [5.0]])
    xv, yv = np.array([[0.0]]), np.array([1])
    # index 0 (label 1) is first, index 1 (label 0) second
    first = knn_shapley_values(x, np.array([1, 0, 0]), xv, yv, k=1)
    assert first[0] > first[1]
    # swap labels: now index 0 is wrong and index 1 right, and index 0 still comes first
    second = knn_shapley_values(x, np.array([0, 1, 0]), xv, yv, k=1)
    np.testing.assert_allclose(second, brute_force_shapley(x, np.array([0, 1, 0]), xv, yv, 1))
    assert second[0] < 0 < second[1]


def test_cosine_metric_is_euclidean_on_unit_vectors() -> None:
    x, y, xv, yv = _draw(40, 6, 3, 3, seed=5)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    unit_v = xv / np.linalg.norm(xv, axis=1, keepdims=True)
    cosine = knn_shapley_values(x, y, xv, yv, k=3, metric="cosine")
    np.testing.assert_allclose(cosine, knn_shapley_values(unit, y, unit_v, yv, k=3), atol=1e-12)
    scales = np.random.default_rng(0).uniform(0.1, 10.0, size=(40, 1))
    np.testing.assert_allclose(
        knn_shapley_values(x * scales, y, xv, yv, k=3, metric="cosine"), cosine, atol=1e-12
    )


def test_mislabelled_point_is_negative_and_flagged() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 2)), rng.normal(8, 1, (30, 2))])
    y = np.array([0] * 30 + [1] * 30)
    y[5] = 1  # in the middle of class 0
    xv = np.concatenate([rng.normal(0, 1, (20, 2)), rng.normal(8, 1, (20, 2))])
    yv = np.array([0] * 20 + [1] * 20)
    result = KNNShapley(k=3).fit(x, y, xv, yv).result
    assert result.values[5] < 0
    assert result.flagged[5]
    assert result.values.argmin() == 5


def test_estimator_result_object() -> None:
    x, y, xv, yv = _draw(20, 5, 3, 2, seed=1)
    ids = [SampleId(bytes([i]) * 32) for i in range(20)]
    est = KNNShapley(k=3)
    with pytest.raises(InvalidInputError, match="not been fitted"):
        _ = est.result
    result = est.fit(x, y, xv, yv, sample_ids=ids).result
    assert result.method == "knn_shapley"
    assert result.params == {"k": 3, "metric": "euclidean", "n_train": 20, "n_val": 5}
    assert {"distances", "sort", "recursion", "total"} <= set(result.timings)
    assert result.value_of(ids[4]) == result.values[4]
    assert result.as_dict()[ids[7]] == result.values[7]
    assert result.total() == pytest.approx(full_utility(x, y, xv, yv, 3))
    assert len(result) == 20
    np.testing.assert_array_equal(est.values, result.values)
    assert repr(est) == "KNNShapley(k=3, metric='euclidean')"
    with pytest.raises(InvalidInputError, match="not valued"):
        result.value_of(SampleId(b"\xee" * 32))
    default = KNNShapley(k=3).fit(x, y, xv, yv).result
    assert default.sample_ids[2] == (2).to_bytes(32, "big")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": np.zeros((0, 2)), "y": np.zeros(0, int)}, "empty"),
        ({"x": np.zeros(3)}, "2-d"),
        ({"y": np.zeros(4, int)}, "one label per sample"),
        ({"y": np.zeros(3)}, "integers"),
        ({"x": np.array([[np.nan, 0.0]] * 3)}, "NaN"),
        ({"xv": np.zeros((1, 3))}, "dims"),
        ({"k": 0}, "k must be"),
        ({"metric": "manhattan"}, "unknown metric"),
        ({"max_batch_bytes": 0}, "max_batch_bytes"),
    ],
)
def test_bad_input(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "x": np.zeros((3, 2)),
        "y": np.zeros(3, int),
        "xv": np.zeros((1, 2)),
        "yv": np.zeros(1, int),
        "k": 1,
        "metric": "euclidean",
        "max_batch_bytes": 1 << 20,
    }
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=match):
        knn_shapley_values(
            args["x"],  # type: ignore[arg-type]
            args["y"],  # type: ignore[arg-type]
            args["xv"],  # type: ignore[arg-type]
            args["yv"],  # type: ignore[arg-type]
            k=args["k"],  # type: ignore[arg-type]
            metric=args["metric"],  # type: ignore[arg-type]
            max_batch_bytes=args["max_batch_bytes"],  # type: ignore[arg-type]
        )
    with pytest.raises(InvalidInputError, match="k must be"):
        KNNShapley(k=0)
    x3, y3, xv1 = np.zeros((3, 2)), np.zeros(3, int), np.zeros((1, 2))
    with pytest.raises(InvalidInputError, match="sample ids"):
        KNNShapley(k=1).fit(x3, y3, xv1, [0], sample_ids=[])
    same = SampleId(b"\0" * 32)
    with pytest.raises(InvalidInputError, match="unique"):
        KNNShapley(k=1).fit(
            np.zeros((2, 2)), np.zeros(2, int), np.zeros((1, 2)), [0], sample_ids=[same, same]
        )
