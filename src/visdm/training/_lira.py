"""Membership inference with shadow models: the likelihood-ratio attack (LiRA).

Carlini, Chien, Nasr, Song, Terzis & Tramèr, "Membership Inference Attacks From First
Principles", IEEE S&P 2022. The adversary knows the training recipe and a pool of data from
the target's distribution. It trains shadow models on random halves of the pool, so that each
example is in the training set of some shadows ("in") and not of others ("out"). For a target
model f and an example (x, y) it reads the logit-scaled confidence

    φ = log(p / (1 − p)),  p = softmax(f(x))_y,  computed as z_y − log Σ_{j≠y} exp z_j,

which is close to Gaussian across models, fits N(μ_in, σ²_in) and N(μ_out, σ²_out) to the
shadows' φ of that example, and scores

* online (their Algorithm 1): log Λ = log N(φ; μ_in, σ²_in) − log N(φ; μ_out, σ²_out);
* offline (their one-sided test without in-shadows): (φ − μ_out) / σ_out, monotone in their
  Λ = 1 − Pr[Z > φ], Z ~ N(μ_out, σ²_out), without its saturation in the tail.

With few shadows the per-example variances are poor estimates; their "fixed variance" variant
uses one variance for all examples, here the pooled within-example variance.

Evaluation (as in their experiments and reference code): K models are trained on random halves of a
pool of N examples, each example in exactly ⌊K/2⌋ of them; each model in turn is the target
and the other K − 1 its shadows. This scores K·N (model, example) pairs, about K·N/2 of them
non-members, which is what a TPR at 0.1 % FPR needs (at least 1,000 non-member scores, see
:func:`~visdm.training._mia.tpr_at_fpr`). The pairs share examples and shadows, so they are not
independent: the curve is an estimate for this pool and recipe, not a confidence bound.

Where this deviates: one query per example (no augmentations); means, not the reference code's
medians; the fixed variance is pooled around each example's own mean, where the reference code
takes the spread of all in-scores; :func:`run_membership_audit` trains every model with the
node's own :func:`~visdm.training.train`, one job seed per model, so the audit measures what
the node delivers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from visdm.crypto import hkdf_sha256
from visdm.errors import InvalidInputError
from visdm.training._mia import per_sample_logits, roc_auc, tpr_at_fpr
from visdm.training._rng import check_seed
from visdm.training._spec import ModelSpec, parse_model_spec
from visdm.training._train import train

__all__ = [
    "ATTACKS",
    "Attack",
    "MembershipAudit",
    "audit_spec",
    "balanced_membership",
    "lira_scores",
    "logit_confidence",
    "model_seed",
    "run_membership_audit",
]

#: the attacks a :class:`MembershipAudit` scores: LiRA online, LiRA offline, loss threshold
Attack = Literal["lira-online", "lira-offline", "yeom"]
ATTACKS: tuple[Attack, ...] = ("lira-online", "lira-offline", "yeom")
#: the fewest models: each example then has an in and an out shadow whichever model is target
MIN_MODELS = 4
_LABEL = b"visdm/privacy-audit/v1/"
# a variance floor: K identical φ (a saturated example) would otherwise divide by zero
_MIN_VAR = 1e-12


def audit_spec(*, epsilon: float | None, delta: float = 1e-5) -> dict[str, Any]:
    """The audited recipe: the zoo ``mlp`` [128] trained with SGD on 28×28 greyscale, 10 classes.

    Without DP (``epsilon=None``) it is trained to overfit a few hundred images (50 epochs,
    batch 16, learning rate 0.03: training loss ≈ 1e-3), the classic non-DP control; with DP,
    the settings that learn under DP-SGD (20 epochs, batch 64, learning rate 0.05, clip norm
    1). SGD keeps the first-layer reconstruction (:mod:`visdm.training._reconstruct`) exact.
    """
    spec: dict[str, Any] = {
        "architecture": "mlp",
        "hidden": [128],
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "optimizer": "sgd",
    }
    if epsilon is None:
        return spec | {"epochs": 50, "batch_size": 16, "learning_rate": 0.03}
    dp = {"target_epsilon": epsilon, "delta": delta, "max_grad_norm": 1.0}
    return spec | {"epochs": 20, "batch_size": 64, "learning_rate": 0.05, "dp": dp}


def logit_confidence(
    logits: NDArray[np.floating[Any]], labels: NDArray[np.integer[Any]]
) -> NDArray[np.float64]:
    """φ = log(p_y / (1 − p_y)) per row: z_y − logsumexp(z_j, j ≠ y), stable for p_y → 1."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or z.shape[1] < 2 or y.shape != (z.shape[0],):
        raise InvalidInputError(
            f"need logits of shape (N, classes ≥ 2) and N labels, got {z.shape} and {y.shape}"
        )
    rows = np.arange(z.shape[0])
    z_y = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    top = others.max(axis=1)
    rest = top + np.log(np.exp(others - top[:, None]).sum(axis=1))
    return np.asarray(z_y - rest, dtype=np.float64)


def balanced_membership(
    n_models: int, n_examples: int, *, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """``(n_models, n_examples)``: which examples each model trains on.

    Each example is in exactly ⌊n_models/2⌋ models chosen at random (Carlini et al.'s
    reference code), so every example has in and out shadows in the same proportion.
    """
    if n_models < MIN_MODELS or n_examples < 1:
        raise InvalidInputError(
            f"need at least {MIN_MODELS} models and 1 example, got {n_models} and {n_examples}"
        )
    ranks = rng.random((n_models, n_examples)).argsort(axis=0).argsort(axis=0)
    return np.asarray(ranks < n_models // 2)


def lira_scores(
    confidences: NDArray[np.floating[Any]],
    membership: NDArray[np.bool_],
    *,
    online: bool = True,
    fixed_variance: bool = True,
) -> NDArray[np.float64]:
    """LiRA score of every (model, example) pair, each model the target and the rest shadows.

    ``confidences[k, i]`` is φ of example i under model k, ``membership[k, i]`` whether model k
    trained on it. Returns scores of the same shape, higher meaning "member". Online, each
    example keeps as many out as in shadows (the lowest-numbered ones): a target that trained
    on the example leaves one fewer in shadow, and an in-mean of fewer values would spread
    wider and bias the score against members. Raises
    :class:`~visdm.errors.InvalidInputError` on mismatched shapes, non-finite φ, or an example
    left without shadows on a side (or with one, without ``fixed_variance``).
    """
    phi = np.asarray(confidences, dtype=np.float64)
    keep = np.asarray(membership)
    if phi.ndim != 2 or keep.shape != phi.shape or keep.dtype != np.bool_:
        raise InvalidInputError(
            f"confidences {phi.shape} and membership {keep.shape} ({keep.dtype}) must be "
            "(models, examples) arrays of the same shape, membership boolean"
        )
    if not np.isfinite(phi).all():
        raise InvalidInputError("confidences must be finite")
    scores = np.empty_like(phi)
    for k in range(phi.shape[0]):
        shadows = np.ones(phi.shape[0], dtype=bool)
        shadows[k] = False
        ins, outs = keep & shadows[:, None], ~keep & shadows[:, None]
        if online:
            size = np.minimum(ins.sum(axis=0), outs.sum(axis=0))
            ins &= ins.cumsum(axis=0) <= size
            outs &= outs.cumsum(axis=0) <= size
        _check_shadows(outs, k, fixed_variance)
        mu_out, var_out = _gaussian(phi, outs, fixed_variance)
        z_out = (phi[k] - mu_out) / np.sqrt(var_out)
        if not online:
            scores[k] = z_out
            continue
        _check_shadows(ins, k, fixed_variance)
        mu_in, var_in = _gaussian(phi, ins, fixed_variance)
        z_in = (phi[k] - mu_in) / np.sqrt(var_in)
        # log N(φ; μ_in, σ²_in) − log N(φ; μ_out, σ²_out)
        scores[k] = 0.5 * (z_out**2 - z_in**2) + 0.5 * np.log(var_out / var_in)
    return scores


def _check_shadows(side: NDArray[np.bool_], k: int, fixed: bool) -> None:
    counts = side.sum(axis=0)
    least = 1 if fixed else 2
    if counts.min() < least:
        i = int(counts.argmin())
        raise InvalidInputError(
            f"example {i} has {int(counts[i])} shadow models on one side of membership once "
            f"model {k} is the target, {least} needed: train at least {MIN_MODELS} models "
            "(more without fixed_variance), each example in half of them"
        )


def _gaussian(
    phi: NDArray[np.float64], side: NDArray[np.bool_], fixed: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per example: mean and variance of φ over the models marked in ``side``."""
    n = side.sum(axis=0)
    mu = np.where(side, phi, 0.0).sum(axis=0) / n
    squares = np.where(side, (phi - mu) ** 2, 0.0).sum(axis=0)
    if fixed:
        # pooled within-example variance: one value for every example
        var = np.full(mu.shape, squares.sum() / max(int((n - 1).sum()), 1))
    else:
        var = squares / (n - 1)
    return mu, np.maximum(var, _MIN_VAR)


@dataclass(frozen=True)
class MembershipAudit:
    """K models trained on random halves of a pool, and every attack's view of them.

    ``membership[k, i]``: model k trained on pool example i. ``confidences`` (φ) and
    ``losses`` are those of every pool example under every model. ``seeds[k]`` is model k's job
    seed and ``states[k]`` its delivered weights (for :mod:`visdm.training._reconstruct`).
    """

    spec: ModelSpec
    membership: NDArray[np.bool_]
    confidences: NDArray[np.float64]
    losses: NDArray[np.float64]
    accuracy_bps: tuple[int, ...]
    epsilon_spent: tuple[float | None, ...]
    seeds: tuple[bytes, ...] = field(repr=False)
    states: tuple[dict[str, torch.Tensor], ...] = field(repr=False)

    @property
    def n_non_members(self) -> int:
        """(model, example) pairs where the model did not train on the example."""
        return int((~self.membership).sum())

    def scores(
        self, attack: Attack = "lira-online", *, fixed_variance: bool = True
    ) -> NDArray[np.float64]:
        """``(K, N)`` scores of ``attack`` (higher = member); Yeom's is the negative loss."""
        if attack == "yeom":
            return np.asarray(-self.losses)
        if attack not in ATTACKS:
            raise InvalidInputError(f"unknown attack {attack!r}: use one of {', '.join(ATTACKS)}")
        return lira_scores(
            self.confidences,
            self.membership,
            online=attack == "lira-online",
            fixed_variance=fixed_variance,
        )

    def auc(self, attack: Attack = "lira-online", *, fixed_variance: bool = True) -> float:
        """ROC AUC of ``attack`` over every (model, example) pair."""
        scores = self.scores(attack, fixed_variance=fixed_variance)
        return roc_auc(scores[self.membership], scores[~self.membership])

    def tpr_at_fpr(
        self, fpr: float, attack: Attack = "lira-online", *, fixed_variance: bool = True
    ) -> float:
        """TPR of ``attack`` at FPR ≤ ``fpr`` (needs ≥ ⌈1/fpr⌉ non-member pairs)."""
        scores = self.scores(attack, fixed_variance=fixed_variance)
        return tpr_at_fpr(scores[self.membership], scores[~self.membership], fpr)


def model_seed(audit_seed: bytes, k: int) -> bytes:
    """Model k's job seed, derived from the audit's seed (HKDF-SHA256, one label per model)."""
    return hkdf_sha256(check_seed(audit_seed), info=_LABEL + b"model/" + str(k).encode())


def run_membership_audit(
    spec: ModelSpec | bytes | str | dict[str, Any],
    images: NDArray[np.uint8],
    labels: NDArray[np.integer[Any]],
    val_images: NDArray[np.uint8],
    val_labels: NDArray[np.integer[Any]],
    *,
    n_models: int,
    seed: bytes,
    num_threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> MembershipAudit:
    """Train ``n_models`` models of ``spec`` on random halves of the pool and record them.

    Each model is a real :func:`~visdm.training.train` job (DP-SGD if the spec asks) with its
    own seed derived from ``seed`` (32 bytes), which also draws the halves; validation
    accuracy is on ``val_images``. ``progress(done, n_models)`` is called after each model.
    """
    spec = parse_model_spec(spec)
    seed = check_seed(seed)
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.shape[0] != labels.shape[0]:
        raise InvalidInputError(
            f"{images.shape[0]} pool images but {labels.shape[0]} labels: pass one label each"
        )
    draw = hkdf_sha256(seed, info=_LABEL + b"membership")
    rng = np.random.default_rng(int.from_bytes(draw, "little"))
    membership = balanced_membership(n_models, images.shape[0], rng=rng)
    seeds = tuple(model_seed(seed, k) for k in range(n_models))
    confidences, losses, accuracy, epsilon, states = [], [], [], [], []
    for k in range(n_models):
        rows = membership[k].nonzero()[0]
        result = train(
            spec,
            images[rows],
            labels[rows],
            val_images,
            val_labels,
            seed=seeds[k],
            num_threads=num_threads,
        )
        logits, y = per_sample_logits(result.model, images, labels)
        confidences.append(logit_confidence(logits, y))
        losses.append(_cross_entropy(logits, y))
        accuracy.append(result.accuracy_bps)
        epsilon.append(result.epsilon_spent)
        states.append(result.state)
        if progress is not None:
            progress(k + 1, n_models)
    return MembershipAudit(
        spec=spec,
        membership=membership,
        confidences=np.stack(confidences),
        losses=np.stack(losses),
        accuracy_bps=tuple(accuracy),
        epsilon_spent=tuple(epsilon),
        seeds=seeds,
        states=tuple(states),
    )


def _cross_entropy(logits: NDArray[np.float64], labels: NDArray[np.int64]) -> NDArray[np.float64]:
    loss = nn.functional.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(labels), reduction="none"
    )
    return np.asarray(loss.numpy(), dtype=np.float64)
