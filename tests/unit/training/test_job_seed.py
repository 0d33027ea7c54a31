"""The job seed: required and checked, the only source of DP noise, and every step taken."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from tests.unit.training.conftest import SEED, Data, make_spec
from visdm.errors import InvalidInputError
from visdm.training import TrainingResult, _dp, train
from visdm.training._rng import JobRandomness

pytestmark = pytest.mark.unit

DP = {"target_epsilon": 8.0, "delta": 1e-5, "max_grad_norm": 1.0}
_DRAW_NOISE = _dp.draw_noise
DP_MLP = make_spec(architecture="mlp", hidden=[16], batch_size=16, optimizer="sgd", dp=DP)


def test_the_seed_is_a_required_keyword(fmnist: Data) -> None:
    with pytest.raises(TypeError, match="seed"):
        train(make_spec(), *fmnist)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("seed", "got"),
    [
        (bytes(31), "31 bytes"),
        (bytes(33), "33 bytes"),
        (b"", "0 bytes"),
        ("00" * 32, "str"),
        (7, "int"),
        (None, "NoneType"),
    ],
)
def test_a_seed_that_is_not_32_bytes_is_refused(fmnist: Data, seed: Any, got: str) -> None:
    with pytest.raises(InvalidInputError, match=f"must be 32 bytes .*, got {got}: draw one"):
        train(make_spec(), *fmnist, seed=seed)


def _noise_drawn(
    monkeypatch: pytest.MonkeyPatch, *args: Any, **kwargs: Any
) -> tuple[list[torch.Tensor], TrainingResult]:
    """Train; return every noise tensor the DP optimizer added, in order, and the result."""
    drawn: list[torch.Tensor] = []

    def record(stream: Any, reference: torch.Tensor, std: float) -> torch.Tensor:
        noise = _DRAW_NOISE(stream, reference, std)
        drawn.append(noise.clone())
        return noise

    monkeypatch.setattr(_dp, "draw_noise", record)
    return drawn, train(*args, **kwargs)


def test_dp_noise_is_a_function_of_the_seed_alone(
    monkeypatch: pytest.MonkeyPatch, fmnist: Data
) -> None:
    x, y, xv, yv = fmnist
    first, result = _noise_drawn(monkeypatch, DP_MLP, x[:64], y[:64], xv, yv, seed=SEED)
    assert len(first) == 4 * 4  # 4 steps of ⌈64/16⌉, 4 tensors (2 weights, 2 biases) each
    # other training images, same seed: the very same noise, so the noise reveals no data
    other_data, _ = _noise_drawn(monkeypatch, DP_MLP, x[64:128], y[64:128], xv, yv, seed=SEED)
    assert all(torch.equal(a, b) for a, b in zip(first, other_data, strict=True))
    # same data, another seed: unrelated noise
    other_seed, _ = _noise_drawn(monkeypatch, DP_MLP, x[:64], y[:64], xv, yv, seed=bytes(32))
    a = torch.cat([t.flatten() for t in first]).double()
    b = torch.cat([t.flatten() for t in other_seed]).double()
    assert not torch.equal(a, b)
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.05
    # it is the seed's noise stream, N(0, (σ·C)²): whoever holds the seed can regenerate it
    assert result.noise_multiplier is not None
    std = result.noise_multiplier * DP["max_grad_norm"]
    stream = JobRandomness.from_seed(SEED).noise()
    again = [_dp.draw_noise(stream, t, std) for t in first]
    assert all(torch.equal(t, r) for t, r in zip(first, again, strict=True))
    assert float(a.std()) == pytest.approx(std, rel=0.02)
    assert abs(float(a.mean())) < 0.02 * std


def test_an_empty_poisson_draw_still_takes_a_noise_step(
    monkeypatch: pytest.MonkeyPatch, fmnist: Data
) -> None:
    x, y, xv, yv = fmnist
    sizes: list[int] = []
    real_iter = _dp.PoissonBatches.__iter__

    def record_sizes(self: _dp.PoissonBatches) -> Any:
        for batch in real_iter(self):
            sizes.append(len(batch))
            yield batch

    steps: list[tuple[float, bool]] = []  # (gradient norm, finite) at each optimizer step
    real_step = torch.optim.SGD.step

    def record_step(self: torch.optim.SGD, *args: Any, **kwargs: Any) -> Any:
        grads = [p.grad for group in self.param_groups for p in group["params"]]
        norm = math.sqrt(sum(float(g.double().square().sum()) for g in grads if g is not None))
        steps.append((norm, all(g is not None and bool(g.isfinite().all()) for g in grads)))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(_dp.PoissonBatches, "__iter__", record_sizes)
    monkeypatch.setattr(torch.optim.SGD, "step", record_step)
    # 16 samples at rate 1/16, two epochs: 32 steps, each empty with probability (15/16)^16
    spec = make_spec(architecture="mlp", hidden=[8], batch_size=1, optimizer="sgd", epochs=2, dp=DP)
    result = train(spec, x[:16], y[:16], xv, yv, seed=SEED)
    assert len(sizes) == len(steps) == result.steps == 2 * 16
    empty = [i for i, size in enumerate(sizes) if size == 0]
    assert empty, "the seed must give at least one empty draw for this test to mean anything"
    for i in empty:
        norm, finite = steps[i]
        assert finite and norm > 0  # the gradient of an empty step is pure noise
    assert result.samples_seen == sum(sizes)
    # every step is charged: the ε spent is the budget planned for all 32 steps
    assert result.epsilon_spent == pytest.approx(DP["target_epsilon"], rel=0.05)


def test_dp_runs_differ_with_the_seed_and_repeat_with_it(fmnist: Data) -> None:
    x, y, xv, yv = fmnist
    first = train(DP_MLP, x[:64], y[:64], xv, yv, seed=SEED)
    again = train(DP_MLP, x[:64], y[:64], xv, yv, seed=SEED)
    other = train(DP_MLP, x[:64], y[:64], xv, yv, seed=bytes(32))
    for name, tensor in first.state.items():
        assert torch.equal(tensor, again.state[name])
        assert not torch.equal(tensor, other.state[name])
    np.testing.assert_array_equal(first.val_embeddings, again.val_embeddings)
