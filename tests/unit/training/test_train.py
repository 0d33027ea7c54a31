"""Training: determinism, DP-SGD accounting, embeddings, progress, input checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.unit.training.conftest import SEED, Data, make_spec
from visdm.errors import DesignLimitError, InvalidInputError
from visdm.training import NodeLimits, TrainingResult, train

pytestmark = pytest.mark.unit

DP = {"target_epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0}


def _same_weights(a: TrainingResult, b: TrainingResult) -> bool:
    return a.state.keys() == b.state.keys() and all(
        torch.equal(a.state[k], b.state[k]) for k in a.state
    )


def test_same_seed_spec_and_data_give_bit_identical_weights(fmnist: Data) -> None:
    spec = make_spec(architecture="resnet", width=8, depth=2)
    first = train(spec, *fmnist, seed=SEED)
    second = train(spec, *fmnist, seed=SEED)
    assert _same_weights(first, second)
    np.testing.assert_array_equal(first.train_embeddings, second.train_embeddings)
    assert first.accuracy_bps == second.accuracy_bps
    other_seed = train(spec, *fmnist, seed=bytes(32))
    assert not _same_weights(first, other_seed)


def test_result_holds_accuracy_embeddings_and_timings(fmnist: Data) -> None:
    x, y, xv, yv = fmnist
    calls: list[tuple[int, int, int]] = []
    result = train(
        make_spec(architecture="mlp", hidden=[64], epochs=2),
        x,
        y,
        xv,
        yv,
        seed=SEED,
        progress=lambda *a: calls.append(a),
    )
    assert 3000 < result.accuracy_bps <= 10_000  # chance is 1000 bps
    predictions = result.model(torch.from_numpy(xv[:, None]).float() / 127.5 - 1).argmax(1)
    expected = round(10_000 * float((predictions.numpy() == yv).mean()))
    assert result.accuracy_bps == expected
    assert result.epsilon_spent is None and result.noise_multiplier is None
    assert result.train_embeddings.shape == (512, 64)
    assert result.val_embeddings.shape == (256, 64)
    assert result.train_embeddings.dtype == np.float32
    assert result.steps == 2 * 16 and result.samples_seen == 2 * 512
    assert calls[0] == (1, 1, 32) and calls[-1] == (2, 32, 32) and len(calls) == 32
    assert result.timings.train_s > 0 and result.samples_per_s > 0
    assert math.isfinite(result.train_loss)


def test_dp_run_spends_at_most_its_budget_and_is_reproducible(fmnist: Data) -> None:
    spec = make_spec(dp=DP, batch_size=64, learning_rate=2e-3)
    result = train(spec, *fmnist, seed=SEED)
    assert result.epsilon_spent is not None
    assert 0.5 * 3.0 < result.epsilon_spent <= 3.0 * 1.05
    assert result.noise_multiplier is not None and result.noise_multiplier > 0
    # DP variants replace BatchNorm, which mixes samples, by GroupNorm
    kinds = {type(m) for m in result.model.modules()}
    assert nn.GroupNorm in kinds and nn.BatchNorm2d not in kinds
    assert not any(hasattr(p, "grad_sample") for p in result.model.parameters())
    again = train(spec, *fmnist, seed=SEED)  # same seed, same sampling and noise: identical
    assert _same_weights(result, again)
    assert again.epsilon_spent == result.epsilon_spent


def test_training_restores_global_torch_settings(fmnist: Data) -> None:
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(1234)
    expected_draw = torch.rand(3)
    torch.manual_seed(1234)
    train(make_spec(architecture="mlp", hidden=[8]), *fmnist, seed=SEED, num_threads=1)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    # the global generator is left as it was, not seeded from the job's secret
    assert torch.equal(torch.rand(3), expected_draw)


def test_rgb_channels_last_images_are_accepted() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 3, size=64)
    result = train(
        make_spec(architecture="resnet", input_shape=[3, 16, 16], num_classes=3, width=4, depth=1),
        x,
        y,
        x[:16],
        y[:16],
        seed=SEED,
    )
    assert result.val_embeddings.shape == (16, 4)


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda d: (d[0][:, :20], *d[1:]), InvalidInputError, r"input_shape is \(1, 28, 28\)"),
        (lambda d: (d[0].astype(np.float32), *d[1:]), InvalidInputError, "must be uint8"),
        (lambda d: (d[0], d[1][:10], *d[2:]), InvalidInputError, r"expected \(512,\)"),
        (lambda d: (d[0], d[1] + 5, *d[2:]), InvalidInputError, "outside 0..9"),
        (lambda d: (*d[:3], d[3].astype(np.float64)), InvalidInputError, "must be integers"),
        (lambda d: (d[0][:0], d[1][:0], *d[2:]), InvalidInputError, "got 0 and 256"),
    ],
)
def test_bad_inputs_are_refused_before_training(fmnist: Data, mutate, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        train(make_spec(), *mutate(fmnist), seed=SEED)


def test_dp_delta_must_be_below_one_over_n(fmnist: Data) -> None:
    with pytest.raises(InvalidInputError, match=r"dp.delta=0.005 must be below 1/N"):
        train(make_spec(dp={"target_epsilon": 3, "delta": 5e-3}), *fmnist, seed=SEED)


def test_dp_batch_must_be_smaller_than_the_data(fmnist: Data) -> None:
    with pytest.raises(InvalidInputError, match="batch_size=512 is not below N=512"):
        train(make_spec(batch_size=512, dp=DP), *fmnist, seed=SEED)


def test_limits_are_enforced_by_train(fmnist: Data) -> None:
    with pytest.raises(DesignLimitError, match="max_params"):
        train(make_spec(), *fmnist, seed=SEED, limits=NodeLimits(max_params=10))
    with pytest.raises(DesignLimitError, match="512 training samples exceed max_samples=100"):
        train(make_spec(), *fmnist, seed=SEED, limits=NodeLimits(max_samples=100))
    with pytest.raises(DesignLimitError, match="market's minimum expected batch size of 64"):
        train(make_spec(batch_size=32), *fmnist, seed=SEED, limits=NodeLimits(min_batch_size=64))


# --- scatter models and the training knobs ----------------------------------------------------
SCATTER_DP = {"target_epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 0.1}


def _scatter_spec(architecture: str, **overrides: object) -> dict[str, object]:
    spec = make_spec(
        architecture=architecture,
        optimizer="sgd",
        learning_rate=4.0,
        batch_size=128,
        epochs=3,
        dp=SCATTER_DP,
    )
    spec.update(overrides)
    return spec


@pytest.mark.parametrize(
    ("architecture", "floor_bps"), [("scatter_linear", 6000), ("scatter_cnn", 4000)]
)
def test_scatter_models_learn_under_dp_within_the_budget(
    fmnist: Data, architecture: str, floor_bps: int
) -> None:
    result = train(_scatter_spec(architecture), *fmnist, seed=SEED)
    assert result.epsilon_spent is not None and 1.5 < result.epsilon_spent <= 3.0
    assert result.accuracy_bps > floor_bps  # chance is 1000 bps
    # the front end is not trained: a model file holds the head and features only
    assert not any(k.startswith("frontend") for k in result.state)
    assert result.train_embeddings.shape[0] == 512
    assert result.design.frontend_flops_per_sample > 0


def test_the_new_knobs_are_deterministic_given_the_seed(fmnist: Data) -> None:
    spec = _scatter_spec("scatter_cnn", ema_decay=0.9, lr_schedule="cosine", epochs=2)
    first = train(spec, *fmnist, seed=SEED)
    second = train(spec, *fmnist, seed=SEED)
    assert _same_weights(first, second)
    np.testing.assert_array_equal(first.val_embeddings, second.val_embeddings)
    assert not _same_weights(first, train(spec, *fmnist, seed=bytes(32)))


def test_weight_averaging_delivers_the_average(fmnist: Data) -> None:
    plain = train(_scatter_spec("scatter_linear", epochs=2), *fmnist, seed=SEED)
    # a vanishing decay averages nothing: the last iterate, to float rounding
    none = train(_scatter_spec("scatter_linear", epochs=2, ema_decay=1e-9), *fmnist, seed=SEED)
    averaged = train(_scatter_spec("scatter_linear", epochs=2, ema_decay=0.9), *fmnist, seed=SEED)
    for key, value in plain.state.items():
        torch.testing.assert_close(none.state[key], value, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(averaged.state["head.weight"], plain.state["head.weight"])
    # the same iterates were taken: DP accounting does not see the average
    assert averaged.epsilon_spent == plain.epsilon_spent and averaged.steps == plain.steps


def test_the_cosine_schedule_decays_to_zero() -> None:
    from visdm.training._spec import parse_model_spec
    from visdm.training._train import _schedule

    spec = parse_model_spec(_scatter_spec("scatter_linear", lr_schedule="cosine"))
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=spec.learning_rate)
    rates = []
    for step in range(10):
        _schedule(optimizer, spec, step, 10)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[0] == 4.0 and rates[5] == pytest.approx(2.0)
    assert all(a > b for a, b in itertools.pairwise(rates)) and rates[-1] < 0.1
    constant = parse_model_spec(_scatter_spec("scatter_linear"))
    _schedule(optimizer, constant, 5, 10)  # constant leaves the rate alone
    assert optimizer.param_groups[0]["lr"] == rates[-1]


def test_micro_batches_give_the_step_one_batch_gives(
    fmnist: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a Poisson batch of ~128 in micro-batches of 16 (scatter_cnn has 33,066 parameters): the
    # same clipped sum, the same noise
    spec = _scatter_spec("scatter_cnn", epochs=1)
    whole = train(spec, *fmnist, seed=SEED)
    monkeypatch.setattr("visdm.training._design.DP_STEP_BYTES", 16 * 4 * 33_066)
    parts = train(spec, *fmnist, seed=SEED)
    assert parts.steps == whole.steps and parts.epsilon_spent == whole.epsilon_spent
    for key, value in whole.state.items():
        torch.testing.assert_close(parts.state[key], value, atol=1e-5, rtol=1e-4)


@pytest.mark.attack
def test_a_spec_sized_to_exhaust_the_nodes_memory_is_refused_before_training(
    fmnist: Data,
) -> None:
    # a consumer picks a front end whose output per sample is large, on a node whose memory
    # would not hold it for the selection: refused from declared sizes, nothing is computed
    from visdm.training import check_design

    spec = _scatter_spec("scatter_linear")
    room = check_design(spec, NodeLimits()).memory_bytes(200)
    limits = NodeLimits(max_memory_bytes=room)  # room for 200 samples and one DP step
    with pytest.raises(DesignLimitError, match=r"to train 768 samples .* max_memory_bytes"):
        train(spec, *fmnist, seed=SEED, limits=limits)


def test_the_linear_heads_closed_form_dp_step_is_opacus_step(
    fmnist: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    # scatter_linear's DP step computes per-sample norms and the clipped sum in closed form;
    # through Opacus' per-sample gradients the same seed gives the same weights and epsilon
    spec = _scatter_spec("scatter_linear", epochs=2, ema_decay=0.9)
    closed_form = train(spec, *fmnist, seed=SEED)
    monkeypatch.setattr("visdm.training._train._linear_head", lambda _trainable: None)
    opacus = train(spec, *fmnist, seed=SEED)
    assert closed_form.noise_multiplier == opacus.noise_multiplier
    assert closed_form.epsilon_spent == pytest.approx(opacus.epsilon_spent, rel=1e-9)
    assert closed_form.steps == opacus.steps and closed_form.samples_seen == opacus.samples_seen
    for key, value in opacus.state.items():
        torch.testing.assert_close(closed_form.state[key], value, atol=1e-5, rtol=1e-4)
    assert closed_form.train_loss == pytest.approx(opacus.train_loss, rel=1e-4)
