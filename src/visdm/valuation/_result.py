"""The result object every valuation method returns, and shared input checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from visdm.errors import InvalidInputError
from visdm.types import SampleId

__all__ = ["ValuationResult"]


@dataclass(frozen=True, slots=True, eq=False)
class ValuationResult:
    """Values of training samples, with what produced them.

    ``values[i]`` belongs to ``sample_ids[i]``. ``flagged[i]`` is the method's own suspicion flag
    (KNN-Shapley: a negative value; Data-OOB: out-of-bag accuracy below its threshold).
    ``timings`` are wall-clock seconds per phase plus ``"total"``; ``params`` are the knobs the
    method ran with. ``stderr[i]``, when the method has one, is the standard error of
    ``values[i]`` (KNN-Shapley: over the validation points; NaN where undefined).
    """

    method: str
    sample_ids: tuple[SampleId, ...]
    values: NDArray[np.float64]
    flagged: NDArray[np.bool_]
    params: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    stderr: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        n = len(self.sample_ids)
        if self.values.shape != (n,) or self.flagged.shape != (n,):
            raise InvalidInputError(
                f"{n} sample ids but values of shape {self.values.shape} and flags of shape "
                f"{self.flagged.shape}"
            )
        if self.stderr is not None and self.stderr.shape != (n,):
            raise InvalidInputError(
                f"{n} sample ids but standard errors of shape {self.stderr.shape}"
            )

    def __len__(self) -> int:
        return len(self.sample_ids)

    def value_of(self, sample_id: SampleId) -> float:
        """The value of one sample, by id."""
        try:
            return float(self.values[self.sample_ids.index(sample_id)])
        except ValueError:
            raise InvalidInputError(f"sample {sample_id.hex()} was not valued") from None

    def as_dict(self) -> dict[SampleId, float]:
        """``{sample_id: value}``."""
        return dict(zip(self.sample_ids, self.values.tolist(), strict=True))

    def total(self) -> float:
        """The sum of all values (KNN-Shapley: ``U(all) - U(empty)`` by efficiency)."""
        return float(self.values.sum())


def default_ids(n: int) -> tuple[SampleId, ...]:
    """Stand-in ids when the caller has none: the index as a 32-byte big-endian number."""
    return tuple(SampleId(i.to_bytes(32, "big")) for i in range(n))


def check_ids(sample_ids: Sequence[SampleId] | None, n: int) -> tuple[SampleId, ...]:
    if sample_ids is None:
        return default_ids(n)
    ids = tuple(sample_ids)
    if len(ids) != n:
        raise InvalidInputError(f"{len(ids)} sample ids for {n} samples")
    if len(set(ids)) != n:
        raise InvalidInputError("sample ids must be unique")
    return ids


def check_xy(
    features: ArrayLike, labels: ArrayLike, *, what: str
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Features as a finite ``float64`` matrix and labels as ``int64``, with matching lengths."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise InvalidInputError(
            f"{what} features must be a 2-d array (samples x dims), got {x.shape}"
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InvalidInputError(
            f"{what} labels must be 1-d with one label per sample: {x.shape[0]} samples, "
            f"labels of shape {y.shape}"
        )
    if x.shape[0] == 0:
        raise InvalidInputError(f"{what} set is empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise InvalidInputError(f"{what} labels must be integers, got {y.dtype}")
    if not np.isfinite(x).all():
        raise InvalidInputError(f"{what} features contain NaN or infinity")
    return np.ascontiguousarray(x), y.astype(np.int64, copy=False)
