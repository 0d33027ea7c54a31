"""What a federated round's messages carry, and the checks on what a region sends back.

Weights travel as one :class:`flwr.app.ArrayRecord` named ``"arrays"`` (one array per state-dict
entry), the round's knobs as a ``ConfigRecord`` named ``"config"``, a node's numbers as a
``MetricRecord`` named ``"metrics"``. TKNN count rounds carry ``"counts"`` (two integer arrays of
one entry per validation point) and value rounds ``"values"`` (per-sample values and their
sample ids as hex). Nothing else is read from a reply: a region's images, labels and embeddings
have no field to travel in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord
from numpy.typing import NDArray

from visdm.errors import FederationRoundError

__all__ = ["from_record", "reply_audit", "to_record"]


def to_record(arrays: Mapping[str, NDArray[Any]]) -> ArrayRecord:
    """Arrays (in the given order) as an ``ArrayRecord``."""
    return ArrayRecord(
        array_dict={k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()},
        keep_input=True,
    )


def from_record(
    record: Any, *, like: Mapping[str, NDArray[Any]] | None = None, who: str = "a region"
) -> dict[str, NDArray[Any]]:
    """An ``ArrayRecord`` back to arrays; with ``like``, names, shapes and dtypes must match."""
    if not isinstance(record, ArrayRecord):
        raise FederationRoundError(f"{who} sent no arrays where weights were expected")
    out = {k: np.asarray(v.numpy()) for k, v in record.items()}
    if like is not None:
        if list(out) != list(like):
            raise FederationRoundError(
                f"{who} sent weights named differently from the global model's: dropped"
            )
        for k, v in out.items():
            if v.shape != like[k].shape or v.dtype != like[k].dtype:
                raise FederationRoundError(
                    f"{who} sent {k} of shape {v.shape} {v.dtype}, expected "
                    f"{like[k].shape} {like[k].dtype}: dropped"
                )
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                raise FederationRoundError(f"{who} sent non-finite weights in {k}: dropped")
    return out


def reply_audit(content: Any) -> list[dict[str, Any]]:
    """Every record of a reply with its arrays' shapes: what left the region, for the round's
    result (a test checks that no array there could hold samples or embeddings)."""
    audit: list[dict[str, Any]] = []
    for name, record in content.items():
        entry: dict[str, Any] = {"record": name, "kind": type(record).__name__}
        if isinstance(record, ArrayRecord):
            entry["shapes"] = {k: list(v.shape) for k, v in record.items()}
        else:
            entry["keys"] = sorted(record.keys())
        audit.append(entry)
    return audit
