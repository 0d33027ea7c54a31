"""benchmarks/federated.py's rows with real processes (full size only): a SuperLink with TLS and
SuperNode authentication, three SuperNodes, each run timed by Flower's own run record."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from _harness import Row
from visdm.federation import Federation, new_supernode_key

ROUNDS = 3


def process_rows(tmp: Path, nodes: dict, spec: dict, per: int, val: tuple) -> list[Row]:
    # the peer app's module lives here: the SuperLink's and SuperNodes' children import it
    here = str(Path(__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    keys = {n: new_supernode_key(tmp / "keys", n) for n in nodes}
    np.savez(tmp / "val.npz", images=val[0], labels=val[1])
    base: dict[str, Any] = {
        "spec": json.dumps(spec),
        "regions": ",".join(f"{r}:{per}" for r in nodes),
        "num-rounds": ROUNDS,
        "local-epochs": 1,
        "wait-nodes-s": 120.0,
        "node-timeout-s": 900.0,
    }
    runs = {}
    with Federation(tmp / "fed", named_keys=[k.public_key for k in keys.values()]) as fed:
        for name, cfg in nodes.items():
            fed.add_supernode(name, key=keys[name], node_config=cfg)
        fed.wait_for_nodes(len(nodes), timeout_s=300)
        runs["ours"] = fed.run(base, timeout_s=1800)
        runs["secagg"] = fed.run(base, app="secagg", timeout_s=1800)
        runs["peer"] = fed.run(
            base, components=("_flower_peer:server", "_flower_peer:client"), timeout_s=1800
        )
        with_values = {**base, "validation-path": str(tmp / "val.npz")}
        runs["ours+values"] = fed.run(with_values, timeout_s=1800)
    ours, secagg, peer = runs["ours"], runs["secagg"], runs["peer"]
    per_round = {k: (v.bytes_in + v.bytes_out) / ROUNDS for k, v in runs.items()}
    return [
        Row(
            "wall s per round, ours (processes, TLS, auth, DP off)",
            ours.elapsed_s / ROUNDS,
            "s",
            "plain Flower FedAvg",
            peer.elapsed_s / ROUNDS,
            peer.elapsed_s / ours.elapsed_s,
        ),
        Row(
            "bytes per round, ours",
            per_round["ours"],
            "B",
            "plain Flower FedAvg",
            per_round["peer"],
            per_round["peer"] / per_round["ours"],
        ),
        Row(
            "wall s per round, SecAgg+",
            secagg.elapsed_s / ROUNDS,
            "s",
            "ours without SecAgg+",
            ours.elapsed_s / ROUNDS,
            ours.elapsed_s / secagg.elapsed_s,
        ),
        Row(
            "bytes per round, SecAgg+",
            per_round["secagg"],
            "B",
            "ours without SecAgg+",
            per_round["ours"],
            per_round["ours"] / per_round["secagg"],
        ),
        Row("wall s, rounds + TKNN count and value rounds", runs["ours+values"].elapsed_s, "s"),
    ]
