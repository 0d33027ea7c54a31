"""The informed adversary's first-layer reconstruction, on synthetic weights: the linear algebra.

The attack on models the node trains is in test_privacy_audit.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from visdm.errors import InvalidInputError
from visdm.training._lira import MembershipAudit
from visdm.training._reconstruct import (
    chance_similarity,
    input_vectors,
    reconstruct_missing,
    reconstruction_similarity,
    run_reconstruction_audit,
)
from visdm.training._spec import parse_model_spec

pytestmark = pytest.mark.unit

H, D, N = 16, 100, 30


def _sgd_like(
    rng: np.random.Generator, *, init_scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W_T = W_0 + Σ a_i x_iᵀ: how SGD moves a dense first layer (see _reconstruct)."""
    x = rng.uniform(-1, 1, size=(N, D))
    w0 = rng.uniform(-init_scale, init_scale, size=(H, D))
    a = rng.normal(0, 0.05, size=(N, H))
    return x, w0, w0 + a.T @ x


def test_known_initial_weights_give_the_unexplained_part_of_the_sample_exactly() -> None:
    x, w0, wt = _sgd_like(np.random.default_rng(0), init_scale=0.1)
    for target in (0, 7, N - 1):
        known = np.delete(x, target, axis=0)
        guess = reconstruct_missing(wt, known, initial_weight=w0)
        assert np.linalg.norm(guess) == pytest.approx(1.0)
        assert reconstruction_similarity(guess, x[target], known) == pytest.approx(1.0, abs=1e-9)
        # and not a sample the model never saw
        stranger = np.random.default_rng(100 + target).uniform(-1, 1, size=D)
        assert reconstruction_similarity(guess, stranger, known) < 0.5


def test_without_initial_weights_the_update_must_outweigh_them() -> None:
    rng = np.random.default_rng(1)
    x, w0, wt = _sgd_like(rng, init_scale=1e-4)
    known = x[1:]
    assert reconstruction_similarity(reconstruct_missing(wt, known), x[0], known) > 0.99
    x, w0, wt = _sgd_like(rng, init_scale=10.0)
    weak = reconstruction_similarity(reconstruct_missing(wt, known := x[1:]), x[0], known)
    assert weak < 0.5
    strong = reconstruct_missing(wt, known, initial_weight=w0)
    assert reconstruction_similarity(strong, x[0], known) == pytest.approx(1.0, abs=1e-9)


def test_isotropic_noise_on_the_weights_leaves_a_random_direction() -> None:
    # what DP-SGD adds: Gaussian noise on every weight, which the projection keeps
    rng = np.random.default_rng(2)
    x, w0, wt = _sgd_like(rng, init_scale=0.1)
    known = x[1:]
    noisy = wt + rng.normal(0, 10.0, size=wt.shape)
    sims = [
        reconstruction_similarity(
            reconstruct_missing(
                noisy + rng.normal(0, 10.0, size=wt.shape), known, initial_weight=w0
            ),
            x[0],
            known,
        )
        for _ in range(40)
    ]
    # the complement has D − (N − 1) = 71 dimensions
    assert np.mean(sims) == pytest.approx(chance_similarity(D - N + 1), abs=0.04)


def test_chance_similarity_is_the_mean_cosine_of_random_directions() -> None:
    rng = np.random.default_rng(3)
    for dim in (2, 5, 71):
        v = rng.normal(size=(20_000, dim))
        mc = np.abs(v[:, 0] / np.linalg.norm(v, axis=1)).mean()
        assert chance_similarity(dim) == pytest.approx(mc, abs=0.01)
    assert chance_similarity(1) == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="dimension must be >= 1, got 0"):
        chance_similarity(0)


def test_input_vectors_are_what_the_network_sees() -> None:
    images = np.array([[[0, 255], [128, 0]]], dtype=np.uint8)
    # float32, as prepare_images makes them, widened
    expected = np.array([[-1.0, 1.0, 128 / 127.5 - 1, -1.0]])
    assert input_vectors(images) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"final_weight": np.zeros((4, 10)), "known_inputs": np.zeros((3, 9))}, "takes 10"),
        (
            {
                "final_weight": np.zeros((4, 10)),
                "known_inputs": np.zeros((3, 10)),
                "initial_weight": np.zeros((4, 9)),
            },
            "initial_weight is",
        ),
        ({"final_weight": np.zeros(10), "known_inputs": np.zeros((3, 10))}, "final_weight must"),
        (
            {"final_weight": np.full((4, 10), np.inf), "known_inputs": np.zeros((3, 10))},
            "final_weight must be a finite",
        ),
        (
            {"final_weight": np.zeros((4, 3)), "known_inputs": np.eye(3)},
            "span all 3 input dimensions",
        ),
    ],
)
def test_reconstruct_missing_refuses_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        reconstruct_missing(**kwargs)


def test_similarity_refuses_a_target_inside_the_known_span() -> None:
    known = np.eye(5)[:3]
    with pytest.raises(InvalidInputError, match="lies in the span of the known samples"):
        reconstruction_similarity(np.eye(5)[4], known[0] + known[1], known)
    with pytest.raises(InvalidInputError, match="the known inputs 5"):
        reconstruction_similarity(np.ones(4), np.ones(4), known)


def _audit(**spec: Any) -> MembershipAudit:
    keep = np.zeros((4, 6), dtype=bool)
    keep[:2] = True
    base = {
        "architecture": "mlp",
        "input_shape": [1, 8, 8],
        "num_classes": 2,
        "epochs": 1,
        "batch_size": 2,
        "optimizer": "sgd",
        "learning_rate": 0.1,
    }
    return MembershipAudit(
        spec=parse_model_spec(base | spec),
        membership=keep,
        confidences=np.zeros((4, 6)),
        losses=np.zeros((4, 6)),
        accuracy_bps=(0,) * 4,
        epsilon_spent=(None,) * 4,
        seeds=(bytes(32),) * 4,
        states=(),
    )


@pytest.mark.parametrize(
    ("audit", "images", "targets", "message"),
    [
        (_audit(optimizer="adam"), 6, 1, "needs an mlp trained with sgd"),
        (_audit(architecture="small_cnn"), 6, 1, "'small_cnn'"),
        (_audit(), 5, 1, "5 images but the audit's pool has 6"),
        (_audit(), 6, 0, "targets_per_model must be >= 1"),
    ],
)
def test_reconstruction_audit_refuses_what_it_cannot_attack(
    audit: MembershipAudit, images: int, targets: int, message: str
) -> None:
    pool = np.zeros((images, 8, 8), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match=message):
        run_reconstruction_audit(audit, pool, targets_per_model=targets)
