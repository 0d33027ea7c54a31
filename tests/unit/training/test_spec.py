"""Model spec parsing, canonical form and hash; every way a spec can be wrong."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from eth_utils.crypto import keccak

from tests.unit.training.conftest import make_spec
from visdm.errors import InvalidInputError, InvalidModelSpecError
from visdm.training import (
    ModelSpec,
    canonical_spec_json,
    parse_model_spec,
    recommended_spec,
    spec_hash,
)

pytestmark = pytest.mark.unit


def test_parses_bytes_text_and_dict_alike() -> None:
    spec = make_spec(dp={"target_epsilon": 3, "delta": 1e-5})
    parsed = [parse_model_spec(json.dumps(spec)), parse_model_spec(json.dumps(spec).encode())]
    parsed.append(parse_model_spec(spec))
    assert parsed[0] == parsed[1] == parsed[2]
    assert isinstance(parsed[0], ModelSpec)
    assert parsed[0].input_shape == (1, 28, 28)
    assert parsed[0].dp is not None and parsed[0].dp.max_grad_norm == 1.0


def test_defaults_are_filled_per_architecture() -> None:
    assert parse_model_spec(make_spec(architecture="mlp")).hidden == (256, 128)
    cnn = parse_model_spec(make_spec())
    assert (cnn.width, cnn.depth, cnn.hidden) == (16, None, None)
    res = parse_model_spec(make_spec(architecture="resnet"))
    assert (res.width, res.depth) == (16, 2)


def test_canonical_json_is_sorted_compact_and_complete() -> None:
    text = canonical_spec_json(parse_model_spec(make_spec(architecture="mlp", hidden=[64])))
    assert text == (
        b'{"architecture":"mlp","batch_size":32,"depth":null,"dp":null,"ema_decay":null,'
        b'"epochs":1,"hidden":[64],"input_shape":[1,28,28],"learning_rate":0.001,'
        b'"lr_schedule":"constant","norm_groups":null,"num_classes":10,"optimizer":"adam",'
        b'"schema_version":1,"width":null}'
    )
    assert spec_hash(make_spec(architecture="mlp", hidden=[64])) == keccak(text)


def test_hash_ignores_key_order_and_spelled_out_defaults() -> None:
    spec = make_spec()
    reordered = dict(reversed(list(spec.items())))
    explicit = make_spec(width=16, schema_version=1, learning_rate=0.001)
    assert spec_hash(spec) == spec_hash(reordered) == spec_hash(explicit)
    assert len(spec_hash(spec)) == 32
    assert spec_hash(spec) != spec_hash(make_spec(epochs=2))
    assert spec_hash(spec) != spec_hash(make_spec(width=17))


def test_scatter_knobs_take_their_defaults_and_hash_canonically() -> None:
    linear = parse_model_spec(make_spec(architecture="scatter_linear"))
    assert (linear.norm_groups, linear.width, linear.hidden) == (27, None, None)
    cnn = parse_model_spec(make_spec(architecture="scatter_cnn", input_shape=[3, 32, 32]))
    assert (cnn.norm_groups, cnn.width) == (27, 16)
    spelled = make_spec(architecture="scatter_cnn", width=16, norm_groups=27)
    assert spec_hash(make_spec(architecture="scatter_cnn")) == spec_hash(spelled)
    assert spec_hash(spelled) != spec_hash({**spelled, "norm_groups": 9})
    assert spec_hash(spelled) != spec_hash(
        {**spelled, "architecture": "scatter_linear"} | {"width": None}
    )


def test_training_knobs_default_to_the_plain_recipe_and_change_the_hash() -> None:
    spec = parse_model_spec(make_spec())
    assert (spec.lr_schedule, spec.ema_decay) == ("constant", None)
    plain = spec_hash(make_spec())
    assert plain == spec_hash(make_spec(lr_schedule="constant", ema_decay=None))
    assert plain != spec_hash(make_spec(lr_schedule="cosine"))
    assert plain != spec_hash(make_spec(ema_decay=0.99))
    assert spec_hash(make_spec(ema_decay=0.99)) != spec_hash(make_spec(ema_decay=0.999))


def test_the_recommended_spec_is_the_tuned_scatter_recipe() -> None:
    spec = recommended_spec()  # what `visdm data model-spec` prints
    assert spec.architecture == "scatter_linear" and spec.optimizer == "sgd"
    assert spec.dp is not None and (spec.dp.target_epsilon, spec.dp.max_grad_norm) == (3.0, 0.1)
    assert spec.ema_decay == 0.99 and spec.batch_size == 256
    # the batch is about a tenth of the selection, within the market's minimum and a node's
    # default maximum, and the step grows with it
    sizes = {n: recommended_spec(samples=n) for n in (300, 1_200, 60_000)}
    assert [s.batch_size for s in sizes.values()] == [64, 128, 1024]
    assert [s.learning_rate for s in sizes.values()] == [0.125, 0.25, 2.0]
    assert [s.epochs for s in sizes.values()] == [20, 20, 40]
    assert recommended_spec(samples=300, min_batch_size=100).batch_size == 100
    assert recommended_spec(epsilon=None).dp is None
    cnn = recommended_spec("scatter_cnn", input_shape=(3, 32, 32), num_classes=4, epochs=7)
    assert (cnn.input_shape, cnn.num_classes, cnn.epochs) == ((3, 32, 32), 4, 7)
    legacy = recommended_spec("small_cnn", samples=10_000)
    assert (legacy.optimizer, legacy.batch_size, legacy.ema_decay) == ("adam", 256, None)
    assert legacy.dp is not None and legacy.dp.max_grad_norm == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "vgg"}, "architecture='vgg'"),
        ({"input_shape": (2, 28, 28)}, "input_shape.0=2"),
        ({"epsilon": 0.0}, "dp.target_epsilon=0.0"),
        ({"epochs": 0}, "epochs=0"),
        ({"samples": 0}, "samples must be at least 1, got 0"),
    ],
)
def test_the_recommended_spec_refuses_bad_sizes(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidModelSpecError, match=re.escape(message)):
        recommended_spec(**kwargs)


def test_integer_learning_rate_hashes_like_the_float() -> None:
    assert spec_hash(make_spec(learning_rate=1)) == spec_hash(make_spec(learning_rate=1.0))


BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"architecture": "transformer"}, "architecture", "'transformer'"),
    ({"architecture": 3}, "architecture", "3"),
    ({"input_shape": [28, 28]}, "input_shape", "[28, 28]"),
    ({"input_shape": [4, 28, 28]}, "input_shape.0", "1 or 3"),
    ({"input_shape": [1, 28, 4]}, "input_shape.2", "4"),
    ({"input_shape": [5, 28, 28]}, "input_shape.0", "5"),
    ({"num_classes": 1}, "num_classes", "1"),
    ({"num_classes": "10"}, "num_classes", "'10'"),
    ({"num_classes": True}, "num_classes", "True"),
    ({"epochs": 0}, "epochs", "0"),
    ({"epochs": 1.5}, "epochs", "1.5"),
    ({"batch_size": -4}, "batch_size", "-4"),
    ({"optimizer": "rmsprop"}, "optimizer", "'rmsprop'"),
    ({"learning_rate": 0}, "learning_rate", "0"),
    ({"learning_rate": 11.0}, "learning_rate", "11.0"),
    ({"width": 2}, "width", "2"),
    ({"width": 512}, "width", "512"),
    ({"architecture": "mlp", "hidden": []}, "hidden", "[]"),
    ({"architecture": "mlp", "hidden": [64, 0]}, "hidden.1", "0"),
    ({"architecture": "mlp", "hidden": [8] * 5}, "hidden", "[8, 8, 8, 8, 8]"),
    ({"architecture": "resnet", "depth": 5}, "depth", "5"),
    ({"dp": {"target_epsilon": 0, "delta": 1e-5}}, "dp.target_epsilon", "0"),
    ({"dp": {"target_epsilon": 3, "delta": 0.5}}, "dp.delta", "0.5"),
    ({"dp": {"target_epsilon": 3, "delta": 1e-5, "max_grad_norm": -1}}, "dp.max_grad_norm", "-1"),
    ({"dp": {"target_epsilon": 3, "delta": 1e-5, "noise": 1}}, "dp.noise", "1"),
    ({"dp": {"delta": 1e-5}}, "dp.target_epsilon", "required"),
    ({"dp": 3}, "dp", "3"),
    ({"code": "import os"}, "code", "'import os'"),
    ({"schema_version": 2}, "schema_version", "2"),
    ({"architecture": "scatter_linear", "norm_groups": 0}, "norm_groups", "0"),
    ({"architecture": "scatter_linear", "norm_groups": 244}, "norm_groups", "244"),
    ({"architecture": "scatter_linear", "norm_groups": 9.0}, "norm_groups", "9.0"),
    ({"architecture": "scatter_linear", "norm_groups": "27"}, "norm_groups", "'27'"),
    ({"architecture": "scatter_cnn", "width": 2}, "width", "2"),
    ({"lr_schedule": "linear"}, "lr_schedule", "'linear'"),
    ({"lr_schedule": None}, "lr_schedule", "None"),
    ({"ema_decay": 1.0}, "ema_decay", "1.0"),
    ({"ema_decay": 0}, "ema_decay", "0"),
    ({"ema_decay": -0.5}, "ema_decay", "-0.5"),
    ({"ema_decay": True}, "ema_decay", "True"),
    ({"ema_decay": "0.9"}, "ema_decay", "'0.9'"),
]


@pytest.mark.parametrize(("override", "field", "value"), BAD_FIELDS)
def test_each_bad_field_is_named_with_its_value(
    override: dict[str, Any], field: str, value: str
) -> None:
    with pytest.raises(InvalidModelSpecError) as info:
        parse_model_spec(json.dumps(make_spec(**override)))
    assert isinstance(info.value, InvalidInputError)
    assert f"{field}=" in str(info.value) or f"{field}:" in str(info.value)
    assert value in str(info.value)


@pytest.mark.parametrize("field", ["architecture", "input_shape", "num_classes", "epochs"])
def test_missing_required_field(field: str) -> None:
    spec = make_spec()
    del spec[field]
    with pytest.raises(InvalidModelSpecError, match=f"{field}: required field is missing"):
        parse_model_spec(spec)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"architecture": "scatter_linear", "width": 16},
            "width=16 does not apply to architecture 'scatter_linear' (its knobs: norm_groups)",
        ),
        (
            {"architecture": "scatter_cnn", "hidden": [32]},
            "hidden=(32,) does not apply to architecture 'scatter_cnn'",
        ),
        ({"norm_groups": 27}, "norm_groups=27 does not apply to architecture 'small_cnn'"),
        (
            {"architecture": "scatter_linear", "norm_groups": 10},
            "norm_groups=10 must divide the 81 scattering channels of 1-channel input: use one "
            "of 1, 3, 9, 27, 81",
        ),
        (
            {"architecture": "scatter_cnn", "input_shape": [3, 28, 28], "norm_groups": 2},
            "norm_groups=2 must divide the 243 scattering channels of 3-channel input",
        ),
        ({"architecture": "mlp", "width": 32}, "width=32 does not apply to architecture 'mlp'"),
        ({"hidden": [64]}, "hidden=(64,) does not apply to architecture 'small_cnn'"),
        ({"depth": 2}, "depth=2 does not apply to architecture 'small_cnn'"),
        (
            {"architecture": "resnet", "depth": 4, "input_shape": [1, 16, 16]},
            "depth=4 needs inputs of at least 32 pixels",
        ),
    ],
)
def test_knobs_must_fit_the_architecture(override: dict[str, Any], message: str) -> None:
    with pytest.raises(
        InvalidModelSpecError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        parse_model_spec(make_spec(**override))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"spec"', "must be a JSON object, got str"),
        (b'{"epochs": 1, "epochs": 2}', "repeats the key 'epochs'"),
        (
            json.dumps(make_spec()).replace('"learning_rate": 0.001', '"learning_rate": NaN'),
            "learning_rate must be finite, got nan",
        ),
        (
            json.dumps(make_spec()).replace('"epochs": 1', '"epochs": Infinity'),
            "epochs must be finite, got inf",
        ),
        (b" " * (64 * 1024 + 1), "more than the 65536 allowed"),
    ],
)
def test_malformed_documents(document: bytes | str, message: str) -> None:
    with pytest.raises(InvalidModelSpecError, match=message):
        parse_model_spec(document)


@pytest.mark.parametrize(
    "source",
    [make_spec(seed=7), json.dumps(make_spec(seed=0)), json.dumps(make_spec(seed=None)).encode()],
)
def test_a_spec_that_brings_its_own_seed_is_refused(source: Any) -> None:
    # the consumer must not know the job's randomness (it could then undo DP noise)
    with pytest.raises(InvalidModelSpecError, match="compute node draws each job's randomness"):
        parse_model_spec(source)
    with pytest.raises(InvalidModelSpecError, match="remove the seed key"):
        spec_hash(source)


def test_nan_in_a_dict_is_refused() -> None:
    with pytest.raises(InvalidModelSpecError, match="learning_rate"):
        parse_model_spec(make_spec(learning_rate=float("nan")))


def test_spec_is_immutable() -> None:
    spec = parse_model_spec(make_spec())
    with pytest.raises(ValueError, match="frozen"):
        spec.epochs = 100  # type: ignore[misc]
