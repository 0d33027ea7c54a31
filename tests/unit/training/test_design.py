"""Design check: exact parameter and FLOP counts, every refusal, integer quotes."""

from __future__ import annotations

import pytest

from tests.unit.training.conftest import make_spec
from visdm.errors import DesignLimitError, InvalidInputError, InvalidModelSpecError
from visdm.training import NodeLimits, build_model, check_design, parse_model_spec, training_cost

pytestmark = pytest.mark.unit

MLP = make_spec(architecture="mlp", hidden=[256, 128])


def test_mlp_counts_match_hand_computation() -> None:
    report = check_design(MLP, NodeLimits())
    assert report.params == (784 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10)
    # FlopCounterMode: 2 FLOPs per multiply-add of each matmul; bias adds are not counted
    assert report.forward_flops_per_sample == 2 * (784 * 256 + 256 * 128 + 128 * 10)
    assert report.train_flops_per_sample == 3 * report.forward_flops_per_sample
    assert report.embedding_dim == 128


@pytest.mark.parametrize("architecture", ["mlp", "small_cnn", "resnet"])
def test_counts_agree_with_a_real_model(architecture: str) -> None:
    spec = parse_model_spec(make_spec(architecture=architecture))
    report = check_design(spec, NodeLimits())
    real = build_model(spec)
    assert report.params == sum(p.numel() for p in real.parameters())
    assert report.forward_flops_per_sample > report.params  # convs reuse their weights
    assert report.embedding_dim == real.head.in_features


def test_small_cnn_conv_flops() -> None:
    report = check_design(make_spec(width=8), NodeLimits())
    conv1 = 2 * 28 * 28 * 8 * 9
    conv2 = 2 * 14 * 14 * 16 * 8 * 9
    fc = 2 * (16 * 7 * 7) * 128
    head = 2 * 128 * 10
    assert report.forward_flops_per_sample == conv1 + conv2 + fc + head


@pytest.mark.parametrize(
    ("spec", "limits", "message"),
    [
        (MLP, NodeLimits(max_params=1000), "235,146 parameters, over this node's max_params=1,000"),
        (
            MLP,
            NodeLimits(max_flops_per_sample=10_000),
            "469,504 forward FLOPs per sample, over this node's max_flops_per_sample=10,000",
        ),
        (make_spec(epochs=60), NodeLimits(), "epochs=60 exceeds this node's max_epochs=50"),
        (
            make_spec(batch_size=4096),
            NodeLimits(),
            "batch_size=4096 exceeds this node's max_batch_size=1024",
        ),
        (
            make_spec(dp={"target_epsilon": 3, "delta": 1e-5}),
            NodeLimits(allow_dp=False),
            "does not offer DP",
        ),
        (
            make_spec(batch_size=32),
            NodeLimits(min_batch_size=64),
            "batch_size=32 is below the market's minimum expected batch size of 64: raise it",
        ),
    ],
)
def test_refusals_name_the_limit_and_the_value(
    spec: dict[str, object], limits: NodeLimits, message: str
) -> None:
    with pytest.raises(DesignLimitError, match=message):
        check_design(spec, limits)


def test_the_minimum_batch_size_travels_to_the_worker_process() -> None:
    from visdm.training.design_check import check

    request = {"spec": make_spec(batch_size=32), "limits": {"min_batch_size": 64}}
    answer = check(request)
    assert answer["ok"] is False and answer["error"] == "DesignLimitError"
    assert "minimum expected batch size of 64" in answer["message"]
    assert check({**request, "limits": {"min_batch_size": 32}})["ok"] is True


def test_a_huge_spec_is_refused_without_allocating_it() -> None:
    # 3×512×512 inputs into 4096-wide layers: ~3.3e9 parameters, 13 GB if allocated
    huge = make_spec(architecture="mlp", input_shape=[3, 512, 512], hidden=[4096] * 4)
    with pytest.raises(DesignLimitError, match=r"3,271,\d{3},\d{3} parameters"):
        check_design(huge, NodeLimits())


def test_an_invalid_spec_is_a_spec_error() -> None:
    with pytest.raises(InvalidModelSpecError):
        check_design(make_spec(epochs=0), NodeLimits())


def test_training_cost_is_an_exact_rounded_up_integer() -> None:
    report = check_design(MLP, NodeLimits())
    per_sample = 3 * 469_504
    # 1,408,512 FLOPs × 60,000 × 5 × 1000 / 10⁹ = 422,553.6, rounded up
    assert training_cost(report, 60_000, 5, 1000) == 422_554
    assert training_cost(report, 1, 1, 1) == 1  # 1.4 MFLOP at 1/GFLOP rounds up
    assert training_cost(report, 0, 5, 1000) == 0
    big = training_cost(report, 10**9, 10**3, 10**18)  # no float overflow
    assert big == per_sample * 10**9 * 10**3 * 10**18 // 10**9


@pytest.mark.parametrize(
    "kwargs",
    [
        {"samples": -1, "epochs": 1, "price_per_gflop": 1},
        {"samples": 1, "epochs": 1.5, "price_per_gflop": 1},
        {"samples": 1, "epochs": 1, "price_per_gflop": True},
    ],
)
def test_training_cost_refuses_bad_numbers(kwargs: dict[str, object]) -> None:
    report = check_design(MLP, NodeLimits())
    with pytest.raises(InvalidInputError):
        training_cost(report, **kwargs)  # type: ignore[arg-type]
