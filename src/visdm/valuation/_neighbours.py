"""Deterministic nearest-neighbour ordering shared by the valuation methods.

Distances are squared Euclidean in ``float64``, computed as ``|v|^2 + |x|^2 - 2 v.x`` in
batches of query rows. To rank training points with a deterministic tie-break *and* a fast
sort, each distance becomes one unique ``int64`` key: the bit pattern of the non-negative
``float64`` (which orders like the number) with its lowest ``b`` bits replaced by the training
index, ``b = bit_length(N - 1)``. Sorting the keys therefore sorts by distance, and distances
equal to ``52 - b`` significant bits (relative ``2**-(52 - b)``, about ``1.5e-11`` at
``N = 60,000``) are ordered by index, lower first. Any sort, stable or not, gives the same
order, so results do not depend on the sort algorithm or the thread count.
"""

from __future__ import annotations

import torch

__all__ = ["distance_keys", "index_bits"]

_KEY_MAX = torch.iinfo(torch.int64).max


def index_bits(n: int) -> int:
    """Bits the training index needs inside a key."""
    return max(1, (n - 1).bit_length())


def distance_keys(
    queries: torch.Tensor,
    train: torch.Tensor,
    train_sq: torch.Tensor,
    *,
    bits: int,
    index: torch.Tensor,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(B, N)`` int64 keys whose ascending order is (distance, training index).

    ``queries`` is ``(B, d)``, ``train`` ``(N, d)`` and ``train_sq`` its squared row norms,
    all ``float64``; ``index`` is ``arange(N)``. ``exclude`` (``(B,)`` training indices) gets
    the largest key, for leave-one-out searches where the query is itself a training point.
    """
    dist = torch.addmm(train_sq.expand(queries.shape[0], -1), queries, train.T, alpha=-2.0)
    dist.add_((queries * queries).sum(dim=1, keepdim=True))
    dist.clamp_(min=0.0).add_(0.0)  # rounding can dip below zero; +0.0 turns -0.0 into 0.0
    keys = dist.view(torch.int64)
    keys.bitwise_and_(~((1 << bits) - 1)).bitwise_or_(index)
    if exclude is not None:
        keys[torch.arange(keys.shape[0]), exclude] = _KEY_MAX
    return keys
