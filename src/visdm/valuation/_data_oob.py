r"""Data-OOB: out-of-bag accuracy of each sample under a bagged K-NN classifier.

Reference: Y. Kwon and J. Zou, "Data-OOB: Out-of-bag Estimate as a Simple and Efficient Data
Value", ICML 2023, PMLR 202:18135-18152, https://proceedings.mlr.press/v202/kwon23e.html.

**Why this second method.** KNN-Shapley needs the consumer's validation set and costs
:math:`O(V N \log N)`; it is an exact Shapley value (efficiency holds, so it can divide a price).
Data-OOB needs *no validation set* and no sort over all pairs: it asks whether the models that
did not see a sample still predict its label. That makes it the cheap, validation-free screen
for label noise (Kwon & Zou report it is competitive with or better than KNN-Shapley at
detecting mislabelled data), at the price of not being a division of any utility (no efficiency
axiom, values in :math:`[0, 1]`, not signed). Use it to flag samples or cross-check a payout,
not to split money.

**Estimator** (Kwon & Zou, eq. 3). Draw :math:`B` bootstrap samples (size :math:`N`, with
replacement, weights :math:`w_{bj}` = times sample :math:`j` was drawn), fit a weak learner
:math:`f_b` on each, and score

.. math:: \psi_i = \frac{\sum_b \mathbb{1}[w_{bi} = 0] \, \mathbb{1}[f_b(x_i) = y_i]}
                        {\sum_b \mathbb{1}[w_{bi} = 0]}.

**Deviations.** The paper's weak learner is a decision tree (a random forest); ours is a K-NN
classifier on the same embeddings KNN-Shapley uses, so both methods see one geometry and no
tree library is needed. A bootstrap multiset is a K-NN training set in which a sample drawn
:math:`w` times fills :math:`w` neighbour slots. Neighbours are searched once, among each
sample's ``n_candidates`` nearest other samples (default :math:`\max(8K, 32)`); a bag in which
fewer than :math:`K` slots are filled by these candidates (probability below
:math:`10^{-9}` per sample and bag at the defaults) votes with the slots it has. Ties in the
vote go to the smallest label. A sample that is in every bag (probability
:math:`(1 - 1/e)^B`) gets the mean score and is not flagged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Self

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from visdm.errors import InvalidInputError
from visdm.types import SampleId
from visdm.valuation._neighbours import distance_keys, index_bits
from visdm.valuation._result import ValuationResult, check_ids, check_xy

__all__ = ["DataOOB"]

_BATCH_BYTES = 64 * 1024 * 1024


class DataOOB:
    """Data-OOB (Kwon & Zou, 2023) with a bagged K-NN weak learner.

    ::

        result = DataOOB(n_estimators=100, k=5, seed=0).fit(x_train, y_train).result
        result.values    # out-of-bag accuracy in [0, 1]
        result.flagged   # values < threshold: suspected label noise
    """

    method = "data_oob"

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        k: int = 5,
        n_candidates: int | None = None,
        threshold: float = 0.5,
        seed: int = 0,
    ) -> None:
        if n_estimators < 1:
            raise InvalidInputError(f"n_estimators must be at least 1, got {n_estimators}")
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        self.n_estimators = n_estimators
        self.k = k
        self.n_candidates = n_candidates if n_candidates is not None else max(8 * k, 32)
        if self.n_candidates < k:
            raise InvalidInputError(f"n_candidates ({self.n_candidates}) must be at least k ({k})")
        self.threshold = threshold
        self.seed = seed
        self._result: ValuationResult | None = None

    def fit(
        self,
        features: ArrayLike,
        labels: ArrayLike,
        *,
        sample_ids: Sequence[SampleId] | None = None,
    ) -> Self:
        """Score every sample by its out-of-bag accuracy; see :attr:`result`."""
        start = time.perf_counter()
        x, y = check_xy(features, labels, what="training")
        n = x.shape[0]
        ids = check_ids(sample_ids, n)
        if n < 2:
            raise InvalidInputError("Data-OOB needs at least two samples")
        classes, y_code = np.unique(y, return_inverse=True)
        n_classes = classes.shape[0]

        neighbours = _nearest_others(x, min(self.n_candidates, n - 1))
        t_neighbours = time.perf_counter()

        rng = np.random.default_rng(self.seed)
        correct = np.zeros(n, dtype=np.int64)
        seen = np.zeros(n, dtype=np.int64)
        neighbour_labels = y_code[neighbours]
        for _ in range(self.n_estimators):
            weight = np.bincount(rng.integers(0, n, size=n), minlength=n)
            oob = np.flatnonzero(weight == 0)
            if oob.size == 0:
                continue
            w = weight[neighbours[oob]]  # (n_oob, M) slots each candidate fills
            before = np.cumsum(w, axis=1) - w
            take = np.clip(self.k - before, 0, w)
            votes = np.zeros((oob.size, n_classes), dtype=np.int64)
            cand = neighbour_labels[oob]
            for c in range(n_classes):
                votes[:, c] = np.where(cand == c, take, 0).sum(axis=1)
            predicted = votes.argmax(axis=1)
            correct[oob] += predicted == y_code[oob]
            seen[oob] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            score = correct / seen
        never = seen == 0
        if never.all():
            raise InvalidInputError("no sample was ever out of bag: raise n_estimators")
        score[never] = score[~never].mean()
        flagged = (score < self.threshold) & ~never
        end = time.perf_counter()
        self._result = ValuationResult(
            method=self.method,
            sample_ids=ids,
            values=score.astype(np.float64),
            flagged=flagged,
            params={
                "n_estimators": self.n_estimators,
                "k": self.k,
                "n_candidates": int(neighbours.shape[1]),
                "threshold": self.threshold,
                "seed": self.seed,
                "n_train": n,
            },
            timings={
                "neighbours": t_neighbours - start,
                "bagging": end - t_neighbours,
                "total": end - start,
            },
        )
        return self

    @property
    def result(self) -> ValuationResult:
        """The result of the last :meth:`fit`."""
        if self._result is None:
            raise InvalidInputError("DataOOB has not been fitted: call fit(...) first")
        return self._result

    @property
    def values(self) -> NDArray[np.float64]:
        """Shortcut for ``result.values``."""
        return self.result.values

    def __repr__(self) -> str:
        return f"DataOOB(n_estimators={self.n_estimators}, k={self.k}, seed={self.seed})"


def _nearest_others(x: NDArray[np.float64], m: int) -> NDArray[np.int64]:
    """Each sample's ``m`` nearest *other* samples, nearest first, ties by lower index."""
    n = x.shape[0]
    tx = torch.from_numpy(x)
    sq = (tx * tx).sum(dim=1)
    index = torch.arange(n, dtype=torch.int64)
    bits = index_bits(n)
    mask = (1 << bits) - 1
    out = torch.empty((n, m), dtype=torch.int64)
    batch = max(1, _BATCH_BYTES // (16 * n))
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        keys = distance_keys(
            tx[start:stop], tx, sq, bits=bits, index=index, exclude=index[start:stop]
        )
        out[start:stop] = torch.topk(keys, m, dim=1, largest=False, sorted=True).values & mask
    return out.numpy()
