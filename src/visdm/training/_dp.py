"""DP-SGD (Abadi et al., 2016, Algorithm 1) on Opacus, with the job's randomness.

Opacus clips the per-sample gradients and keeps the privacy accountant; the randomness is the
job's own (:mod:`visdm.training._rng`): :class:`PoissonBatches` draws each step's batch and
:func:`use_noise_stream` makes the optimizer draw its Gaussian noise from a ChaCha20 stream,
in place of Opacus' ``secure_mode``, which needs torchcsprng. Opacus is therefore asked for
``poisson_sampling=False`` and handed a loader that already samples the Poisson way: it then
derives the same sampling rate (``1 / len(loader)``) and expected batch size as its own
``DPDataLoader`` would, and the accountant sees every step.

A step whose Poisson draw is empty still runs: clipping sums nothing, the optimizer adds the
noise and moves the weights. Skipping it would make the steps taken differ from the steps the
accountant charges, and would tell anyone who sees the weights move that a step had data.

:class:`LinearHeadDP` is the same DP-SGD step for a network whose only trainable layer is one
linear layer (``scatter_linear``), with the per-sample gradients' norms and clipped sum in
closed form instead of Opacus' per-sample gradient tensors (batch × parameters floats, which
made such a head train about ten times slower); the clipping rule, the noise stream and its
order, the scaling and the PRV accountant are Opacus' own, and a test checks that both give
the same weights.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from visdm.training._rng import ChaChaStream
from visdm.training._spec import DPSpec

__all__ = [
    "LinearHeadDP",
    "PoissonBatches",
    "charged_epsilon",
    "draw_noise",
    "epsilon_spent",
    "make_private",
    "noise_multiplier",
    "use_noise_stream",
]


class PoissonBatches(Sampler[list[int]]):
    """``steps`` batches per epoch; each includes each of ``n`` samples with probability 1/steps.

    The rule of Opacus' ``UniformWithReplacementSampler`` (a sample joins when its uniform is
    below the rate), with the uniforms read from ``stream``. Batches may be empty.
    """

    def __init__(self, n: int, steps: int, stream: ChaChaStream) -> None:
        self.n, self.steps, self.rate = n, steps, 1.0 / steps
        self._stream = stream

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            chosen = self._stream.uniform(self.n) < self.rate
            yield chosen.nonzero()[0].tolist()


def draw_noise(stream: ChaChaStream, reference: torch.Tensor, std: float) -> torch.Tensor:
    """Gaussian noise of ``reference``'s shape and dtype: float64 normals × ``std``, then cast."""
    values = stream.normal(reference.numel()) * std
    return torch.from_numpy(values).to(reference.dtype).view_as(reference)


def use_noise_stream(optimizer: Any, stream: ChaChaStream) -> None:
    """Make an Opacus ``DPOptimizer`` draw its noise from ``stream``, parameter by parameter.

    Replaces the instance's ``add_noise`` (gradient := clipped sum + N(0, (σ·C)²)), the one step
    that reads a random generator; clipping, scaling and accounting stay Opacus' own.
    """

    def add_noise() -> None:
        std = float(optimizer.noise_multiplier) * float(optimizer.max_grad_norm)
        for p in optimizer.params:
            summed: torch.Tensor = p.summed_grad
            p.grad = (summed + draw_noise(stream, summed, std)).view_as(p)

    optimizer.add_noise = add_noise


def make_private(
    spec_epochs: int,
    dp: DPSpec,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader[tuple[torch.Tensor, ...]],
    criterion: nn.Module,
    noise: ChaChaStream,
) -> tuple[nn.Module, Any, Any]:
    """Wrap for DP-SGD so that ``spec_epochs`` epochs over ``loader`` spend ``dp``'s budget.

    ``loader`` must sample the Poisson way (:class:`PoissonBatches`). Returns the wrapped
    module, the ``DPOptimizer`` (noise from ``noise``) and the ``PrivacyEngine``. This is
    Opacus' ``make_private_with_epsilon`` with the noise multiplier's calibration cached
    (:func:`noise_multiplier`).
    """
    from opacus import PrivacyEngine  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        # secure_mode=False because its CSPRNG (torchcsprng) is replaced by the job's streams
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        engine = PrivacyEngine()
    sigma = noise_multiplier(dp.target_epsilon, dp.delta, 1 / len(loader), spec_epochs)
    with warnings.catch_warnings():
        _ignore_prv_domain_warning()
        wrapped, dp_optimizer, _ = engine.make_private(
            module=model,
            optimizer=optimizer,
            criterion=criterion,
            data_loader=loader,
            noise_multiplier=sigma,
            max_grad_norm=dp.max_grad_norm,
            poisson_sampling=False,
        )
    use_noise_stream(dp_optimizer, noise)
    return wrapped, dp_optimizer, engine


@functools.lru_cache(maxsize=64)
def noise_multiplier(target_epsilon: float, delta: float, sample_rate: float, epochs: int) -> float:
    """σ such that ``epochs`` epochs at ``sample_rate`` spend at most ``target_epsilon`` at
    ``delta`` by the PRV accountant: Opacus' bisection (to 0.01 in ε), which takes seconds, so
    the answer is kept for the next job with the same budget and sampling."""
    from opacus.accountants.utils import get_noise_multiplier  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        _ignore_prv_domain_warning()
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                epochs=epochs,
                accountant="prv",
            )
        )


def epsilon_spent(engine: Any, delta: float) -> float:
    """The ε the accountant charged for the steps taken, at ``delta``."""
    return charged_epsilon(tuple(engine.accountant.history), delta)


@functools.lru_cache(maxsize=64)
def charged_epsilon(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    """ε at ``delta`` of the PRV accountant after ``history`` — ``(noise multiplier, sample
    rate, steps)`` runs, as Opacus keeps it — computed once per history: it takes seconds."""
    from opacus.accountants import PRVAccountant  # type: ignore[import-untyped]

    accountant = PRVAccountant()
    accountant.history = list(history)
    with warnings.catch_warnings():
        _ignore_prv_domain_warning()
        return float(accountant.get_epsilon(delta))


def _ignore_prv_domain_warning() -> None:
    # The PRV accountant sizes its discretisation domain with a coarse RDP bound whose alpha
    # grid Opacus does not expose; RDP then warns that its optimal order is the largest alpha.
    # That bound only pads the domain, the ε reported is the PRV one.
    warnings.filterwarnings(
        "ignore", message="Optimal order is the largest alpha", category=UserWarning
    )


class LinearHeadDP:
    """DP-SGD steps for ``head(features(x))`` where ``features`` has no parameters and ``head``
    is an ``nn.Linear`` trained with the cross-entropy loss.

    Sample ``i``'s gradient is ``δ_i [z_i, 1]`` with ``z_i = features(x_i)`` and
    ``δ_i = softmax(head(z_i)) - onehot(y_i)``, so its norm is ``‖δ_i‖ (‖z_i‖² + 1)^½`` and
    the sum of the clipped gradients is ``(c ⊙ δ)ᵀ [Z, 1]`` — ghost clipping (Goodfellow, 2015;
    Lee & Kifer, 2021), exact. As in Opacus: ``c_i = min(1, C / (norm_i + 1e-6))``, noise
    ``N(0, (σC)²)`` added to the sum parameter by parameter (weight, then bias) from the job's
    ``noise`` stream, division by the expected batch size ``⌊N / steps⌋``, then the wrapped
    optimizer's step; the PRV accountant charges every step at rate ``1 / steps``.
    """

    def __init__(
        self,
        features: nn.Module,
        head: nn.Linear,
        optimizer: torch.optim.Optimizer,
        dp: DPSpec,
        *,
        samples: int,
        steps_per_epoch: int,
        epochs: int,
        noise: ChaChaStream,
    ) -> None:
        from opacus.accountants import PRVAccountant

        self.features, self.head, self.optimizer = features, head, optimizer
        self.clip = dp.max_grad_norm
        self.sample_rate = 1 / steps_per_epoch
        self.noise_multiplier = noise_multiplier(
            dp.target_epsilon, dp.delta, self.sample_rate, epochs
        )
        self.expected_batch = int(samples * self.sample_rate)
        self.accountant = PRVAccountant()
        self._noise = noise

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The wrapped optimizer's (for the learning-rate schedule)."""
        return self.optimizer.param_groups

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One noisy step on a Poisson batch (possibly empty); returns its mean loss."""
        with torch.no_grad():
            z = self.features(x).flatten(1)
            logits = self.head(z)
            loss = nn.functional.cross_entropy(logits, y) if len(y) else torch.tensor(math.nan)
            delta = torch.softmax(logits, dim=1)
            delta[torch.arange(len(y)), y] -= 1.0
            norms = delta.norm(dim=1) * torch.sqrt((z * z).sum(dim=1) + 1.0)
            scaled = delta * (self.clip / (norms + 1e-6)).clamp(max=1.0)[:, None]
            sums = (scaled.T @ z, scaled.sum(dim=0))
            std = self.noise_multiplier * self.clip
            for p, summed in zip((self.head.weight, self.head.bias), sums, strict=True):
                grad = summed + draw_noise(self._noise, summed, std)
                p.grad = grad.view_as(p) / self.expected_batch
        self.optimizer.step()
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return float(loss)

    def epsilon(self, delta: float) -> float:
        """The ε the accountant charged for the steps taken, at ``delta``."""
        return charged_epsilon(tuple(self.accountant.history), delta)
