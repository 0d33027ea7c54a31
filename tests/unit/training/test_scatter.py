"""The scattering front end and the ``scatter_*`` zoo models: the transform, shapes, pricing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.unit.training.conftest import make_spec
from visdm.datasets import load_fashion_mnist
from visdm.errors import DesignLimitError, InvalidInputError
from visdm.training import NodeLimits, build_model, check_design, parse_model_spec
from visdm.training import _scatter as scatter_module
from visdm.training._design import DP_STEP_BYTES, dp_micro_batch
from visdm.training._scatter import (
    Scattering2D,
    scatter_channels,
    scatter_flops,
    scatter_output_shape,
)

pytestmark = pytest.mark.unit

#: per-channel sums of the first Fashion-MNIST test image's coefficients (pixels in [0, 1]),
#: channels 0, 1, 5, 8, 9, 16, 17, 40, 80, as kymatio 0.3.0's Scattering2D(J=2, L=8) gives them
KYMATIO_SUMS = {
    0: 8.073896,
    1: 0.530050,
    5: 0.835364,
    8: 0.453666,
    9: 0.695098,
    16: 0.606128,
    17: 0.127544,
    40: 0.056974,
    80: 0.156518,
}


def _first_test_image() -> torch.Tensor:
    x, _ = load_fashion_mnist("test", limit=1)
    return torch.from_numpy(x[:, None]).float() / 255


def test_coefficients_are_kymatios() -> None:
    out = Scattering2D((1, 28, 28))(_first_test_image())
    assert out.shape == (1, 81, 7, 7)
    sums = out[0].double().sum(dim=(1, 2))
    for channel, expected in KYMATIO_SUMS.items():
        assert float(sums[channel]) == pytest.approx(expected, abs=2e-5), channel


def test_a_constant_image_has_only_its_average() -> None:
    # the wavelets have zero mean: every first- and second-order coefficient of a constant
    # image vanishes, and the low-pass keeps the constant (kymatio's 3.1415 in its norm)
    out = Scattering2D((1, 16, 20))(torch.full((2, 1, 16, 20), 0.75))
    assert out.shape == (2, 81, 4, 5)
    assert torch.allclose(out[:, 0], torch.full((2, 4, 5), 0.75 * math.pi / 3.1415), atol=1e-5)
    assert float(out[:, 1:].abs().max()) < 1e-5


def test_mirroring_an_image_across_its_diagonal_mirrors_the_orientations() -> None:
    # angle (3 - θ)·π/8 reflected across the diagonal is (1 + θ)·π/8, orientation 2 - θ (mod 8),
    # and the transposed coefficient maps: the filter bank's angles are in kymatio's order
    x = _first_test_image()
    scattering = Scattering2D((1, 28, 28))
    out, mirrored = scattering(x)[0], scattering(x.transpose(2, 3))[0]
    for theta in range(8):
        for scale in range(2):
            here = 1 + 8 * scale + theta
            there = 1 + 8 * scale + (2 - theta) % 8
            torch.testing.assert_close(mirrored[here], out[there].T, atol=2e-6, rtol=1e-4)


def test_the_transform_is_deterministic_fixed_and_outside_the_model_file() -> None:
    torch.manual_seed(0)
    x = torch.rand(5, 3, 12, 12)
    scattering = Scattering2D((3, 12, 12))
    assert torch.equal(scattering(x), scattering(x.clone()))
    assert list(scattering.parameters()) == []
    assert scattering.state_dict() == {}  # filters are rebuilt from the spec, never loaded
    assert scattering(x).shape == (5, 3 * 81, 3, 3)
    # channels of one image channel do not depend on the others
    alone = Scattering2D((1, 12, 12))(x[:, 1:2])
    torch.testing.assert_close(scattering(x)[:, 81:162], alone)


def test_large_batches_are_transformed_in_chunks_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scattering = Scattering2D((1, 8, 8))
    torch.manual_seed(1)
    x = torch.rand(40, 1, 8, 8)
    whole = scattering(x)
    monkeypatch.setattr(scatter_module, "_CHUNK_BYTES", 3 * scattering.bytes_per_image())
    assert torch.equal(scattering(x), whole)  # 14 chunks of 3 images


def test_a_meta_transform_has_shapes_and_no_filters_computed() -> None:
    with torch.device("meta"):
        scattering = Scattering2D((3, 512, 512))
    assert scattering.output_shape == (243, 128, 128)
    assert all(b.device.type == "meta" for b in scattering.buffers())


def test_channel_and_flop_counts() -> None:
    assert scatter_channels() == 81
    assert scatter_output_shape((3, 30, 17)) == (243, 7, 4)
    one = scatter_flops((1, 28, 28))
    assert scatter_flops((3, 28, 28)) == 3 * one
    # dominated by FFTs: ~n log n in the number of pixels
    assert 8 < scatter_flops((1, 112, 112)) / one < 30


# --- the zoo -----------------------------------------------------------------------------------
def _scatter(architecture: str, **overrides: object) -> dict[str, object]:
    return make_spec(architecture=architecture, optimizer="sgd", learning_rate=1.0, **overrides)


def test_scatter_linear_is_a_linear_model_on_normalised_coefficients() -> None:
    spec = parse_model_spec(_scatter("scatter_linear"))
    assert spec.norm_groups == 27
    torch.manual_seed(0)
    model = build_model(spec)
    assert set(model.state_dict()) == {"head.weight", "head.bias"}
    assert sum(p.numel() for p in model.parameters()) == 81 * 7 * 7 * 10 + 10
    x = _first_test_image() * 2 - 1
    embedding = model.embed(x)
    assert embedding.shape == (1, 81 * 49)
    # GroupNorm without parameters: every group of 3 channels has mean 0 and variance 1, but
    # for its 1e-5 added to the variance, which matters where the image has little texture
    groups = embedding.reshape(27, -1)
    assert float(groups.mean(-1).abs().max()) < 1e-4
    variance = groups.var(-1, unbiased=False)
    assert float(variance.max()) < 1.0 and float(variance[0]) > 0.99
    assert torch.allclose(model(x), model.head(embedding))


def test_scatter_cnn_shapes_for_grey_and_rgb() -> None:
    for shape, params in (((1, 28, 28), 33_066), ((3, 32, 32), 56_394)):
        spec = parse_model_spec(_scatter("scatter_cnn", input_shape=list(shape), width=16))
        model = build_model(spec)
        assert sum(p.numel() for p in model.parameters()) == params
        assert model(torch.rand(2, *shape)).shape == (2, 10)
        assert model.embed(torch.rand(2, *shape)).shape == (2, 32)
        assert not any(k.startswith("frontend") for k in model.state_dict())


# --- the design check --------------------------------------------------------------------------
def test_the_design_check_prices_the_front_end_once_per_job() -> None:
    spec = parse_model_spec(_scatter("scatter_linear", epochs=10))
    report = check_design(spec, NodeLimits())
    head = 2 * 3969 * 10  # FlopCounterMode: the linear layer's multiply-adds
    front = scatter_flops((1, 28, 28))
    assert report.frontend_flops_per_sample == front
    assert report.forward_flops_per_sample == front + head
    # a quote multiplies by epochs: the front end, computed once, is spread over them
    assert report.train_flops_per_sample == 3 * head + math.ceil(front / 10)
    assert report.embedding_dim == 3969
    # bytes per sample: the image, its float copy, the coefficients, the embedding
    assert report.bytes_per_sample == 784 * 5 + 4 * 3969 * 2
    assert report.step_bytes == 0  # no DP: no per-sample gradients


def test_dp_steps_are_priced_by_the_micro_batch() -> None:
    dp = {"target_epsilon": 3.0, "delta": 1e-5}
    small = check_design(_scatter("scatter_cnn", batch_size=64, dp=dp), NodeLimits())
    assert small.step_bytes == 4 * small.params * 64  # the whole batch fits at once
    wide = check_design(
        make_spec(architecture="mlp", hidden=[4096], dp=dp, batch_size=1024), NodeLimits()
    )
    micro = dp_micro_batch(wide.params, 1024)
    assert 1 < micro < 1024 and wide.step_bytes == 4 * wide.params * micro <= DP_STEP_BYTES
    assert dp_micro_batch(10**9, 64) == 1 and dp_micro_batch(10, 64) == 64


@pytest.mark.parametrize(
    ("spec", "limits", "samples", "message"),
    [
        # 3×512×512 images: 243 channels of 128×128 into a linear layer, 40 M parameters
        (
            _scatter("scatter_linear", input_shape=[3, 512, 512]),
            NodeLimits(),
            None,
            r"39,813,130 parameters, over this node's max_params",
        ),
        # the scattering itself of a 3×320×320 image: ~4 GFLOP, over the 2 GFLOP default
        (
            _scatter("scatter_cnn", input_shape=[3, 320, 320], width=4),
            NodeLimits(),
            None,
            r"forward FLOPs per sample, over this node's max_flops_per_sample",
        ),
        # 200,000 samples of 3×224×224: the coefficients alone take 50 GB
        (
            _scatter("scatter_cnn", input_shape=[3, 224, 224]),
            NodeLimits(),
            200_000,
            r"bytes of memory to train 200,000 samples .* over this node's max_memory_bytes",
        ),
    ],
)
def test_an_over_limit_scatter_spec_is_refused(
    spec: dict[str, object], limits: NodeLimits, samples: int | None, message: str
) -> None:
    with pytest.raises(DesignLimitError, match=message):
        check_design(spec, limits, samples=samples)


def test_memory_scales_with_the_samples_checked() -> None:
    spec = _scatter("scatter_linear")
    report = check_design(spec, NodeLimits())
    fits = NodeLimits(max_memory_bytes=report.memory_bytes(1000))
    check_design(spec, fits, samples=1000)
    with pytest.raises(DesignLimitError, match="to train 1,001 samples"):
        check_design(spec, fits, samples=1001)
    for bad in (-1, True):
        with pytest.raises(InvalidInputError, match="samples must be a non-negative count"):
            check_design(spec, NodeLimits(), samples=bad)


def test_the_worker_process_reports_and_checks_memory() -> None:
    from visdm.training.design_check import check

    answer = check({"spec": _scatter("scatter_linear"), "limits": {}})
    assert answer["ok"] is True
    assert answer["frontend_flops_per_sample"] == scatter_flops((1, 28, 28))
    assert answer["bytes_per_sample"] > 0 and answer["step_bytes"] == 0
    tight = {"max_memory_bytes": 10 * answer["bytes_per_sample"]}
    refused = check({"spec": _scatter("scatter_linear"), "limits": tight, "samples": 11})
    assert refused["ok"] is False and "max_memory_bytes" in refused["message"]
    for bad in (-1, 1.5, True, "10"):
        answer = check({"spec": _scatter("scatter_linear"), "limits": {}, "samples": bad})
        assert answer["ok"] is False and answer["error"] == "InvalidInputError"
        assert "samples must be a non-negative integer" in answer["message"]


def test_meta_counts_agree_with_a_real_model() -> None:
    for architecture in ("scatter_linear", "scatter_cnn"):
        spec = parse_model_spec(_scatter(architecture, input_shape=[3, 20, 24]))
        report = check_design(spec, NodeLimits())
        real = build_model(spec)
        assert report.params == sum(p.numel() for p in real.parameters())
        assert report.embedding_dim == real.head.in_features
        assert np.prod(real.frontend(torch.zeros(1, 3, 20, 24)).shape) == 243 * 5 * 6
