"""The declarative model spec a consumer submits: architecture from a fixed zoo, sizes, knobs.

A spec is data, never code. It is validated strictly (unknown keys, wrong types, booleans for
numbers, NaN and out-of-range values are all refused) and hashed canonically so that the hash
committed on chain identifies exactly one training recipe. It carries no randomness: the
compute node draws each job's seed (:mod:`visdm.training._rng`), so a ``seed`` key is refused.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from eth_utils.crypto import keccak
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from visdm.errors import InvalidModelSpecError
from visdm.jsonsafe import load_untrusted_json, one_line

__all__ = [
    "DPSpec",
    "ModelSpec",
    "canonical_spec_json",
    "parse_model_spec",
    "recommended_spec",
    "spec_hash",
]

#: the largest spec document accepted, in bytes (a spec is a few hundred bytes)
MAX_SPEC_BYTES = 64 * 1024

Architecture = Literal["mlp", "small_cnn", "resnet", "scatter_linear", "scatter_cnn"]

_Dim = Annotated[int, Field(ge=8, le=512)]
_Hidden = Annotated[int, Field(ge=1, le=4096)]

_DEFAULT_HIDDEN: tuple[int, ...] = (256, 128)
_DEFAULT_WIDTH = 16
_DEFAULT_DEPTH = 2
#: GroupNorm groups over the 81 scattering channels of each image channel (Tramèr & Boneh)
_DEFAULT_NORM_GROUPS = 27
#: scattering channels per image channel (J=2, L=8; visdm.training._scatter)
_SCATTER_CHANNELS = 81

#: which size knobs each architecture takes
_KNOBS: dict[str, frozenset[str]] = {
    "mlp": frozenset({"hidden"}),
    "small_cnn": frozenset({"width"}),
    "resnet": frozenset({"width", "depth"}),
    "scatter_linear": frozenset({"norm_groups"}),
    "scatter_cnn": frozenset({"width", "norm_groups"}),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class DPSpec(_Strict):
    """DP-SGD parameters (Abadi et al., 2016): the (ε, δ) budget and the per-sample clip norm."""

    target_epsilon: float = Field(gt=0.0, le=100.0)
    delta: float = Field(gt=0.0, lt=1e-2)
    max_grad_norm: float = Field(default=1.0, gt=0.0, le=100.0)


class ModelSpec(_Strict):
    """A training job's model and hyper-parameters.

    Per-architecture knobs: ``mlp`` takes ``hidden`` (1-4 layer sizes); ``small_cnn`` takes
    ``width`` (channels of the first conv); ``resnet`` takes ``width`` and ``depth`` (number of
    residual stages, each halving the resolution and doubling the channels). ``scatter_linear``
    and ``scatter_cnn`` put a fixed scattering transform (81 channels per image channel at a
    quarter of the resolution) and a GroupNorm of ``norm_groups`` groups without parameters in
    front of a linear classifier or a small CNN of ``width`` channels (Tramèr & Boneh, 2021);
    ``norm_groups`` must divide the 81 × channels scattering channels. A knob that does not
    apply to the chosen architecture is an error, so that two specs that train the same model
    cannot hash differently. Unset knobs take their defaults when the spec is parsed.

    Training knobs, for every architecture: ``lr_schedule`` (``constant``, or ``cosine``
    decay to 0 over the run's steps) and ``ema_decay`` (``null``, or the decay of an
    exponential moving average of the weights, which is then what the job delivers; De et
    al., 2022). Both default to the plain recipe, so a spec that omits them trains as before.
    """

    schema_version: Literal[1] = 1
    architecture: Architecture
    # images are decoded to greyscale or RGB (visdm.proposals.image_to_array): 1 or 3 channels
    input_shape: tuple[Literal[1, 3], _Dim, _Dim]
    num_classes: int = Field(ge=2, le=1000)
    epochs: int = Field(ge=1, le=1000)
    batch_size: int = Field(ge=1, le=65536)
    optimizer: Literal["sgd", "adam"]
    learning_rate: float = Field(gt=0.0, le=10.0)
    hidden: tuple[_Hidden, ...] | None = Field(default=None, min_length=1, max_length=4)
    width: int | None = Field(default=None, ge=4, le=256)
    depth: int | None = Field(default=None, ge=1, le=4)
    norm_groups: int | None = Field(default=None, ge=1, le=3 * _SCATTER_CHANNELS)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    ema_decay: float | None = Field(default=None, gt=0.0, lt=1.0)
    dp: DPSpec | None = None

    @field_validator("input_shape", mode="before")
    @classmethod
    def _three_dims(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != 3:
            raise ValueError("must be [channels, height, width]")
        return tuple(value)

    @model_validator(mode="after")
    def _knobs_match_architecture(self) -> ModelSpec:
        allowed = _KNOBS[self.architecture]
        for knob in ("hidden", "width", "depth", "norm_groups"):
            value = getattr(self, knob)
            if value is not None and knob not in allowed:
                raise ValueError(
                    f"{knob}={value!r} does not apply to architecture {self.architecture!r} "
                    f"(its knobs: {', '.join(sorted(allowed))})"
                )
        # fill defaults so the canonical form (and hash) does not depend on omitted keys
        if self.architecture == "mlp" and self.hidden is None:
            object.__setattr__(self, "hidden", _DEFAULT_HIDDEN)
        if "width" in allowed and self.width is None:
            object.__setattr__(self, "width", _DEFAULT_WIDTH)
        if "norm_groups" in allowed:
            groups = _DEFAULT_NORM_GROUPS if self.norm_groups is None else self.norm_groups
            channels = _SCATTER_CHANNELS * self.input_shape[0]
            if channels % groups:
                raise ValueError(
                    f"norm_groups={groups} must divide the {channels} scattering channels of "
                    f"{self.input_shape[0]}-channel input: use one of "
                    f"{', '.join(str(g) for g in range(1, channels + 1) if channels % g == 0)}"
                )
            object.__setattr__(self, "norm_groups", groups)
        if self.architecture == "resnet":
            depth = _DEFAULT_DEPTH if self.depth is None else self.depth
            object.__setattr__(self, "depth", depth)
            if min(self.input_shape[1:]) < 2 ** (depth + 1):
                raise ValueError(
                    f"depth={depth} needs inputs of at least {2 ** (depth + 1)} pixels "
                    f"a side, input_shape is {list(self.input_shape)}"
                )
        return self


def parse_model_spec(source: bytes | str | dict[str, Any] | ModelSpec) -> ModelSpec:
    """Validate a spec given as JSON bytes or text, or as an already-decoded ``dict``.

    Raises :class:`~visdm.errors.InvalidModelSpecError` naming every offending field and the
    value it held; text goes through :func:`visdm.jsonsafe.load_untrusted_json` (nesting,
    repeated keys, ``NaN``/``Infinity``, NUL), and documents over 64 KiB are refused.
    """
    if isinstance(source, ModelSpec):
        return source
    if isinstance(source, bytes | str):
        if len(source) > MAX_SPEC_BYTES:
            raise InvalidModelSpecError(
                f"model spec is {len(source)} bytes, more than the {MAX_SPEC_BYTES} allowed"
            )
        data = load_untrusted_json(
            source,
            what="model spec",
            max_bytes=MAX_SPEC_BYTES,
            error=InvalidModelSpecError,
            hint="write it as `visdm data model-spec` prints it",
        )
    else:
        data = source
    if not isinstance(data, dict):
        raise InvalidModelSpecError(
            f"model spec must be a JSON object, got {type(data).__name__}: {data!r:.80}"
        )
    if "seed" in data:
        raise InvalidModelSpecError(
            f"model spec has seed={data['seed']!r:.40}: the compute node draws each job's "
            "randomness itself and commits only its hash; remove the seed key"
        )
    try:
        # JSON mode: arrays become tuples, yet strict typing still refuses "3" or true for ints
        return ModelSpec.model_validate_json(json.dumps(data))
    except ValueError as exc:
        if not isinstance(exc, ValidationError):
            raise InvalidModelSpecError(f"model spec cannot be encoded as JSON: {exc}") from None
        raise InvalidModelSpecError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "<spec>"
        value = err.get("input")
        if err["type"] == "missing":
            problems.append(f"{field}: required field is missing")
        elif err["type"] == "extra_forbidden":
            problems.append(f"{field}={value!r:.80}: unknown field")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{field}={value!r:.80}: {msg}")
    # a key is the writer's text: escaped, so that a line break in one cannot split the message
    return one_line("invalid model spec: " + "; ".join(problems))


def canonical_spec_json(spec: ModelSpec) -> bytes:
    """The canonical encoding: defaults filled, keys sorted, no spaces, ASCII, UTF-8."""
    return json.dumps(
        spec.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    ).encode()


def spec_hash(spec: ModelSpec | bytes | str | dict[str, Any]) -> bytes:
    """keccak256 of :func:`canonical_spec_json` (32 bytes), the value committed on chain."""
    return bytes(keccak(canonical_spec_json(parse_model_spec(spec))))


#: the market's default minimum expected batch size (MarketParams.minBatchSize)
_MARKET_MIN_BATCH = 64
#: the largest batch a node with default limits accepts (NodeLimits.max_batch_size)
_NODE_MAX_BATCH = 1024


def recommended_spec(
    architecture: str = "scatter_linear",
    *,
    samples: int | None = None,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
    epsilon: float | None = 3.0,
    delta: float = 1e-5,
    epochs: int | None = None,
    min_batch_size: int = _MARKET_MIN_BATCH,
) -> ModelSpec:
    """The spec a consumer starts from: ``architecture`` with the training settings that
    measured best on Fashion-MNIST (``benchmarks/training.py``), DP-SGD at ``epsilon`` (or none
    when ``None``).

    ``samples`` is the size of the selection to train on, when known, and sizes the batch (a
    power of two, never below ``min_batch_size``, the market's minimum). The ``scatter_*``
    recipes are SGD with momentum 0.9, a clip norm of 0.1 and weight averaging (Tramèr &
    Boneh, 2021; De et al., 2022), batches of about a tenth of the samples up to 1,024 (a
    node's default limit; 256 when unknown), 20 epochs, 40 once the batch is at 1,024;
    ``mlp``, ``small_cnn`` and ``resnet`` keep Adam with a clip norm of 1, 5 epochs and
    batches of about a fortieth, up to 256. Raises
    :class:`~visdm.errors.InvalidModelSpecError` for an unknown architecture or bad sizes.
    """
    if samples is not None and samples < 1:
        raise InvalidModelSpecError(f"samples must be at least 1, got {samples}")
    scatter = architecture.startswith("scatter_")
    # scatter models: a tenth of the data per batch, up to a node's default limit; networks
    # trained end to end: a fortieth, up to 256 (the settings their benchmark rows always had)
    share, most = (10, _NODE_MAX_BATCH) if scatter else (40, 256)
    if samples is None:
        batch = 256 if scatter else min_batch_size
    else:
        batch = 1 << max(0, round(math.log2(max(1, samples) / share)))
        batch = max(min_batch_size, min(most, batch))
    doc: dict[str, Any] = {
        "architecture": architecture,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "batch_size": batch,
    }
    if scatter:
        # twice the epochs once the batch is at its cap (from ~7,000 samples): 40 measured
        # better than 20 on 60,000 images, and no better on 1,200
        doc.update(epochs=40 if batch == _NODE_MAX_BATCH else 20, optimizer="sgd", ema_decay=0.99)
        # the step that measured best grows with the batch: 2 at 1,024 with DP (and 0.25 at
        # 128), a quarter of that without, where gradients are not clipped to 0.1
        doc["learning_rate"] = batch / (512 if epsilon is not None else 2048)
    else:
        doc.update(epochs=5, optimizer="adam", learning_rate=0.002)
    if epochs is not None:
        doc["epochs"] = epochs
    if epsilon is not None:
        clip = 0.1 if scatter else 1.0
        doc["dp"] = {"target_epsilon": epsilon, "delta": delta, "max_grad_norm": clip}
    return parse_model_spec(doc)
