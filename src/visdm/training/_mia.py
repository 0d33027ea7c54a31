"""Membership-inference check: the loss-threshold attack of Yeom et al. (2018).

Yeom, Giacomelli, Fredrikson & Jha, "Privacy Risk in Machine Learning: Analyzing the Connection
to Overfitting", CSF 2018, §3.2: the adversary guesses "member" when a sample's loss is below a
threshold τ. Sweeping τ over all values traces the attack's ROC curve; its area equals the
probability that a random member has a lower loss than a random non-member (ties count half) —
the Mann–Whitney U statistic divided by m·n, computed here from average ranks. 0.5 means the
attack does no better than guessing. Yeom et al. fix τ at the mean training loss; the AUC is the
threshold-free summary (as in Carlini et al., 2022, who also argue for low-FPR metrics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.stats import rankdata  # type: ignore[import-untyped]
from torch import nn

from visdm.errors import InvalidInputError
from visdm.training._train import prepare_images

__all__ = ["loss_threshold_mia", "mia_auc", "per_sample_losses"]

_BATCH = 1024


def per_sample_losses(
    model: nn.Module, images: NDArray[np.uint8], labels: NDArray[np.integer[Any]]
) -> NDArray[np.float64]:
    """Cross-entropy loss of every sample under ``model`` (eval mode, no gradients)."""
    x = prepare_images(images)
    y = torch.from_numpy(np.asarray(labels).astype(np.int64))
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InvalidInputError(f"{x.shape[0]} images but labels of shape {tuple(y.shape)}")
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], _BATCH):
            logits = model(x[i : i + _BATCH])
            out.append(nn.functional.cross_entropy(logits, y[i : i + _BATCH], reduction="none"))
    model.train(was_training)
    return torch.cat(out).double().numpy() if out else np.empty(0)


def mia_auc(member_losses: NDArray[Any], non_member_losses: NDArray[Any]) -> float:
    """AUC of the loss-threshold attack: P(member loss < non-member loss) + ½ P(tie)."""
    members = np.asarray(member_losses, dtype=np.float64).ravel()
    others = np.asarray(non_member_losses, dtype=np.float64).ravel()
    m, n = members.size, others.size
    if m == 0 or n == 0:
        raise InvalidInputError(f"need members and non-members, got {m} and {n}")
    if not (np.isfinite(members).all() and np.isfinite(others).all()):
        raise InvalidInputError("losses must be finite")
    # score = -loss: a member should score higher; U counts (member, non-member) pairs won
    ranks = rankdata(-np.concatenate([members, others]))
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float(u / (m * n))


def loss_threshold_mia(
    model: nn.Module,
    members: tuple[NDArray[np.uint8], NDArray[np.integer[Any]]],
    non_members: tuple[NDArray[np.uint8], NDArray[np.integer[Any]]],
) -> float:
    """ROC AUC of Yeom et al.'s loss-threshold attack on ``model``.

    ``members`` and ``non_members`` are ``(images, labels)`` pairs: samples the model was and
    was not trained on (use equal sizes from the same distribution).
    """
    return mia_auc(per_sample_losses(model, *members), per_sample_losses(model, *non_members))
