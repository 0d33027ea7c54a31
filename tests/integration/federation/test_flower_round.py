"""Flower's own processes without the market: the control for SuperNode authentication (with it
off, an unlisted SuperNode joins) and a SecAgg+ round. The federated round with
authentication, a region killed mid-round and exact values is the market's end-to-end test
(``test_federated_proposal.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.federation._fakegrid import SPEC, split_regions, validation_set
from visdm.federation import Federation, new_supernode_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REGIONS = {"eu": 150, "us": 150, "ap": 150}


def test_without_supernode_auth_the_unlisted_node_would_join(tmp_path: Path) -> None:
    """The control: with authentication off, a SuperNode that merely trusts the round's CA
    registers itself and is online, ready to be sent the global model."""
    with Federation(tmp_path / "fed", authenticate=False) as fed:
        fed.add_supernode("rogue", key=None, node_config={"region": "eu"})
        assert len(fed.wait_for_nodes(1, timeout_s=120)) == 1


def test_secagg_plus_round_trains_the_same_model_without_showing_one_update(
    tmp_path: Path,
) -> None:
    """SecAgg+ (Flower's legacy workflow path): the coordinator only unmasks the sum."""
    nodes = split_regions(tmp_path / "data", REGIONS, 150)
    keys = {n: new_supernode_key(tmp_path / "keys", n) for n in REGIONS}
    val_x, val_y = validation_set(200)
    np.savez(tmp_path / "val.npz", images=val_x, labels=val_y)
    spec = {k: v for k, v in SPEC.items() if k != "dp"}
    cfg = {
        "spec": json.dumps(spec),
        "regions": ",".join(f"{k}:{v}" for k, v in REGIONS.items()),
        "num-rounds": 1,
        "local-epochs": 1,
        "validation-path": str(tmp_path / "val.npz"),
        "result-path": str(tmp_path / "result.json"),
    }
    with Federation(tmp_path / "fed", named_keys=[keys[n].public_key for n in REGIONS]) as fed:
        for name in REGIONS:
            fed.add_supernode(name, key=keys[name], node_config=nodes[name])
        fed.wait_for_nodes(3, timeout_s=180)
        status = fed.run(cfg, app="secagg", timeout_s=900)
    assert status.status == "finished:completed"
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["secagg"] is True and result["num_shares"] == 3
    # each node draws its seed from the OS (secret per node), so one epoch on 450 images lands
    # anywhere from about 0.2 to 0.5; chance is 0.1, and a wrongly unmasked sum scores chance
    assert result["accuracy"] > 0.15
    # three regions answered, and aggregation was shown only their unmasked sum
    assert result["aggregation_saw"] == [{"round": 1, "results": 3, "distinct_updates": 1}]
