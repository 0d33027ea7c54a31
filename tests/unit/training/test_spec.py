"""Model spec parsing, canonical form and hash; every way a spec can be wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils.crypto import keccak

from tests.unit.training.conftest import make_spec
from visdm.errors import InvalidInputError, InvalidModelSpecError
from visdm.training import ModelSpec, canonical_spec_json, parse_model_spec, spec_hash

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
