"""Model design check: size a spec before training it, refuse what exceeds a node's limits.

Parameters are counted and FLOPs measured on a network built on PyTorch's ``meta`` device, so a
spec asking for billions of parameters is refused without allocating them. FLOPs come from
:class:`torch.utils.flop_counter.FlopCounterMode` over one forward pass of one sample; it counts
matrix multiplications and convolutions (2 FLOPs per multiply-add) and ignores element-wise
operations (activations, norms, pooling), which are a small share for these networks. One
training step costs about 3× the forward pass (forward, plus backward through activations and
weights; Kaplan et al., 2020). DP-SGD's per-sample gradients add memory, not FLOPs, in Opacus'
hook mode, so the same factor is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from visdm.errors import DesignLimitError, InvalidInputError
from visdm.training._spec import ModelSpec, parse_model_spec
from visdm.training._zoo import build_model

__all__ = ["TRAIN_FLOPS_FACTOR", "DesignReport", "NodeLimits", "check_design", "training_cost"]

#: training FLOPs per sample ≈ this × forward FLOPs per sample
TRAIN_FLOPS_FACTOR = 3
_GFLOP = 10**9


@dataclass(frozen=True)
class NodeLimits:
    """What one compute node accepts; a spec over any limit is refused before training.

    ``min_batch_size`` is the market's minimum expected batch size (a chain parameter the
    node copies here): small batches let a model's updates carry single images.
    """

    max_params: int = 5_000_000
    max_flops_per_sample: int = 2 * 10**9  # forward FLOPs of one sample
    max_epochs: int = 50
    max_batch_size: int = 1024
    max_samples: int = 1_000_000
    allow_dp: bool = True
    min_batch_size: int = 1


@dataclass(frozen=True)
class DesignReport:
    """Size of a spec's network: parameters and FLOPs per sample (forward and training)."""

    spec: ModelSpec
    params: int
    forward_flops_per_sample: int
    train_flops_per_sample: int
    embedding_dim: int


def check_design(
    spec: ModelSpec | bytes | str | dict[str, object], limits: NodeLimits
) -> DesignReport:
    """Measure ``spec``'s network and refuse it if it exceeds ``limits``.

    Raises :class:`~visdm.errors.DesignLimitError` naming the limit, its value and the spec's
    value; :class:`~visdm.errors.InvalidModelSpecError` if the spec itself is invalid.
    """
    spec = parse_model_spec(spec)
    for name, value, limit in (
        ("max_epochs", spec.epochs, limits.max_epochs),
        ("max_batch_size", spec.batch_size, limits.max_batch_size),
    ):
        if value > limit:
            field = name.removeprefix("max_")
            raise DesignLimitError(
                f"spec {field}={value} exceeds this node's {name}={limit}: lower it"
            )
    if spec.batch_size < limits.min_batch_size:
        raise DesignLimitError(
            f"spec batch_size={spec.batch_size} is below the market's minimum expected batch "
            f"size of {limits.min_batch_size}: raise it"
        )
    if spec.dp is not None and not limits.allow_dp:
        raise DesignLimitError("this node does not offer DP training (allow_dp=False)")
    model = build_model(spec, device="meta")
    params = sum(p.numel() for p in model.parameters())
    if params > limits.max_params:
        raise DesignLimitError(
            f"spec's {spec.architecture} has {params:,} parameters, over this node's "
            f"max_params={limits.max_params:,}: use fewer or narrower layers"
        )
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros((1, *spec.input_shape), device="meta"))
    flops = int(counter.get_total_flops())
    if flops > limits.max_flops_per_sample:
        raise DesignLimitError(
            f"spec's {spec.architecture} needs {flops:,} forward FLOPs per sample, over this "
            f"node's max_flops_per_sample={limits.max_flops_per_sample:,}: make it smaller"
        )
    return DesignReport(
        spec=spec,
        params=params,
        forward_flops_per_sample=flops,
        train_flops_per_sample=TRAIN_FLOPS_FACTOR * flops,
        embedding_dim=model.head.in_features,
    )


def training_cost(report: DesignReport, samples: int, epochs: int, price_per_gflop: int) -> int:
    """Quote in the token's smallest unit: ⌈train FLOPs/sample × samples × epochs × price / 10⁹⌉.

    Integer arithmetic throughout, so the quote a node signs is exact and reproducible.
    """
    for name, value in (
        ("samples", samples),
        ("epochs", epochs),
        ("price_per_gflop", price_per_gflop),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError(f"{name} must be a non-negative integer, got {value!r}")
    total = report.train_flops_per_sample * samples * epochs * price_per_gflop
    return -(-total // _GFLOP)
