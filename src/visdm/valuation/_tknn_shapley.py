r"""Exact Shapley values for the threshold-KNN utility, centralised or from summed counts.

Reference: J. T. Wang, Y. Zhu, Y.-X. Wang, R. Jia, P. Mittal, "Threshold KNN-Shapley: a
linear-time and privacy-friendly approach to data valuation", NeurIPS 2023,
https://arxiv.org/abs/2308.15709.

**Utility** (Wang et al., soft-label TKNN). For one validation point :math:`(x, y)` with
:math:`C` classes, a radius :math:`\tau` and a set :math:`S` of training points, let
:math:`N_\tau(S)` be the points of :math:`S` within distance :math:`\tau` of :math:`x`. Then

.. math:: U_x(S) = \frac{1}{C}                                  \text{ if } N_\tau(S) = \emptyset,
          \qquad U_x(S) = \frac{|\{i \in N_\tau(S) : y_i = y\}|}{|N_\tau(S)|}  \text{ otherwise},

and over the validation set values average, as in :mod:`visdm.valuation._knn_shapley`.

**Closed form** (Wang et al., Theorem 6). For a training point :math:`z_i` within
:math:`\tau` (a point outside has value 0 for this :math:`x`), with
:math:`c = |N_\tau(D)|` (counting :math:`z_i`), :math:`c_+ = |\{j \ne i : j \in N_\tau(D),
y_j = y\}|` and :math:`m_i = \mathbb{1}[y_i = y]`:

.. math:: \phi_i = \mathbb{1}[c \ge 2]\, A_1 A_2 + \frac{m_i - 1/C}{c}, \qquad
          A_1 = \frac{m_i}{c} - \frac{c_+}{c (c - 1)}, \qquad
          A_2 = \sum_{k=0}^{N-1} \frac{1}{k+1}\Bigl(1 - \frac{\binom{N-1-k}{c}}{\binom{N}{c}}\Bigr)
                - 1.

**Deviation (none in value, one in evaluation).** The identity
:math:`\sum_{m=1}^{N} \binom{N-m}{c} / m = \binom{N}{c} (H_N - H_c)` turns :math:`A_2` into
:math:`H_c - 1` (:math:`H` the harmonic numbers), independent of :math:`N`; we evaluate that,
in :math:`O(1)` per validation point instead of :math:`O(N)` binomial ratios that overflow for
large :math:`N`. The unit tests check the values against brute-force Shapley values of the
utility above.

**Federated.** A value depends on the data only through the two integers per validation point
:math:`|N_\tau(D)|` and :math:`|\{j \in N_\tau(D) : y_j = y\}|`, which add up over any split of
:math:`D`. :func:`tknn_counts` computes one part's counts, :class:`TKNNCounts` adds them, and
:func:`tknn_values_from_counts` values one part's samples against the summed counts; the
per-sample arithmetic is the same function on the same integers, so values from a split equal
the centralised ones bit for bit. Nothing but the counts leaves a part.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from math import nan
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from visdm.errors import InvalidInputError
from visdm.types import SampleId
from visdm.valuation._result import ValuationResult, check_ids, check_xy

__all__ = [
    "TKNNCounts",
    "TKNNShapley",
    "tknn_counts",
    "tknn_shapley_moments",
    "tknn_values_from_counts",
]

# float64 cells of (training point, validation point, dim) differences held at once
_MAX_CELLS = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True, eq=False)
class TKNNCounts:
    """Per validation point: training points within τ, and those among them with its label.

    ``n`` is the number of training points counted. Counts of disjoint parts add with ``+``.
    """

    within: NDArray[np.int64]
    same_label: NDArray[np.int64]
    n: int

    def __add__(self, other: TKNNCounts) -> TKNNCounts:
        if self.within.shape != other.within.shape:
            raise InvalidInputError(
                f"counts over {self.within.shape[0]} and {other.within.shape[0]} validation "
                "points cannot be added: every part must count against the same validation set"
            )
        return TKNNCounts(
            self.within + other.within, self.same_label + other.same_label, self.n + other.n
        )

    @classmethod
    def from_lists(cls, within: Sequence[int], same_label: Sequence[int], n: int) -> TKNNCounts:
        """Counts as a peer sent them; refuses shapes or values no honest count can have."""
        w = np.asarray(within, dtype=np.int64)
        s = np.asarray(same_label, dtype=np.int64)
        if w.ndim != 1 or s.shape != w.shape:
            raise InvalidInputError(
                f"counts must be two lists of equal length, got {w.shape} and {s.shape}"
            )
        if n < 0 or (w < 0).any() or (s < 0).any() or (s > w).any() or (w > n).any():
            raise InvalidInputError(
                f"counts are inconsistent: need 0 <= same_label <= within <= n (n={n})"
            )
        return cls(w, s, int(n))


def _check(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    val_features: ArrayLike,
    val_labels: ArrayLike,
    tau: float,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    x, y = check_xy(train_features, train_labels, what="training")
    v, vy = check_xy(val_features, val_labels, what="validation")
    if x.shape[1] != v.shape[1]:
        raise InvalidInputError(
            f"training features have {x.shape[1]} dims but validation features {v.shape[1]}"
        )
    if not (np.isfinite(tau) and tau > 0):
        raise InvalidInputError(f"tau must be a positive finite radius, got {tau!r}")
    return x, y, v, vy


def _within(x: NDArray[np.float64], v: NDArray[np.float64], tau: float) -> NDArray[np.bool_]:
    """``(N, V)``: training point within ``tau`` of validation point.

    Each squared distance is its own sum over the dims of one pair's differences, so the answer
    for a pair never depends on which other points are in the batch (the centralised and the
    federated computation must agree exactly).
    """
    n, d = x.shape
    out = np.empty((n, v.shape[0]), dtype=np.bool_)
    rows = max(1, _MAX_CELLS // max(1, v.shape[0] * d))
    limit = tau * tau
    for start in range(0, n, rows):
        diff = x[start : start + rows, None, :] - v[None, :, :]
        out[start : start + rows] = np.einsum("nvd,nvd->nv", diff, diff) <= limit
    return out


def tknn_counts(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    val_features: ArrayLike,
    val_labels: ArrayLike,
    *,
    tau: float,
) -> TKNNCounts:
    """This part's counts per validation point (see the module docstring)."""
    x, y, v, vy = _check(train_features, train_labels, val_features, val_labels, tau)
    near = _within(x, v, tau)
    same = near & (y[:, None] == vy[None, :])
    return TKNNCounts(
        near.sum(axis=0, dtype=np.int64), same.sum(axis=0, dtype=np.int64), x.shape[0]
    )


def tknn_values_from_counts(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    val_features: ArrayLike,
    val_labels: ArrayLike,
    counts: TKNNCounts,
    *,
    tau: float,
    num_classes: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Values and standard errors of this part's samples against ``counts`` over all parts.

    ``counts`` must include this part's own counts; a count smaller than what this part alone
    sees is refused.
    """
    x, y, v, vy = _check(train_features, train_labels, val_features, val_labels, tau)
    if num_classes < 2:
        raise InvalidInputError(f"num_classes must be at least 2, got {num_classes}")
    if counts.within.shape != (v.shape[0],):
        raise InvalidInputError(
            f"counts cover {counts.within.shape[0]} validation points, the validation set "
            f"has {v.shape[0]}"
        )
    near = _within(x, v, tau)
    match = y[:, None] == vy[None, :]
    if (near.sum(axis=0) > counts.within).any() or (
        (near & match).sum(axis=0) > counts.same_label
    ).any():
        raise InvalidInputError(
            "the summed counts are smaller than this part's own: they do not include it"
        )
    c = counts.within.astype(np.float64)[None, :]
    m = match.astype(np.float64)
    c_plus = counts.same_label.astype(np.float64)[None, :] - m  # the others with label y
    harmonic = np.cumsum(1.0 / np.arange(1, max(2, int(counts.within.max()) + 1)))
    a2 = harmonic[np.maximum(counts.within, 1) - 1][None, :] - 1.0  # H_c - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        a1 = m / c - c_plus / (c * (c - 1.0))
        phi = np.where(c >= 2, a1 * a2, 0.0) + (m - 1.0 / num_classes) / c
    phi = np.where(near, phi, 0.0)
    n_val = v.shape[0]
    # each row is one sample's values over the validation points, summed on its own
    mean = phi.sum(axis=1) / n_val
    if n_val > 1:
        stderr = np.sqrt(((phi - mean[:, None]) ** 2).sum(axis=1) / ((n_val - 1) * n_val))
    else:
        stderr = np.full_like(mean, nan)
    return mean, stderr


def tknn_shapley_moments(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    val_features: ArrayLike,
    val_labels: ArrayLike,
    *,
    tau: float,
    num_classes: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centralised TKNN-Shapley values and their standard errors over the validation points."""
    counts = tknn_counts(train_features, train_labels, val_features, val_labels, tau=tau)
    return tknn_values_from_counts(
        train_features,
        train_labels,
        val_features,
        val_labels,
        counts,
        tau=tau,
        num_classes=num_classes,
    )


class TKNNShapley:
    """Exact TKNN-Shapley (Wang et al., 2023), as an estimator.

    ::

        result = TKNNShapley(tau=2.0, num_classes=10).fit(x, y, x_val, y_val).result

    Pass ``counts`` (summed over every part of a federated round) to value one part's samples
    against the whole; without it the training set given is the whole.
    """

    method = "tknn_shapley"

    def __init__(self, *, tau: float, num_classes: int) -> None:
        if not (np.isfinite(tau) and tau > 0):
            raise InvalidInputError(f"tau must be a positive finite radius, got {tau!r}")
        if num_classes < 2:
            raise InvalidInputError(f"num_classes must be at least 2, got {num_classes}")
        self.tau, self.num_classes = float(tau), num_classes
        self._result: ValuationResult | None = None

    def fit(
        self,
        train_features: ArrayLike,
        train_labels: ArrayLike,
        val_features: ArrayLike,
        val_labels: ArrayLike,
        *,
        counts: TKNNCounts | None = None,
        sample_ids: Sequence[SampleId] | None = None,
    ) -> Self:
        """Value every training sample against the validation set; see :attr:`result`."""
        start = time.perf_counter()
        if counts is None:
            counts = tknn_counts(
                train_features, train_labels, val_features, val_labels, tau=self.tau
            )
        values, stderr = tknn_values_from_counts(
            train_features,
            train_labels,
            val_features,
            val_labels,
            counts,
            tau=self.tau,
            num_classes=self.num_classes,
        )
        ids = check_ids(sample_ids, values.shape[0])
        self._result = ValuationResult(
            method=self.method,
            sample_ids=ids,
            values=values,
            flagged=values < 0,
            stderr=stderr,
            params={
                "tau": self.tau,
                "num_classes": self.num_classes,
                "n_train_total": counts.n,
                "n_val": int(counts.within.shape[0]),
            },
            timings={"total": time.perf_counter() - start},
        )
        return self

    @property
    def result(self) -> ValuationResult:
        """The result of the last :meth:`fit`."""
        if self._result is None:
            raise InvalidInputError("TKNNShapley has not been fitted: call fit(...) first")
        return self._result

    def __repr__(self) -> str:
        return f"TKNNShapley(tau={self.tau}, num_classes={self.num_classes})"
