r"""Exact Shapley values of training samples for the K-nearest-neighbour utility.

Reference: R. Jia, D. Dao, B. Wang, F. A. Hubis, N. M. Gurel, B. Li, C. Zhang, C. J. Spanos,
D. Song, "Efficient task-specific data valuation for nearest neighbor algorithms", PVLDB
12(11):1610-1623, 2019, https://doi.org/10.14778/3342263.3342637.

**Utility** (Jia et al., eq. 5). For one validation point :math:`(x, y)` and a set :math:`S` of
training points, let :math:`\alpha_1(S), \alpha_2(S), \dots` be :math:`S` ordered by distance to
:math:`x`. Then

.. math:: U_x(S) = \frac{1}{K} \sum_{j=1}^{\min(K, |S|)} \mathbb{1}[y_{\alpha_j(S)} = y],
          \qquad U_x(\emptyset) = 0,

the probability that a K-NN classifier's vote for :math:`x` goes to the right label; over the
validation set :math:`U(S) = \frac{1}{V} \sum_x U_x(S)`, and Shapley values average likewise.

**Recursion** (Jia et al., Theorem 1). With all :math:`N` training points sorted by distance,
:math:`m_i = \mathbb{1}[y_{\alpha_i} = y]`,

.. math:: s_{\alpha_N} = \frac{m_N}{N}, \qquad
          s_{\alpha_i} = s_{\alpha_{i+1}} + \frac{m_i - m_{i+1}}{K} \frac{\min(K, i)}{i}.

We evaluate it without a sequential loop. Write :math:`c_i = 1/\max(K, i)` (so the step is
:math:`(m_i - m_{i+1}) c_i`) and :math:`w_j = c_j - c_{j-1}`; unrolling the recursion gives

.. math:: s_{\alpha_i} = m_i c_i + \sum_{j > i} m_j w_j,

one reversed cumulative sum per validation point (:math:`w_j = 0` for :math:`j \le K` and
:math:`-1/(j(j-1))` beyond). The cost is :math:`O(V N d)` for distances plus
:math:`O(V N \log N)` for the sorts, in batches of validation points whose size keeps the
working set under ``max_batch_bytes``.

**Spread.** Each per-point value has the sign of the label match: with :math:`m_i = 1`,
:math:`s_{\alpha_i} \ge c_i + \sum_{j > i} w_j = c_N > 0`; with :math:`m_i = 0`,
:math:`s_{\alpha_i} \le 0`. A value is the mean over the validation points, so the same pass
also sums the squares and returns each value's standard error over the validation points
(:func:`knn_shapley_moments`): how consistently the validation set agrees with the value's sign,
which :mod:`visdm.valuation._evidence` needs before it flags anyone.

**Deviations.** (1) For :math:`N < K` Theorem 1's base case :math:`m_N/N` is not the Shapley
value of the utility above (which is then additive, :math:`s_i = m_i/K`); we use
:math:`c_N = 1/\max(K, N)`, which equals the paper's base whenever :math:`N \ge K` and is exact
for :math:`N < K`. (2) The order of equidistant points is fixed: distance first, then the lower
training index (see :mod:`visdm.valuation._neighbours`); the values are the exact Shapley values
of the K-NN utility under that order. pyDVL's ``KNNShapleyValuation`` implements the same
recursion with a Python loop; the benchmark checks that both agree within ``1e-6``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from math import nan
from typing import Literal, Self

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from visdm.errors import InvalidInputError
from visdm.types import SampleId
from visdm.valuation._neighbours import distance_keys, index_bits
from visdm.valuation._result import ValuationResult, check_ids, check_xy

__all__ = ["KNNShapley", "knn_shapley_moments", "knn_shapley_values"]

Metric = Literal["euclidean", "cosine"]
_DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
# bytes per (validation point, training point) cell held at once: distances/keys, sorted keys,
# order, labels gathered, values, the scatter target and a temporary, 8 bytes each
_BYTES_PER_CELL = 7 * 8


def knn_shapley_values(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    val_features: ArrayLike,
    val_labels: ArrayLike,
    *,
    k: int = 5,
    metric: Metric = "euclidean",
    max_batch_bytes: int = _DEFAULT_BATCH_BYTES,
    timings: dict[str, float] | None = None,
) -> NDArray[np.float64]:
    """Exact KNN-Shapley values, one per training point (see the module docstring).

    ``metric="cosine"`` ranks by cosine distance (rows are L2-normalised first). When
    ``timings`` is given, seconds spent per phase are added to it.
    """
    return knn_shapley_moments(
        train_features,
        train_labels,
        val_features,
        val_labels,
        k=k,
        metric=metric,
        max_batch_bytes=max_batch_bytes,
        timings=timings,
    )[0]


def knn_shapley_moments(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    val_features: ArrayLike,
    val_labels: ArrayLike,
    *,
    k: int = 5,
    metric: Metric = "euclidean",
    max_batch_bytes: int = _DEFAULT_BATCH_BYTES,
    timings: dict[str, float] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """KNN-Shapley values and their standard errors over the validation points.

    A value is the mean of one Shapley value per validation point (eq. 5 averages the
    per-point utilities); the standard error is that mean's, ``sd / sqrt(V)`` with the
    sample standard deviation (NaN for ``V = 1``). Arguments as :func:`knn_shapley_values`.
    """
    x, y = check_xy(train_features, train_labels, what="training")
    v, vy = check_xy(val_features, val_labels, what="validation")
    if x.shape[1] != v.shape[1]:
        raise InvalidInputError(
            f"training features have {x.shape[1]} dims but validation features {v.shape[1]}"
        )
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    if metric not in ("euclidean", "cosine"):
        raise InvalidInputError(f"unknown metric {metric!r}: use 'euclidean' or 'cosine'")
    if max_batch_bytes < 1:
        raise InvalidInputError(f"max_batch_bytes must be positive, got {max_batch_bytes}")
    clock = timings if timings is not None else {}
    n, n_val = x.shape[0], v.shape[0]

    tx, tv = torch.from_numpy(x), torch.from_numpy(v)
    if metric == "cosine":
        tx = torch.nn.functional.normalize(tx, dim=1)
        tv = torch.nn.functional.normalize(tv, dim=1)
    train_sq = (tx * tx).sum(dim=1)
    ty, tvy = torch.from_numpy(y), torch.from_numpy(vy)
    index = torch.arange(n, dtype=torch.int64)
    bits = index_bits(n)
    mask = (1 << bits) - 1

    rank = torch.arange(1, n + 1, dtype=torch.float64)
    coef = 1.0 / torch.clamp(rank, min=float(k))  # c_i = 1 / max(K, i)
    step = torch.zeros(n, dtype=torch.float64)  # w_j = c_j - c_{j-1}
    step[1:] = coef[1:] - coef[:-1]

    batch = max(1, min(n_val, max_batch_bytes // (_BYTES_PER_CELL * n)))
    total = torch.zeros(n, dtype=torch.float64)
    squares = torch.zeros(n, dtype=torch.float64)
    for start in range(0, n_val, batch):
        stop = min(start + batch, n_val)
        t0 = time.perf_counter()
        keys = distance_keys(tv[start:stop], tx, train_sq, bits=bits, index=index)
        t1 = time.perf_counter()
        order = torch.sort(keys, dim=1).values.bitwise_and_(mask)
        del keys
        t2 = time.perf_counter()
        match = ty[order] == tvy[start:stop, None]
        cums = torch.cumsum(match * step, dim=1)
        values = torch.sub(cums[:, -1:].clone(), cums, out=cums)  # sum over j > i of m_j w_j
        values.addcmul_(match, coef)  # + m_i c_i
        total.index_add_(0, order.view(-1), values.view(-1))
        squares.index_add_(0, order.view(-1), values.square_().view(-1))
        del values, match
        t3 = time.perf_counter()
        clock["distances"] = clock.get("distances", 0.0) + (t1 - t0)
        clock["sort"] = clock.get("sort", 0.0) + (t2 - t1)
        clock["recursion"] = clock.get("recursion", 0.0) + (t3 - t2)
    mean = total / n_val
    # sum of squared deviations from the sums; rounding can take it a hair below zero
    spread = (squares - total * mean).clamp_(min=0.0)
    stderr = (spread / ((n_val - 1) * n_val)).sqrt_() if n_val > 1 else torch.full_like(mean, nan)
    return mean.numpy(), stderr.numpy()


class KNNShapley:
    """Exact KNN-Shapley (Jia et al., 2019), as an estimator.

    ::

        result = KNNShapley(k=5).fit(x_train, y_train, x_val, y_val).result
        result.values        # one float per training sample, summing to U(all)
        result.flagged       # values < 0: suspected label noise or harmful samples
        result.stderr        # each value's standard error over the validation points

    ``k`` is the K of the K-NN utility; ``metric`` ``"euclidean"`` or ``"cosine"``;
    ``max_batch_bytes`` bounds the working set (roughly ``56 * N`` bytes per validation point in
    a batch, whatever ``V`` is).
    """

    method = "knn_shapley"

    def __init__(
        self,
        k: int = 5,
        *,
        metric: Metric = "euclidean",
        max_batch_bytes: int = _DEFAULT_BATCH_BYTES,
    ) -> None:
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        self.k = k
        self.metric: Metric = metric
        self.max_batch_bytes = max_batch_bytes
        self._result: ValuationResult | None = None

    def fit(
        self,
        train_features: ArrayLike,
        train_labels: ArrayLike,
        val_features: ArrayLike,
        val_labels: ArrayLike,
        *,
        sample_ids: Sequence[SampleId] | None = None,
    ) -> Self:
        """Value every training sample against the validation set; see :attr:`result`."""
        start = time.perf_counter()
        timings: dict[str, float] = {}
        values, stderr = knn_shapley_moments(
            train_features,
            train_labels,
            val_features,
            val_labels,
            k=self.k,
            metric=self.metric,
            max_batch_bytes=self.max_batch_bytes,
            timings=timings,
        )
        ids = check_ids(sample_ids, values.shape[0])
        timings["total"] = time.perf_counter() - start
        self._result = ValuationResult(
            method=self.method,
            sample_ids=ids,
            values=values,
            flagged=values < 0,
            stderr=stderr,
            params={
                "k": self.k,
                "metric": self.metric,
                "n_train": values.shape[0],
                "n_val": int(np.shape(val_labels)[0]),
            },
            timings=timings,
        )
        return self

    @property
    def result(self) -> ValuationResult:
        """The result of the last :meth:`fit`."""
        if self._result is None:
            raise InvalidInputError("KNNShapley has not been fitted: call fit(...) first")
        return self._result

    @property
    def values(self) -> NDArray[np.float64]:
        """Shortcut for ``result.values``."""
        return self.result.values

    def __repr__(self) -> str:
        return f"KNNShapley(k={self.k}, metric={self.metric!r})"
