"""Model files: safetensors round trip, spec-hash binding, refusal of mismatched tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from eth_utils.crypto import keccak
from safetensors import safe_open
from safetensors.torch import save_file

from tests.unit.training.conftest import SEED, Data, make_spec
from visdm.errors import ModelFileError
from visdm.training import (
    TrainingResult,
    load_model,
    model_bytes,
    model_hash,
    save_model,
    spec_hash,
    train,
)

pytestmark = pytest.mark.unit

SPEC = make_spec(architecture="small_cnn", width=4)


@pytest.fixture(scope="module")
def result(fmnist: Data) -> TrainingResult:
    return train(SPEC, *fmnist, seed=SEED)


def test_round_trip_gives_the_same_predictions(
    result: TrainingResult, fmnist: Data, tmp_path: Path
) -> None:
    path = tmp_path / "model.safetensors"
    digest = save_model(result, path)
    assert digest == model_hash(path.read_bytes()) == keccak(path.read_bytes())
    for _ in range(5):  # deterministic encoding, whatever the hash-map order of the run
        assert model_bytes(result) == path.read_bytes()
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata()["visdm.spec_hash"] == "0x" + spec_hash(SPEC).hex()
    loaded = load_model(path, SPEC)
    assert not loaded.training
    x = torch.from_numpy(fmnist[2][:, None]).float() / 127.5 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), result.model(x))
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, result.state[name])


def test_a_file_for_another_spec_is_refused(result: TrainingResult, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_model(result, path)
    with pytest.raises(ModelFileError, match=r"saved for spec hash 0x[0-9a-f]{64}, but the given"):
        load_model(path, make_spec(architecture="small_cnn", width=4, epochs=2))


def test_tensors_that_do_not_fit_the_spec_are_refused(
    result: TrainingResult, tmp_path: Path
) -> None:
    meta = {"visdm.spec_hash": "0x" + spec_hash(SPEC).hex()}
    missing = dict(result.state)
    del missing["head.weight"]
    save_file(missing, tmp_path / "missing.safetensors", metadata=meta)
    with pytest.raises(ModelFileError, match=r"missing \['head.weight'\]"):
        load_model(tmp_path / "missing.safetensors", SPEC)
    misshapen = dict(result.state)
    misshapen["head.weight"] = torch.zeros(10, 64)
    save_file(misshapen, tmp_path / "shape.safetensors", metadata=meta)
    with pytest.raises(ModelFileError, match=r"'head.weight' is \(10, 64\).*needs \(10, 128\)"):
        load_model(tmp_path / "shape.safetensors", SPEC)
    extra = {**result.state, "backdoor": torch.zeros(1)}
    save_file(extra, tmp_path / "extra.safetensors", metadata=meta)
    with pytest.raises(ModelFileError, match=r"unexpected \['backdoor'\]"):
        load_model(tmp_path / "extra.safetensors", SPEC)


def test_garbage_and_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="not a safetensors model file"):
        load_model(tmp_path / "junk", SPEC)
    with pytest.raises(ModelFileError, match="cannot read"):
        load_model(tmp_path / "absent", SPEC)
