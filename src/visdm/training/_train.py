"""The compute node's predefined training pipeline: deterministic given the job seed, CPU, DP-SGD.

Randomness (DESIGN §7): every random choice comes from the job's 32-byte ``seed``, which the
node draws per job and the consumer never sees (:mod:`visdm.training._rng`): the initial
weights from ``torch.manual_seed`` with a 64-bit sub-key, the batch order and DP-SGD's Poisson
sampling and Gaussian noise from ChaCha20 streams under their own sub-keys. Knowing the spec
and the delivered weights therefore tells nobody what the weights started from or which noise
was added.

Determinism (DESIGN §5: another node must be able to re-execute a job given the seed):
``torch.use_deterministic_algorithms(True)`` is on, the intra-op thread count is fixed
(``num_threads``, 1 by default) and torch's global generator is forked for the duration of
:func:`train` — all three are restored afterwards. The same seed, spec, data, ``num_threads``,
torch version and CPU family give bit-identical weights; another thread count may change float
summation order.

DP-SGD (Abadi et al., 2016, Algorithm 1) is Opacus' ``PrivacyEngine.make_private_with_epsilon``
(:mod:`visdm.training._dp`): Poisson sampling with rate ``1 / ⌈N / batch_size⌉``, per-sample
gradients clipped to ``max_grad_norm``, Gaussian noise calibrated by the PRV accountant (Gopi
et al., 2021) so that ``epochs`` epochs spend at most ``target_epsilon`` at ``delta``; the ε
actually spent is read back from the accountant. Every step is taken, an empty Poisson draw
included (a noise-only step), so the steps taken are the steps accounted. A Poisson batch is
processed in micro-batches (:func:`~visdm.training._design.dp_micro_batch`: as many samples as
256 MiB of per-sample gradients hold) whose clipped per-sample gradients are summed before the
one noisy step (Opacus' virtual steps), so large batches and networks cost time, not memory.

A fixed front end (the ``scatter_*`` networks' scattering transform) is applied once to the
training and validation images, before training: only ``head ∘ features`` is trained, on its
output, every epoch. The spec's training knobs: ``lr_schedule="cosine"`` sets step ``t`` of
``T``'s learning rate to ``lr · (1 + cos(π t / T)) / 2``; ``ema_decay`` keeps an exponential
moving average of the weights, ``ema ← d_t · ema + (1 - d_t) · w`` after every step with
``d_t = min(ema_decay, (1 + t) / (10 + t))`` (the warm-up of TensorFlow's
``ExponentialMovingAverage``, so the random initial weights fade fast), and the job delivers
the average (De et al., 2022, who average DP-SGD's iterates this way). Both are
post-processing of the private iterates and cost no privacy.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from visdm.errors import DesignLimitError, InvalidInputError
from visdm.training._design import DesignReport, NodeLimits, check_design, dp_micro_batch
from visdm.training._dp import LinearHeadDP, PoissonBatches, epsilon_spent, make_private
from visdm.training._rng import ChaChaStream, JobRandomness
from visdm.training._spec import ModelSpec, parse_model_spec, spec_hash
from visdm.training._zoo import ZooNet, build_model

__all__ = ["ProgressCallback", "Timings", "TrainingResult", "prepare_images", "train"]

#: ``progress(epoch, step, total_steps)``: epoch from 1, step counted over the whole run
ProgressCallback = Callable[[int, int, int], None]

_EVAL_BATCH = 1024
_SGD_MOMENTUM = 0.9


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds per phase; training includes computing a fixed front end's output
    for the training and validation images."""

    train_s: float
    eval_s: float
    embed_s: float

    @property
    def total_s(self) -> float:
        return self.train_s + self.eval_s + self.embed_s


@dataclass(frozen=True)
class TrainingResult:
    """A trained model and what the marketplace needs from it.

    ``state`` is the model's ``state_dict`` (detached CPU tensors); ``model`` the same weights
    in a ready :class:`ZooNet` in eval mode. ``accuracy_bps`` is validation accuracy in basis
    points (10,000 = 100 %). ``epsilon_spent`` and ``noise_multiplier`` are ``None`` without DP.
    ``train_embeddings`` / ``val_embeddings`` are the penultimate-layer activations, float32
    ``(N, embedding_dim)``, in the input order (for :mod:`visdm.valuation`).
    """

    spec: ModelSpec
    spec_hash: bytes
    design: DesignReport
    model: ZooNet
    state: dict[str, torch.Tensor]
    accuracy_bps: int
    epsilon_spent: float | None
    noise_multiplier: float | None
    train_loss: float
    steps: int
    samples_seen: int
    timings: Timings
    train_embeddings: NDArray[np.float32] = field(repr=False)
    val_embeddings: NDArray[np.float32] = field(repr=False)

    @property
    def samples_per_s(self) -> float:
        """Training throughput: samples processed per second of training."""
        return self.samples_seen / self.timings.train_s if self.timings.train_s > 0 else math.inf


def prepare_images(
    images: NDArray[Any], input_shape: tuple[int, int, int] | None = None
) -> torch.Tensor:
    """``uint8`` ``N×H×W`` or ``N×H×W×C`` images → float32 ``N×C×H×W`` scaled to [-1, 1].

    With ``input_shape`` (C, H, W) the layout must match it; otherwise
    :class:`~visdm.errors.InvalidInputError` says which shape was given and which expected.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise InvalidInputError(f"images must be uint8, got {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim == 4:
        arr = arr.transpose(0, 3, 1, 2)
    else:
        raise InvalidInputError(
            f"images must be N×H×W or N×H×W×C, got an array of shape {arr.shape}"
        )
    if input_shape is not None and tuple(arr.shape[1:]) != tuple(input_shape):
        raise InvalidInputError(
            f"images are {arr.shape[1:]} (C, H, W) but the spec's input_shape is "
            f"{tuple(input_shape)}"
        )
    x = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)
    return x.div_(127.5).sub_(1.0)


def _labels(labels: NDArray[Any], n: int, num_classes: int, what: str) -> torch.Tensor:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidInputError(f"{what} labels have shape {arr.shape}, expected ({n},)")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"{what} labels must be integers, got {arr.dtype}")
    if n and (int(arr.min()) < 0 or int(arr.max()) >= num_classes):
        raise InvalidInputError(
            f"{what} labels span {int(arr.min())}..{int(arr.max())}, outside "
            f"0..{num_classes - 1} (num_classes={num_classes})"
        )
    return torch.from_numpy(arr.astype(np.int64))


@contextmanager
def _deterministic(num_threads: int) -> Iterator[None]:
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(num_threads)
    try:
        # the global generator is seeded from the job's secret: leave no trace of it behind
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


def _count(images: NDArray[Any]) -> int:
    shape = np.shape(images)
    return int(shape[0]) if shape else 0


def _front(model: ZooNet, x: torch.Tensor) -> torch.Tensor:
    if isinstance(model.frontend, nn.Identity):
        return x
    return _batched(model.frontend, x)


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        parts = [fn(x[i : i + _EVAL_BATCH]) for i in range(0, x.shape[0], _EVAL_BATCH)]
    return torch.cat(parts) if parts else torch.empty(0)


def train(
    spec: ModelSpec | bytes | str | dict[str, Any],
    train_images: NDArray[np.uint8],
    train_labels: NDArray[np.integer[Any]],
    val_images: NDArray[np.uint8],
    val_labels: NDArray[np.integer[Any]],
    *,
    seed: bytes,
    limits: NodeLimits | None = None,
    progress: ProgressCallback | None = None,
    num_threads: int = 1,
) -> TrainingResult:
    """Train ``spec`` on the training set, evaluate on the validation set, embed both.

    ``seed`` is the job's 32-byte secret (:func:`~visdm.training.new_job_seed`); every random
    choice derives from it. The spec is validated and checked against ``limits``
    (:func:`check_design`) first, memory for the number of samples given included. SGD uses
    momentum 0.9; Adam PyTorch's defaults. Raises :class:`~visdm.errors.InvalidModelSpecError`,
    :class:`~visdm.errors.DesignLimitError` or :class:`~visdm.errors.InvalidInputError` (seed
    length, image layout, labels, or a DP ``delta`` not below 1/N) before any training starts.
    """
    randomness = JobRandomness.from_seed(seed)
    spec = parse_model_spec(spec)
    limits = limits or NodeLimits()
    check_design(spec, limits)
    if num_threads < 1:
        raise InvalidInputError(f"num_threads must be >= 1, got {num_threads}")
    # memory is checked from the declared counts, before any float copy is made
    n, n_val = _count(train_images), _count(val_images)
    if n > limits.max_samples:
        raise DesignLimitError(f"{n:,} training samples exceed max_samples={limits.max_samples:,}")
    design = check_design(spec, limits, samples=n + n_val)
    x_train = prepare_images(train_images, spec.input_shape)
    x_val = prepare_images(val_images, spec.input_shape)
    y_train = _labels(train_labels, n, spec.num_classes, "training")
    y_val = _labels(val_labels, n_val, spec.num_classes, "validation")
    if n == 0 or n_val == 0:
        raise InvalidInputError(f"need training and validation samples, got {n} and {n_val}")
    if spec.dp is not None and spec.batch_size >= n:
        raise InvalidInputError(
            f"DP-SGD samples each record with rate batch_size/N; batch_size={spec.batch_size} "
            f"is not below N={n} training samples, so there is no sampling to amplify privacy: "
            "lower batch_size"
        )
    if spec.dp is not None and spec.dp.delta >= 1.0 / n:
        raise InvalidInputError(
            f"dp.delta={spec.dp.delta} must be below 1/N = {1.0 / n:.3g} for {n} training "
            "samples, or the guarantee allows leaking a whole record: lower it"
        )

    with _deterministic(num_threads):
        torch.manual_seed(randomness.init_seed)
        model = build_model(spec)
        start = time.perf_counter()
        model.frontend.eval()
        # the front end has nothing to learn: its output is computed once, not every epoch
        x_train, x_val = _front(model, x_train), _front(model, x_val)
        frontend_s = time.perf_counter() - start
        trainable = model.trainable()
        fit = _fit(spec, trainable, x_train, y_train, randomness=randomness, progress=progress)
        model.eval()
        start = time.perf_counter()
        predictions = _batched(trainable, x_val).argmax(dim=1)
        correct = int((predictions == y_val).sum())
        eval_s = time.perf_counter() - start
        start = time.perf_counter()
        train_emb = _batched(model.features, x_train).numpy().astype(np.float32)
        val_emb = _batched(model.features, x_val).numpy().astype(np.float32)
        embed_s = time.perf_counter() - start

    for p in model.parameters():  # drop Opacus' per-sample gradient buffers
        p.grad = None
        if hasattr(p, "grad_sample"):
            del p.grad_sample
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    return TrainingResult(
        spec=spec,
        spec_hash=spec_hash(spec),
        design=design,
        model=model,
        state=state,
        accuracy_bps=(correct * 10_000 + n_val // 2) // n_val,
        epsilon_spent=fit.epsilon,
        noise_multiplier=fit.noise_multiplier,
        train_loss=fit.last_epoch_loss,
        steps=fit.steps,
        samples_seen=fit.seen,
        timings=Timings(train_s=frontend_s + fit.train_s, eval_s=eval_s, embed_s=embed_s),
        train_embeddings=train_emb,
        val_embeddings=val_emb,
    )


@dataclass(frozen=True)
class _Fit:
    steps: int
    seen: int
    last_epoch_loss: float
    train_s: float
    epsilon: float | None
    noise_multiplier: float | None


class _Tensors(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images and labels fetched a whole batch at a time, an empty batch included."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        return self.x[rows], self.y[rows]


def _as_batch(batch: Any) -> Any:
    return batch  # _Tensors.__getitems__ already returns the batch


class _ShuffledBatches(Sampler[list[int]]):
    """Batches of ``batch_size`` in a new random order each epoch; the last may be smaller."""

    def __init__(self, n: int, batch_size: int, stream: ChaChaStream) -> None:
        self.n, self.batch_size = n, batch_size
        self._stream = stream

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = self._stream.permutation(self.n).tolist()
        for start in range(0, self.n, self.batch_size):
            yield order[start : start + self.batch_size]


def _fit(
    spec: ModelSpec,
    trainable: nn.Sequential,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    randomness: JobRandomness,
    progress: ProgressCallback | None,
) -> _Fit:
    n = x.shape[0]
    sampler: Sampler[list[int]]
    if spec.dp is None:
        sampler = _ShuffledBatches(n, spec.batch_size, randomness.shuffle())
    else:
        sampler = PoissonBatches(n, -(-n // spec.batch_size), randomness.poisson())
    loader: DataLoader[tuple[torch.Tensor, ...]] = DataLoader(
        _Tensors(x, y), batch_sampler=sampler, collate_fn=_as_batch
    )
    optimizer: Any
    if spec.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            trainable.parameters(), lr=spec.learning_rate, momentum=_SGD_MOMENTUM
        )
    else:
        optimizer = torch.optim.Adam(trainable.parameters(), lr=spec.learning_rate)
    stepper = _stepper(spec, trainable, optimizer, loader, randomness)
    average = _Average(trainable, spec.ema_decay) if spec.ema_decay is not None else None

    total_steps = spec.epochs * len(loader)
    step = seen = loss_batches = 0
    loss_sum = 0.0
    start = time.perf_counter()
    trainable.train()
    for epoch in range(1, spec.epochs + 1):
        loss_sum, loss_batches = 0.0, 0
        for xb, yb in loader:
            _schedule(stepper.optimizer, spec, step, total_steps)
            step += 1
            loss = stepper.step(xb, yb)
            if average is not None:
                average.update(step)
            if xb.shape[0]:
                seen += xb.shape[0]
                loss_sum += loss
                loss_batches += 1
            if progress is not None:
                progress(epoch, step, total_steps)
    train_s = time.perf_counter() - start
    epsilon = stepper.finish()
    if average is not None:
        average.copy_to(trainable)
    return _Fit(
        steps=step,
        seen=seen,
        last_epoch_loss=loss_sum / loss_batches if loss_batches else math.nan,
        train_s=train_s,
        epsilon=epsilon,
        noise_multiplier=stepper.noise_multiplier,
    )


@dataclass(frozen=True)
class _Stepper:
    """How one batch becomes one optimizer step; ``finish`` ends training, returns ε spent."""

    step: Callable[[torch.Tensor, torch.Tensor], float]
    optimizer: Any  # what the learning-rate schedule sets
    noise_multiplier: float | None
    finish: Callable[[], float | None]


def _stepper(
    spec: ModelSpec,
    trainable: nn.Sequential,
    optimizer: Any,
    loader: DataLoader[tuple[torch.Tensor, ...]],
    randomness: JobRandomness,
) -> _Stepper:
    criterion = nn.CrossEntropyLoss()
    dp = spec.dp
    if dp is None:
        return _Stepper(
            lambda xb, yb: _step(trainable, optimizer, criterion, xb, yb, micro=None),
            optimizer,
            None,
            lambda: None,
        )
    head = _linear_head(trainable)
    if head is not None:
        linear = LinearHeadDP(
            trainable[0],
            head,
            optimizer,
            dp,
            samples=len(loader.dataset),  # type: ignore[arg-type]
            steps_per_epoch=len(loader),
            epochs=spec.epochs,
            noise=randomness.noise(),
        )
        return _Stepper(
            linear.step, linear, linear.noise_multiplier, lambda: linear.epsilon(dp.delta)
        )
    wrapped, dp_optimizer, engine = make_private(
        spec.epochs,
        dp,
        model=trainable,
        optimizer=optimizer,
        loader=loader,
        criterion=criterion,
        noise=randomness.noise(),
    )
    micro = dp_micro_batch(sum(p.numel() for p in trainable.parameters()), spec.batch_size)

    def finish() -> float:
        spent = epsilon_spent(engine, dp.delta)
        wrapped.remove_hooks()  # type: ignore[operator]
        return spent

    return _Stepper(
        lambda xb, yb: _step(wrapped, dp_optimizer, criterion, xb, yb, micro=micro),
        dp_optimizer,
        float(dp_optimizer.noise_multiplier),
        finish,
    )


def _linear_head(trainable: nn.Sequential) -> nn.Linear | None:
    """The head, when it is the only layer with parameters (DP then needs no Opacus hooks)."""
    features, head = trainable[0], trainable[1]
    if isinstance(head, nn.Linear) and not any(True for _ in features.parameters()):
        return head
    return None


def _schedule(optimizer: Any, spec: ModelSpec, step: int, total: int) -> None:
    """Set the learning rate of step ``step`` (from 0) of ``total``."""
    if spec.lr_schedule == "cosine":
        for group in optimizer.param_groups:
            group["lr"] = spec.learning_rate * 0.5 * (1 + math.cos(math.pi * step / total))


def _step(
    wrapped: nn.Module,
    optimizer: Any,
    criterion: nn.Module,
    xb: torch.Tensor,
    yb: torch.Tensor,
    *,
    micro: int | None,
) -> float:
    """One optimizer step on a batch; returns its mean loss (NaN for an empty batch).

    Under DP (``micro`` given) a batch is cut into micro-batches of ``micro`` samples: Opacus
    clips and sums each one's per-sample gradients, and only the last adds the noise and steps
    (Opacus' virtual steps).
    """
    size = xb.shape[0]
    cuts = range(0, size, micro) if micro is not None and size else range(1)
    total = 0.0
    for k, start in enumerate(cuts):
        part = slice(start, start + micro) if micro is not None else slice(None)
        optimizer.zero_grad(set_to_none=True)
        # an empty Poisson batch has a NaN mean loss but zero gradients: the step is noise
        loss = criterion(wrapped(xb[part]), yb[part])
        with warnings.catch_warnings():
            # Opacus' per-sample-gradient hooks fire on the first layer's output since the
            # images need no gradient; torch warns about that, harmlessly
            warnings.filterwarnings(
                "ignore", message="Full backward hook is firing", category=UserWarning
            )
            loss.backward()
        if k + 1 < len(cuts):
            optimizer.signal_skip_step(do_skip=True)
        optimizer.step()
        total += float(loss.detach()) * xb[part].shape[0]
    return total / size if size else math.nan


class _Average:
    """An exponential moving average of a module's parameters (see the module docstring)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.values = [p.detach().clone() for p in self.params]

    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for value, p in zip(self.values, self.params, strict=True):
                value.mul_(decay).add_(p.detach(), alpha=1.0 - decay)

    def copy_to(self, module: nn.Module) -> None:
        del module  # the parameters were taken from it
        with torch.no_grad():
            for value, p in zip(self.values, self.params, strict=True):
                p.copy_(value)
