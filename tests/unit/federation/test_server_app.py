"""The ServerApp's round against real ClientApp handlers in this process (no SuperLink):
FedAvg with DP-SGD, ε per region across rounds, exact federated TKNN values, drop-outs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Error

from tests.unit.federation._fakegrid import (
    SPEC,
    FakeGrid,
    run_config,
    split_regions,
    validation_set,
)
from visdm.errors import InvalidInputError
from visdm.federation._local import embed, load_history
from visdm.federation.server_app import RoundConfig, fedavg, parse_regions, run_federated
from visdm.training._spec import parse_model_spec
from visdm.valuation._tknn_shapley import tknn_shapley_moments

pytestmark = pytest.mark.unit

REGIONS = {"eu": 200, "us": 200, "ap": 200}
SEED = bytes(range(32))


@pytest.fixture(scope="module")
def completed(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    tmp = tmp_path_factory.mktemp("fed")
    nodes = split_regions(tmp, REGIONS, 200)
    cfg = run_config(REGIONS)
    grid = FakeGrid(nodes, cfg)
    result, weights = run_federated(
        grid, RoundConfig.from_run_config(cfg), seed=SEED, validation=validation_set()
    )
    return result, weights, nodes


def test_round_trains_a_useful_model_with_dp_and_reports_epsilon_per_region(completed) -> None:
    result, _weights, nodes = completed
    assert result["status"] == "completed", result.get("reason")
    assert result["accuracy"] > 0.3  # 10 classes, chance 0.10; 14 DP-SGD steps at eps 4
    assert [r["regions"] for r in result["rounds"]] == [["ap", "eu", "us"]] * 2
    for name, region in result["regions"].items():
        assert region["samples"] == 200 and region["dropped"] is None
        # the budget covers both rounds; the accountant's history outlived each round's process
        assert 0 < region["epsilon"] <= SPEC["dp"]["target_epsilon"] + 0.05
        history = load_history(next(Path(nodes[name]["state-dir"]).glob("accountant-*.json")))
        assert len(history) == 2


def test_federated_values_equal_the_centralised_tknn_values_exactly(completed) -> None:
    result, weights, nodes = completed
    spec = parse_model_spec(SPEC)
    val_x, val_y = validation_set()
    parts = []
    for name in REGIONS:
        with np.load(nodes[name]["data-path"]) as d:
            parts.append((embed(spec, weights, d["images"]), d["labels"], d["sample_ids"]))
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    ids = np.concatenate([p[2] for p in parts]).astype(str)
    tau = result["valuation"]["tau"]
    central, _ = tknn_shapley_moments(
        x, y, embed(spec, weights, val_x), val_y, tau=tau, num_classes=10
    )
    federated = np.array([result["valuation"]["values"][i] for i in ids])
    assert len(result["valuation"]["values"]) == 600
    np.testing.assert_array_equal(federated, central)


def test_no_sample_or_embedding_left_a_region(completed) -> None:
    result, _, _ = completed
    weight_shapes = {k: list(v.shape) for k, v in completed[1].items()}
    for entry in result["audit"]:
        for record in entry["records"]:
            if record["kind"] == "ArrayRecord":
                assert record["shapes"] == weight_shapes  # only the model's own weights
            else:
                assert set(record["keys"]) <= {
                    "region",
                    "num-examples",
                    "loss",
                    "epsilon",
                    "within",
                    "same-label",
                    "n",
                    "sample-ids",
                    "values",
                    "stderr",
                }


def _drop_from_round_two(victim: int):
    def hook(kind, msg, content):
        if msg.metadata.dst_node_id != victim:
            return content
        config = msg.content.config_records["config"]
        if (kind == "train" and config["server-round"] >= 2) or kind == "query":
            return None  # killed: no answer
        return content

    return hook


def test_a_region_dropping_out_leaves_the_round_going_when_the_rest_hold_the_share(
    tmp_path: Path,
) -> None:
    nodes = split_regions(tmp_path, REGIONS, 200)
    cfg = run_config(REGIONS, **{"min-share": 0.6, "num-rounds": 2})
    grid = FakeGrid(nodes, cfg, hook=_drop_from_round_two(102))
    result, _weights = run_federated(
        grid, RoundConfig.from_run_config(cfg), seed=SEED, validation=validation_set(100)
    )
    assert result["status"] == "completed"
    assert result["regions"]["us"]["dropped"] == "no answer in round 2"
    assert result["rounds"][1]["regions"] == ["ap", "eu"]
    assert len(result["valuation"]["values"]) == 400  # the dropped region is not paid


def test_below_the_accepted_share_the_round_fails_for_a_refund(tmp_path: Path) -> None:
    nodes = split_regions(tmp_path, REGIONS, 200)
    cfg = run_config(REGIONS, **{"min-share": 0.9, "num-rounds": 2})
    grid = FakeGrid(nodes, cfg, hook=_drop_from_round_two(102))
    result, weights = run_federated(grid, RoundConfig.from_run_config(cfg), seed=SEED)
    assert weights is None
    assert result["status"] == "failed"
    assert "below the accepted share 90%" in result["reason"]
    assert "refunded" in result["reason"]


def test_bad_replies_drop_their_region(tmp_path: Path) -> None:
    nodes = split_regions(tmp_path, REGIONS, 200)
    nodes["ap"]["region"] = "mars"  # not a region of the round

    def hook(kind, msg, content):
        if msg.metadata.dst_node_id == 102:  # us: an update of the wrong shape
            arrays = content.array_records["arrays"]
            key = next(iter(arrays))
            from flwr.app import Array

            arrays[key] = Array(np.zeros(3, dtype=np.float32))
        if msg.metadata.dst_node_id == 101 and kind == "train":
            return Error(code=1, reason="crashed")
        return content

    cfg = run_config(REGIONS, **{"min-share": 0.1})
    result, _ = run_federated(
        FakeGrid(nodes, cfg, hook=hook), RoundConfig.from_run_config(cfg), seed=SEED
    )
    assert result["status"] == "failed"
    assert "us" in result["regions"] and "of shape (3,)" in result["regions"]["us"]["dropped"]
    assert "mars" not in result["regions"]


def test_fedavg_weights_by_samples() -> None:
    a = {"w": np.array([0.0, 2.0], dtype=np.float32), "t": np.array(1, dtype=np.int64)}
    b = {"w": np.array([4.0, 2.0], dtype=np.float32), "t": np.array(3, dtype=np.int64)}
    out = fedavg([(1, a), (3, b)])
    np.testing.assert_array_equal(out["w"], np.array([3.0, 2.0], dtype=np.float32))
    assert out["t"].dtype == np.int64 and int(out["t"]) == 2


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "names no regions"),
        ("eu", "not name:count"),
        ("eu:0", "not name:count"),
        ("eu:1,eu:2", "named twice"),
        (",".join(f"r{i}:1" for i in range(9)), "at most 8"),
    ],
)
def test_bad_region_lists_are_refused(text: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        parse_regions(text)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"strategy": "fedsgd"}, "fedavg or fedprox"),
        ({"proximal-mu": 0.1}, "needs strategy fedprox"),
        ({"min-share": 0.0}, "min-share"),
        ({"num-rounds": 0}, "num-rounds"),
        ({"num-rounds": "two"}, "malformed"),
        ({"spec": "{}"}, "architecture"),
    ],
)
def test_bad_run_configs_are_refused(extra: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        RoundConfig.from_run_config(run_config(REGIONS, **extra))


def test_a_run_config_without_regions_is_refused() -> None:
    cfg = run_config(REGIONS)
    del cfg["regions"]
    with pytest.raises(InvalidInputError, match="lacks 'regions'"):
        RoundConfig.from_run_config(cfg)


def test_result_document_is_json(completed) -> None:
    json.dumps(completed[0])
