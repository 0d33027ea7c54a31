"""Model design check: size a spec before training it, refuse what exceeds a node's limits.

Parameters are counted and FLOPs measured on a network built on PyTorch's ``meta`` device, so a
spec asking for billions of parameters is refused without allocating them. FLOPs come from
:class:`torch.utils.flop_counter.FlopCounterMode` over one forward pass of one sample; it counts
matrix multiplications and convolutions (2 FLOPs per multiply-add) and ignores element-wise
operations (activations, norms, pooling), which are a small share for these networks. One
training step costs about 3× the forward pass (forward, plus backward through activations and
weights; Kaplan et al., 2020). DP-SGD's per-sample gradients add memory, not FLOPs, in Opacus'
hook mode, so the same factor is used.

A fixed front end (the ``scatter_*`` networks' scattering transform) has no weights: training
runs it once per sample and job, not once per epoch, and never backwards. FlopCounterMode does
not count its FFTs, so its FLOPs come from :func:`~visdm.training._scatter.scatter_flops`; it is
part of the forward FLOPs (what ``max_flops_per_sample`` bounds), and the training FLOPs per
sample and epoch are ``3 × (the trainable part's forward FLOPs) + ⌈front end FLOPs / epochs⌉``,
so that a quote (training FLOPs × samples × epochs) charges the front end once.

Memory: training holds, per training sample, the decoded image (bytes) and its float copy, the
front end's output when there is one, and the embedding; DP-SGD adds per-sample gradients of
one micro-batch (:func:`dp_micro_batch` samples × parameters, about :data:`DP_STEP_BYTES`).
:meth:`DesignReport.memory_bytes` adds these up for a number of samples, and
``max_memory_bytes`` bounds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from visdm.errors import DesignLimitError, InvalidInputError
from visdm.training._scatter import scatter_flops
from visdm.training._spec import ModelSpec, parse_model_spec
from visdm.training._zoo import build_model, frontend_output_shape

__all__ = [
    "DP_STEP_BYTES",
    "TRAIN_FLOPS_FACTOR",
    "DesignReport",
    "NodeLimits",
    "check_design",
    "dp_micro_batch",
    "training_cost",
]

#: training FLOPs per sample ≈ this × forward FLOPs per sample
TRAIN_FLOPS_FACTOR = 3
#: bytes of per-sample gradients DP-SGD holds at once: a Poisson batch is split to fit
DP_STEP_BYTES = 256 << 20
_GFLOP = 10**9
_FLOAT = 4


@dataclass(frozen=True)
class NodeLimits:
    """What one compute node accepts; a spec over any limit is refused before training.

    ``min_batch_size`` is the market's minimum expected batch size (a chain parameter the
    node copies here): small batches let a model's updates carry single images.
    ``max_memory_bytes`` bounds :meth:`DesignReport.memory_bytes` for a job's samples.
    """

    max_params: int = 5_000_000
    max_flops_per_sample: int = 2 * 10**9  # forward FLOPs of one sample
    max_epochs: int = 50
    max_batch_size: int = 1024
    max_samples: int = 1_000_000
    allow_dp: bool = True
    min_batch_size: int = 1
    max_memory_bytes: int = 16 << 30  # what a job's data and one training step may take


@dataclass(frozen=True)
class DesignReport:
    """Size of a spec's network: parameters, FLOPs per sample (forward, and training per
    epoch), the fixed front end's share of the forward FLOPs, and memory per sample."""

    spec: ModelSpec
    params: int
    forward_flops_per_sample: int
    train_flops_per_sample: int
    embedding_dim: int
    frontend_flops_per_sample: int = 0
    bytes_per_sample: int = 0
    step_bytes: int = 0

    def memory_bytes(self, samples: int) -> int:
        """Memory training ``samples`` samples takes: per-sample data and one step's."""
        return samples * self.bytes_per_sample + self.step_bytes


def check_design(
    spec: ModelSpec | bytes | str | dict[str, object],
    limits: NodeLimits,
    *,
    samples: int | None = None,
) -> DesignReport:
    """Measure ``spec``'s network and refuse it if it exceeds ``limits``.

    With ``samples``, the memory of training that many samples is checked too (without, one
    sample's). Raises :class:`~visdm.errors.DesignLimitError` naming the limit, its value and
    the spec's value; :class:`~visdm.errors.InvalidModelSpecError` if the spec itself is
    invalid.
    """
    spec = parse_model_spec(spec)
    if samples is not None and (isinstance(samples, bool) or samples < 0):
        raise InvalidInputError(f"samples must be a non-negative count, got {samples!r}")
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
    front = frontend_output_shape(spec)
    with FlopCounterMode(display=False) as counter:
        model.trainable()(torch.zeros((1, *(front or spec.input_shape)), device="meta"))
    trainable_flops = int(counter.get_total_flops())
    front_flops = scatter_flops(spec.input_shape) if front is not None else 0
    flops = front_flops + trainable_flops
    if flops > limits.max_flops_per_sample:
        raise DesignLimitError(
            f"spec's {spec.architecture} needs {flops:,} forward FLOPs per sample, over this "
            f"node's max_flops_per_sample={limits.max_flops_per_sample:,}: make it smaller"
        )
    embedding_dim = model.head.in_features
    pixels = math.prod(spec.input_shape)
    per_sample = (1 + _FLOAT) * pixels + _FLOAT * (math.prod(front or (0,)) + embedding_dim)
    micro = dp_micro_batch(params, spec.batch_size)
    step = _FLOAT * params * micro if spec.dp is not None else 0
    report = DesignReport(
        spec=spec,
        params=params,
        forward_flops_per_sample=flops,
        train_flops_per_sample=TRAIN_FLOPS_FACTOR * trainable_flops
        + -(-front_flops // spec.epochs),
        embedding_dim=embedding_dim,
        frontend_flops_per_sample=front_flops,
        bytes_per_sample=per_sample,
        step_bytes=step,
    )
    need = report.memory_bytes(1 if samples is None else samples)
    if need > limits.max_memory_bytes:
        count = "one sample" if samples is None else f"{samples:,} samples"
        raise DesignLimitError(
            f"spec's {spec.architecture} needs {need:,} bytes of memory to train {count} "
            f"({per_sample:,} per sample, {step:,} per DP step), over this node's "
            f"max_memory_bytes={limits.max_memory_bytes:,}: use smaller inputs, a smaller "
            "network or fewer samples"
        )
    return report


def dp_micro_batch(params: int, batch_size: int) -> int:
    """Samples per micro-batch of a DP-SGD step: as many as :data:`DP_STEP_BYTES` of float32
    per-sample gradients hold, at least one, at most the batch."""
    return max(1, min(batch_size, DP_STEP_BYTES // (_FLOAT * max(1, params))))


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
