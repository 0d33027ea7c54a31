"""A regional node's local update in a federated round, on the node's training pipeline.

One call is one round on one node: the global weights in, ``epochs`` epochs of the node's own
data, the weights out. The network comes from the zoo (:func:`visdm.training.build_model`), the
batches, the DP-SGD step (Opacus, or the closed-form linear head) and the noise stream are those
of :mod:`visdm.training._train`, driven by the node's secret seed for this round.

**Privacy across rounds.** The noise multiplier is calibrated once for the whole federation,
``rounds × epochs`` epochs at the node's sampling rate
(:func:`visdm.training._dp.noise_multiplier`), so that the node's data spends at most the
spec's ε over the whole federation. Flower runs one process per message, so no accountant
object survives a round: the node keeps the PRV accountant's history, ``(noise multiplier,
sample rate, steps)`` per round, in its state directory, and ε is that history's
(:func:`visdm.training._dp.charged_epsilon`), reported per region.

**FedProx** (Li et al., MLSys 2020, eq. 2). The proximal term ``μ/2 ‖w − w_global‖²`` is applied
as its own step after each DP-SGD step, ``w ← w − lr · μ (w − w_global)``: it does not touch the
data, so it costs no privacy and leaves the clipped, noised gradient exactly as DP-SGD made it.
The learning-rate schedule and weight averaging of centralised training are not used here.

**Calibration.** Finding σ is a bisection over the PRV accountant (seconds per step of it). The
coordinator finds it once per sampling rate and offers it with the round; the node accepts an
offered σ only if one evaluation of the accountant shows that the planned steps at that σ stay
within the spec's ε (a coordinator cannot talk a node into weaker privacy), else it calibrates
itself; either way it keeps σ in its state directory for the later rounds' processes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, Sampler

from visdm.crypto._hkdf import hkdf_sha256
from visdm.errors import FederationRoundError, InvalidInputError
from visdm.training import _dp
from visdm.training._dp import PoissonBatches, charged_epsilon, noise_multiplier
from visdm.training._rng import JobRandomness
from visdm.training._spec import ModelSpec
from visdm.training._train import (
    _SGD_MOMENTUM,
    _as_batch,
    _batched,
    _deterministic,
    _front,
    _labels,
    _ShuffledBatches,
    _stepper,
    _Tensors,
    prepare_images,
)
from visdm.training._zoo import ZooNet, build_model

__all__ = [
    "LocalUpdate",
    "embed",
    "evaluate",
    "initial_weights",
    "load_history",
    "local_update",
    "node_seed",
    "round_seed",
    "save_history",
    "steps_per_epoch",
]

Weights = dict[str, NDArray[Any]]
History = list[tuple[float, float, int]]


@dataclass(frozen=True, slots=True)
class LocalUpdate:
    """One node's answer to one round: new weights, how many samples, the step's history."""

    weights: Weights
    num_examples: int
    loss: float
    steps: int
    history_entry: tuple[float, float, int] | None  # (σ, q, steps) when DP-SGD ran


def node_seed(state_dir: Path) -> bytes:
    """The node's secret 32-byte seed for this federation, made from the OS CSPRNG on first use
    and kept in its state directory (owner-only); it never leaves the node."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "seed"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        seed = path.read_bytes()
        if len(seed) != 32:
            raise FederationRoundError(
                f"the node's seed file {path} holds {len(seed)} bytes, not 32: remove it to "
                "start the federation afresh"
            ) from None
        return seed
    seed = os.urandom(32)
    with os.fdopen(fd, "wb") as f:
        f.write(seed)
    return seed


def round_seed(seed: bytes, run_id: int, server_round: int) -> bytes:
    """A round's own seed: every round draws fresh batches and noise from the node's secret."""
    return hkdf_sha256(seed, info=b"visdm/federation/v1/round/%d/%d" % (run_id, server_round))


def load_history(path: Path) -> History:
    """The accountant history kept so far (empty before the first round)."""
    if not path.exists():
        return []
    raw = json.loads(path.read_text())
    return [(float(s), float(q), int(n)) for s, q, n in raw]


def save_history(path: Path, history: History) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(history))
    tmp.replace(path)  # a node killed mid-write keeps the previous history, never half of one


def epsilon_of(history: History, delta: float) -> float:
    """ε at ``delta`` after ``history`` (PRV accountant); 0 before any private step."""
    return charged_epsilon(tuple(history), delta) if history else 0.0


def steps_per_epoch(spec: ModelSpec, samples: int) -> int:
    """DP-SGD's steps per epoch (its sampling rate is the inverse), as the training code sets."""
    return -(-samples // spec.batch_size)


def calibrate(
    spec: ModelSpec, samples: int, total_epochs: int, *, offered: float | None = None
) -> float:
    """σ for ``total_epochs`` epochs over ``samples`` at the spec's (ε, δ): ``offered`` when it
    keeps within ε, else the node's own bisection."""
    if spec.dp is None:
        raise InvalidInputError("the spec asks for no DP: there is no noise to calibrate")
    steps = steps_per_epoch(spec, samples)
    rate = 1.0 / steps
    if offered is not None and math.isfinite(offered) and 0 < offered < 1e4:
        spent = charged_epsilon(((offered, rate, steps * total_epochs),), spec.dp.delta)
        if spent <= spec.dp.target_epsilon:
            return offered
    return noise_multiplier(spec.dp.target_epsilon, spec.dp.delta, rate, total_epochs)


def cached_sigma(
    path: Path, spec: ModelSpec, samples: int, total_epochs: int, offered: float | None
) -> float:
    """:func:`calibrate`, once per run: the answer is kept at ``path`` for later rounds."""
    dp = spec.dp
    key = [dp.target_epsilon, dp.delta, samples, spec.batch_size, total_epochs] if dp else []
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return float(saved["sigma"])
    sigma = calibrate(spec, samples, total_epochs, offered=offered)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "sigma": sigma}))
    return sigma


@contextmanager
def _sigma_fixed(sigma: float | None) -> Iterator[None]:
    """Make the training code's DP set-up use ``sigma`` instead of calibrating again.

    The training code asks :func:`visdm.training._dp.noise_multiplier` for σ when it wraps the
    model; a federated round already knows it (:func:`cached_sigma`), and the bisection would
    cost every round's process seconds. Flower runs a ClientApp alone in its process.
    """
    if sigma is None:
        yield
        return
    original = _dp.noise_multiplier
    _dp.noise_multiplier = lambda *_args, **_kwargs: sigma  # type: ignore[assignment]
    try:
        yield
    finally:
        _dp.noise_multiplier = original


def initial_weights(spec: ModelSpec, seed: bytes) -> Weights:
    """The coordinator's starting weights, from its own secret seed."""
    with _deterministic(1):
        torch.manual_seed(JobRandomness.from_seed(seed).init_seed)
        model = build_model(spec)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _model(spec: ModelSpec, weights: Mapping[str, NDArray[Any]]) -> ZooNet:
    model = build_model(spec)
    state = model.state_dict()
    if set(weights) != set(state):
        raise FederationRoundError(
            f"the global weights name {sorted(set(weights) ^ set(state))[:3]} that the spec's "
            "network does not have (or lack them): the coordinator and the node disagree on "
            "the spec"
        )
    model.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(weights[k])) for k in state}, strict=True
    )
    return model


def _check_local(spec: ModelSpec, images: NDArray[np.uint8], proximal_mu: float) -> int:
    n = int(np.shape(images)[0]) if np.ndim(images) else 0
    if n == 0:
        raise InvalidInputError("this node holds no training samples for the round")
    if spec.dp is not None and spec.batch_size >= n:
        raise InvalidInputError(
            f"DP-SGD needs batch_size below the node's {n} samples, got {spec.batch_size}: "
            "lower batch_size or give the node more data"
        )
    if proximal_mu < 0 or not math.isfinite(proximal_mu):
        raise InvalidInputError(f"proximal_mu must be a finite non-negative number: {proximal_mu}")
    return n


def _optimizer(spec: ModelSpec, params: Any) -> Any:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.learning_rate, momentum=_SGD_MOMENTUM)
    return torch.optim.Adam(params, lr=spec.learning_rate)


def local_update(
    spec: ModelSpec,
    images: NDArray[np.uint8],
    labels: NDArray[np.integer[Any]],
    weights: Mapping[str, NDArray[Any]],
    *,
    seed: bytes,
    epochs: int,
    total_epochs: int,
    proximal_mu: float = 0.0,
    sigma: float | None = None,
) -> LocalUpdate:
    """Train from ``weights`` for ``epochs`` epochs on this node's data (module docstring);
    under DP with noise multiplier ``sigma`` when given (:func:`cached_sigma`), else the one
    calibrated for ``total_epochs``."""
    n = _check_local(spec, images, proximal_mu)
    randomness = JobRandomness.from_seed(seed)
    # DP is calibrated over every epoch of the federation, not this round's alone
    budget_spec = spec.model_copy(update={"epochs": total_epochs})
    with _deterministic(1):
        model = _model(spec, weights)
        model.frontend.eval()
        x = _front(model, prepare_images(images, spec.input_shape))
        y = _labels(labels, n, spec.num_classes, "training")
        trainable = model.trainable()
        anchor = [p.detach().clone() for p in trainable.parameters()]
        sampler: Sampler[list[int]]
        if spec.dp is None:
            sampler = _ShuffledBatches(n, spec.batch_size, randomness.shuffle())
        else:
            sampler = PoissonBatches(n, -(-n // spec.batch_size), randomness.poisson())
        loader: DataLoader[tuple[torch.Tensor, ...]] = DataLoader(
            _Tensors(x, y), batch_sampler=sampler, collate_fn=_as_batch
        )
        optimizer = _optimizer(spec, trainable.parameters())
        with _sigma_fixed(sigma):
            stepper = _stepper(budget_spec, trainable, optimizer, loader, randomness)
        steps, loss_sum, batches = 0, 0.0, 0
        trainable.train()
        for _ in range(epochs):
            for xb, yb in loader:
                loss = stepper.step(xb, yb)
                steps += 1
                if xb.shape[0]:
                    loss_sum, batches = loss_sum + loss, batches + 1
                if proximal_mu:
                    with torch.no_grad():
                        for p, p0 in zip(trainable.parameters(), anchor, strict=True):
                            p.sub_(spec.learning_rate * proximal_mu * (p - p0))
        stepper.finish()
    for p in model.parameters():  # drop Opacus' per-sample gradient buffers
        p.grad = None
        if hasattr(p, "grad_sample"):
            del p.grad_sample
    entry = None
    if spec.dp is not None and stepper.noise_multiplier is not None:
        entry = (float(stepper.noise_multiplier), 1.0 / len(loader), steps)
    return LocalUpdate(
        weights={k: v.detach().numpy().copy() for k, v in model.state_dict().items()},
        num_examples=n,
        loss=loss_sum / batches if batches else math.nan,
        steps=steps,
        history_entry=entry,
    )


def embed(
    spec: ModelSpec, weights: Mapping[str, NDArray[Any]], images: NDArray[np.uint8]
) -> NDArray[np.float64]:
    """Penultimate-layer embeddings under ``weights``, as float64, in fixed batches."""
    with _deterministic(1):
        model = _model(spec, weights)
        model.eval()
        x = _front(model, prepare_images(images, spec.input_shape))
        out = _batched(model.features, x)
    return out.numpy().astype(np.float64)


def evaluate(
    spec: ModelSpec,
    weights: Mapping[str, NDArray[Any]],
    images: NDArray[np.uint8],
    labels: NDArray[np.integer[Any]],
) -> float:
    """Accuracy of ``weights`` on a labelled set."""
    with _deterministic(1):
        model = _model(spec, weights)
        model.eval()
        x = _front(model, prepare_images(images, spec.input_shape))
        pred = _batched(model.trainable(), x).argmax(dim=1).numpy()
    return float((pred == np.asarray(labels)).mean())
