"""A regional node's local round in the node's bubblewrap sandbox gives the same weights as
outside it, and a round the sandbox stops fails as a region's bad reply, not as a crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from tests.unit.federation._fakegrid import SPEC, split_regions
from visdm.compute.sandbox import SandboxLimits
from visdm.errors import FederationRoundError
from visdm.federation._local import initial_weights
from visdm.federation._sandboxed import run_sandboxed_round
from visdm.federation._wire import from_record, to_record
from visdm.federation.client_app import handle_train
from visdm.training._spec import parse_model_spec

pytestmark = pytest.mark.integration

PLAIN = {k: v for k, v in SPEC.items() if k != "dp"}


def _train_message(weights: dict) -> Message:
    TaskIdentity.run_id = TaskIdentity.task_id = 3
    TaskIdentity.node_id = 1
    config = ConfigRecord(
        {"server-round": 1, "local-epochs": 1, "total-epochs": 2, "proximal-mu": 0.0}
    )
    content = RecordDict({"arrays": to_record(weights), "config": config})
    return Message(content, dst_node_id=101, message_type="train")


def test_a_sandboxed_round_gives_the_same_weights_as_one_outside(tmp_path: Path) -> None:
    spec = parse_model_spec(PLAIN)
    weights = initial_weights(spec, bytes(32))
    run_config = {"spec": json.dumps(PLAIN)}
    outside = split_regions(tmp_path / "outside", {"eu": 120}, 120)["eu"]
    inside = split_regions(tmp_path / "inside", {"eu": 120}, 120)["eu"]  # same data and seed
    plain = handle_train(_train_message(weights), run_config, outside)
    boxed = handle_train(_train_message(weights), run_config, {**inside, "sandbox": True})
    a = from_record(plain.array_records["arrays"])
    b = from_record(boxed.array_records["arrays"])
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not any((Path(inside["state-dir"])).glob("round-*"))  # the job's copy is gone
    assert boxed.metric_records["metrics"]["num-examples"] == 120


def test_a_round_the_sandbox_stops_is_a_round_error(tmp_path: Path) -> None:
    spec = parse_model_spec(PLAIN)
    node = split_regions(tmp_path, {"eu": 60}, 60)["eu"]
    with pytest.raises(FederationRoundError, match="sandboxed local round ended"):
        run_sandboxed_round(
            spec,
            Path(node["data-path"]),
            initial_weights(spec, bytes(32)),
            workdir=tmp_path / "round",
            seed=bytes(32),
            epochs=1,
            total_epochs=1,
            proximal_mu=0.0,
            sigma=None,
            limits=SandboxLimits(memory_bytes=64 << 20),  # too little to import torch
        )
    assert not (tmp_path / "round").exists()
