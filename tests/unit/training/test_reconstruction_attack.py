"""A consumer rebuilds training images from the model it is delivered, and fails.

The attack: in an MLP, a first-layer hidden unit j that one sample x alone activated is
updated by W_j -= lr·δ_j·x and b_j -= lr·δ_j, so ΔW_j / Δb_j *is* x. With SGD, momentum
included, the update of W_j is still Σ_t c_t·δ_j,t·x_t and that of b_j Σ_t c_t·δ_j,t, so every
unit that saw one image alone hands it over, whatever its δ. The consumer chooses the spec
(an MLP, SGD, small batches) and gets the weights; to compute ΔW it needs the initial weights,
which with DP-SGD also means the noise added at each step.

* defence off (the consumer knows the seed, as when the spec carried it): the initial weights
  come from the seed, and so does the DP noise, which is data-independent and enters SGD
  linearly, so the consumer replays the noise-only trajectory and subtracts it. Training
  images come back exactly, with or without DP.
* defences on (DESIGN §7): the node's secret seed, DP-SGD, and the market's minimum expected
  batch size. The consumer can only take the delivered weights against an initial
  expectation of zero; its candidates are no closer to any training image than the mean
  training image, a guess that needs no model at all.

Error of a candidate c for an image x: the relative squared error after the best affine fit,
min over (a, b) of ‖a·c + b − x‖² / ‖x − x̄‖² = 1 − ρ(c, x)², in [0, 1] (0: x exactly, up to
brightness and contrast; 1: nothing of x). Per image the best candidate counts; the figures
are the best and the median over the training images.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from visdm.datasets import load_fashion_mnist
from visdm.errors import DesignLimitError
from visdm.training import (
    NodeLimits,
    build_model,
    check_design,
    new_job_seed,
    parse_model_spec,
    train,
)
from visdm.training._dp import PoissonBatches, draw_noise
from visdm.training._rng import JobRandomness

pytestmark = [pytest.mark.unit, pytest.mark.attack]

#: the seed a consumer would pick when the spec carried one
KNOWN_SEED = bytes(32)
FEW = 8  # training samples in the defence-off runs
MANY = 256  # and with the defences on
DP = {"target_epsilon": 8.0, "delta": 1e-5, "max_grad_norm": 1.0}
#: what the attacker asks for: a wide MLP, SGD, one sample per step, one epoch
SPEC: dict[str, Any] = {
    "architecture": "mlp",
    "hidden": [256],
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 1,
    "optimizer": "sgd",
    "learning_rate": 0.01,
}
MOMENTUM = 0.9  # visdm.training's SGD
W, B = "features.1.weight", "features.1.bias"  # the first Linear, after Flatten

Float = NDArray[np.float64]


@pytest.fixture(scope="module")
def data() -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8], NDArray[np.int64]]:
    x, y = load_fashion_mnist("train", limit=MANY)
    xv, yv = load_fashion_mnist("test", limit=64)
    return x, y, xv, yv


def errors(candidates: Float, images: Float) -> Float:
    """Per image, 1 − max over candidates of ρ(candidate, image)²."""
    c = candidates - candidates.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(c, axis=1)
    usable = np.isfinite(norms) & (norms > 0)
    c = c[usable] / norms[usable, None]
    x = images - images.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.clip(1.0 - np.square(x @ c.T).max(axis=1), 0.0, 1.0)


def candidates(delta_w: torch.Tensor, delta_b: torch.Tensor) -> Float:
    """ΔW_j / Δb_j for every hidden unit whose bias moved."""
    moved = delta_b != 0
    return (delta_w[moved] / delta_b[moved, None]).numpy()


def initial_weights(spec: dict[str, Any], seed: bytes) -> dict[str, torch.Tensor]:
    """The node's initial weights, rebuilt from the seed with the node's own code."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(JobRandomness.from_seed(seed).init_seed)
        model = build_model(parse_model_spec(spec))
    return {k: v.double() for k, v in model.state_dict().items()}


def noise_displacement(spec: dict[str, Any], seed: bytes, n: int) -> dict[str, torch.Tensor]:
    """How far the DP noise alone moved each parameter, replayed from the seed.

    Opacus adds N(0, (σ·C)²) to the clipped gradient sum and divides by the expected batch
    size; SGD with momentum is linear in the gradients, so the noise's share of the final
    weights is the trajectory of the noise alone.
    """
    from opacus.accountants.utils import get_noise_multiplier  # type: ignore[import-untyped]

    steps = -(-n // spec["batch_size"])
    rate = 1.0 / steps
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        sigma = get_noise_multiplier(
            target_epsilon=DP["target_epsilon"],
            target_delta=DP["delta"],
            sample_rate=rate,
            epochs=spec["epochs"],
            accountant="prv",
        )
    expected_batch = int(n * rate)
    stream = JobRandomness.from_seed(seed).noise()
    params = dict(build_model(parse_model_spec(spec)).named_parameters())
    velocity = {k: torch.zeros(p.shape, dtype=torch.float64) for k, p in params.items()}
    moved = {k: torch.zeros(p.shape, dtype=torch.float64) for k, p in params.items()}
    for _ in range(spec["epochs"] * steps):
        for name, p in params.items():
            noise = draw_noise(stream, p.detach(), sigma * DP["max_grad_norm"]).double()
            velocity[name] = MOMENTUM * velocity[name] + noise / expected_batch
            moved[name] -= spec["learning_rate"] * velocity[name]
    return moved


def report(case: str, errs: Float, images: Float) -> tuple[float, float]:
    trivial = errors(images.mean(axis=0, keepdims=True), images)
    best, median = float(errs.min()), float(np.median(errs))
    print(
        f"reconstruction attack, {case}: best error {best:.3g}, median {median:.3g} "
        f"over {len(errs)} training images (mean-image guess: best {trivial.min():.3g}, "
        f"median {np.median(trivial):.3g})"
    )
    return best, median


def flat(images: NDArray[np.uint8]) -> Float:
    return images.reshape(len(images), -1).astype(np.float64)


def test_defence_off_without_dp_the_known_seed_gives_the_images_back(data: Any) -> None:
    x, y, xv, yv = data
    result = train(SPEC, x[:FEW], y[:FEW], xv, yv, seed=KNOWN_SEED)
    start = initial_weights(SPEC, KNOWN_SEED)
    found = candidates(result.state[W].double() - start[W], result.state[B].double() - start[B])
    best, median = report("defence off, no DP", errors(found, flat(x[:FEW])), flat(x[:FEW]))
    assert best < 0.01 and median < 0.01


def test_defence_off_dp_noise_replayed_from_the_seed_is_subtracted(data: Any) -> None:
    x, y, xv, yv = data
    spec = {**SPEC, "dp": DP}
    result = train(spec, x[:FEW], y[:FEW], xv, yv, seed=KNOWN_SEED)
    start = initial_weights(spec, KNOWN_SEED)
    noise = noise_displacement(spec, KNOWN_SEED, FEW)
    # the sampling replays too: the attacker knows which images the model saw
    sampler = PoissonBatches(FEW, FEW, JobRandomness.from_seed(KNOWN_SEED).poisson())
    seen = sorted({i for batch in sampler for i in batch})
    images = flat(x[:FEW][seen])
    naive = candidates(result.state[W].double() - start[W], result.state[B].double() - start[B])
    naive_best, _ = report("defence off, DP, noise left in", errors(naive, images), images)
    found = candidates(
        result.state[W].double() - start[W] - noise[W],
        result.state[B].double() - start[B] - noise[B],
    )
    best, median = report("defence off, DP, noise subtracted", errors(found, images), images)
    assert len(seen) >= FEW // 2
    assert best < 0.01 and median < 0.01  # DP alone does not help once the seed is known
    assert naive_best > 0.5  # while the noise, left in, does hide the images


def test_defence_off_secret_seed_without_dp_a_large_learning_rate_beats_it(data: Any) -> None:
    x, y, xv, yv = data
    # without DP the updates can be made to dwarf the unknown initial weights
    result = train({**SPEC, "learning_rate": 1.0}, x[:FEW], y[:FEW], xv, yv, seed=new_job_seed())
    found = candidates(result.state[W].double(), result.state[B].double())
    best, _ = report("secret seed, no DP, lr 1", errors(found, flat(x[:FEW])), flat(x[:FEW]))
    assert best < 0.01


#: the attacker's best recipe the market allows: the smallest batch, a learning rate that trains
MARKET_SPEC = {**SPEC, "batch_size": 64, "learning_rate": 1.0, "dp": DP}


def test_defence_off_dp_and_large_batches_still_leak_once_the_seed_is_known(data: Any) -> None:
    x, y, xv, yv = data
    images = flat(x)
    result = train(MARKET_SPEC, x, y, xv, yv, seed=KNOWN_SEED)
    start = initial_weights(MARKET_SPEC, KNOWN_SEED)
    noise = noise_displacement(MARKET_SPEC, KNOWN_SEED, MANY)
    found = candidates(
        result.state[W].double() - start[W] - noise[W],
        result.state[B].double() - start[B] - noise[B],
    )
    best, _ = report("seed known, DP, batch 64, noise subtracted", errors(found, images), images)
    # a unit that saw a few images of a batch is closer to one of them than the mean image is
    assert best < float(errors(images.mean(axis=0, keepdims=True), images).min()) - 0.1


def test_defences_on_the_delivered_model_gives_no_image_back(data: Any) -> None:
    x, y, xv, yv = data
    market = NodeLimits(min_batch_size=64)
    with pytest.raises(DesignLimitError, match="minimum expected batch size of 64"):
        check_design({**SPEC, "dp": DP}, market)
    images = flat(x)
    result = train(MARKET_SPEC, x, y, xv, yv, seed=new_job_seed(), limits=market)
    print(f"reconstruction attack, defences on: model accuracy {result.accuracy_bps / 100} %")
    assert result.accuracy_bps > 2000  # the model learned (chance: 1000)
    # no seed, so no initial weights: their expectation, zero, is the best guess
    found = candidates(result.state[W].double(), result.state[B].double())
    best, median = report("defences on", errors(found, images), images)
    trivial = errors(images.mean(axis=0, keepdims=True), images)
    assert best > 0.8
    # no training image is matched better than by the mean image, which needs no model
    assert best > float(trivial.min()) + 0.3 and median > float(np.median(trivial))
