"""Membership-inference check: the loss-threshold attack of Yeom et al. (2018).

Yeom, Giacomelli, Fredrikson & Jha, "Privacy Risk in Machine Learning: Analyzing the Connection
to Overfitting", CSF 2018, §3.2: the adversary guesses "member" when a sample's loss is below a
threshold τ. Sweeping τ over all values traces the attack's ROC curve; its area equals the
probability that a random member has a lower loss than a random non-member (ties count half) —
the Mann–Whitney U statistic divided by m·n, computed here from average ranks. 0.5 means the
attack does no better than guessing. Yeom et al. fix τ at the mean training loss; the AUC is the
threshold-free summary.

Carlini, Chien, Nasr, Song, Terzis & Tramèr, "Membership Inference Attacks From First
Principles", IEEE S&P 2022, argue that an average-case AUC hides what matters: whether an
attack identifies *some* members with confidence. :func:`tpr_at_fpr` reads the ROC curve at a
low false-positive rate (0.1 %, 1 %) for any attack score; :func:`roc_auc` is the AUC of the
same score. Both take scores where higher means "member" (the Yeom score is the negative loss).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.stats import rankdata  # type: ignore[import-untyped]
from torch import nn

from visdm.errors import InvalidInputError
from visdm.training._train import prepare_images

__all__ = [
    "loss_threshold_mia",
    "mia_auc",
    "per_sample_logits",
    "per_sample_losses",
    "roc_auc",
    "torch_threads",
    "tpr_at_fpr",
]

_BATCH = 1024


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch, its BLAS and LAPACK included, on ``n`` intra-op threads; restore after.

    Evaluation and the attacks' linear algebra are small: on a shared machine, BLAS threads
    that spin while waiting for a core cost far more CPU than they save.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def per_sample_logits(
    model: nn.Module, images: NDArray[np.uint8], labels: NDArray[np.integer[Any]]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``model``'s logits for every sample (eval mode, no gradients), float64, and the labels.

    Raises :class:`~visdm.errors.InvalidInputError` when the labels do not match the images
    one to one or name a class the model does not have.
    """
    x = prepare_images(images)
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InvalidInputError(f"{x.shape[0]} images but labels of shape {tuple(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer):
        raise InvalidInputError(f"labels must be integers, got {y.dtype}")
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad(), torch_threads(1):
        for i in range(0, x.shape[0], _BATCH):
            out.append(model(x[i : i + _BATCH]).double())
    model.train(was_training)
    logits = torch.cat(out).numpy() if out else np.empty((0, 0))
    if y.size and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise InvalidInputError(
            f"labels span {int(y.min())}..{int(y.max())} but the model has "
            f"{logits.shape[1]} classes: pass labels in 0..{logits.shape[1] - 1}"
        )
    return logits, y.astype(np.int64)


def per_sample_losses(
    model: nn.Module, images: NDArray[np.uint8], labels: NDArray[np.integer[Any]]
) -> NDArray[np.float64]:
    """Cross-entropy loss of every sample under ``model`` (eval mode, no gradients)."""
    logits, y = per_sample_logits(model, images, labels)
    if y.size == 0:
        return np.empty(0)
    losses = nn.functional.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(y), reduction="none"
    )
    return np.asarray(losses.numpy(), dtype=np.float64)


def _scores(values: NDArray[Any], what: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{what} must be finite")
    return arr


def roc_auc(member_scores: NDArray[Any], non_member_scores: NDArray[Any]) -> float:
    """ROC AUC of an attack score (higher = member): P(member > non-member) + ½ P(tie)."""
    members = _scores(member_scores, "member scores")
    others = _scores(non_member_scores, "non-member scores")
    m, n = members.size, others.size
    if m == 0 or n == 0:
        raise InvalidInputError(f"need members and non-members, got {m} and {n}")
    # U counts the (member, non-member) pairs the member wins, ties half (Mann–Whitney)
    ranks = rankdata(np.concatenate([members, others]))
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float(u / (m * n))


def mia_auc(member_losses: NDArray[Any], non_member_losses: NDArray[Any]) -> float:
    """AUC of the loss-threshold attack: P(member loss < non-member loss) + ½ P(tie)."""
    members = np.asarray(member_losses, dtype=np.float64)
    others = np.asarray(non_member_losses, dtype=np.float64)
    if not (np.isfinite(members).all() and np.isfinite(others).all()):
        raise InvalidInputError("losses must be finite")
    return roc_auc(-members, -others)


def tpr_at_fpr(member_scores: NDArray[Any], non_member_scores: NDArray[Any], fpr: float) -> float:
    """The highest true-positive rate of a threshold on the score whose FPR is at most ``fpr``.

    "Member" means score > t. With n non-members at most ⌊fpr·n⌋ of them may pass, so t is the
    (⌊fpr·n⌋+1)-th largest non-member score and the TPR is the share of members above it (ties
    with t count as non-members: the threshold cannot split equal scores). An FPR below 1/n
    cannot be told apart from zero with n non-members, so fewer than ⌈1/fpr⌉ of them is
    refused rather than reported as a TPR "at" that FPR.
    """
    if not 0.0 < fpr < 1.0:
        raise InvalidInputError(f"fpr must be in (0, 1), got {fpr}")
    members = _scores(member_scores, "member scores")
    others = _scores(non_member_scores, "non-member scores")
    if members.size == 0:
        raise InvalidInputError("need member scores, got none")
    needed = math.ceil(1.0 / fpr - 1e-9)
    if others.size < needed:
        raise InvalidInputError(
            f"a TPR at FPR {fpr:g} needs at least {needed:,} non-member scores, got "
            f"{others.size:,}: score more non-members (more shadow or target models) or "
            f"report the TPR at FPR {1.0 / others.size:.3g}, the lowest this sample supports"
        )
    allowed = math.floor(fpr * others.size + 1e-9)  # false positives the FPR permits
    threshold = np.sort(others)[::-1][allowed] if allowed < others.size else -math.inf
    return float(np.mean(members > threshold))


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
