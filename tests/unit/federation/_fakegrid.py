"""A Flower ``Grid`` stand-in that hands each message to a region's ClientApp handlers in this
process: the ServerApp's logic runs for real, without SuperLink or SuperNode processes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Message
from flwr.supercore.task_identity import TaskIdentity

from visdm.datasets import load_fashion_mnist_subset
from visdm.federation.client_app import handle_query, handle_train

SPEC = {
    "architecture": "mlp",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 32,
    "optimizer": "sgd",
    "learning_rate": 0.2,
    "hidden": [32],
    "dp": {"target_epsilon": 4.0, "delta": 1e-3, "max_grad_norm": 1.0},
}

Hook = Callable[[str, Message, Any], Any]


def split_regions(
    tmp: Path, names: Iterable[str], per_region: int, *, skew: bool = False
) -> dict[str, dict[str, Any]]:
    """Write each region's share of the Fashion-MNIST subset and return its node config.

    ``skew`` sorts by label first, so each region holds a few classes only."""
    tmp.mkdir(parents=True, exist_ok=True)
    train_x, train_y = load_fashion_mnist_subset("train")
    names = list(names)
    order = np.argsort(train_y, kind="stable") if skew else np.arange(len(train_y))
    configs = {}
    for i, name in enumerate(names):
        idx = order[i * per_region : (i + 1) * per_region]
        ids = np.array([f"{name}-{j:05d}" for j in idx])
        path = tmp / f"{name}.npz"
        np.savez(path, images=train_x[idx], labels=train_y[idx].astype(np.int64), sample_ids=ids)
        state = tmp / f"state-{name}"
        state.mkdir(parents=True, exist_ok=True)
        (state / "seed").write_bytes(bytes([i + 1]) * 32)  # fixed: the tests are reproducible
        configs[name] = {
            "region": name,
            "data-path": str(path),
            "state-dir": str(state),
        }
    return configs


def validation_set(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    test_x, test_y = load_fashion_mnist_subset("test")
    return test_x[:n], test_y[:n].astype(np.int64)


def run_config(regions: Mapping[str, int], **extra: Any) -> dict[str, Any]:
    cfg = {
        "spec": json.dumps(SPEC),
        "regions": ",".join(f"{k}:{v}" for k, v in regions.items()),
        "num-rounds": 2,
        "local-epochs": 1,
        "wait-nodes-s": 0.0,
        "node-timeout-s": 30.0,
    }
    cfg.update(extra)
    return cfg


class FakeGrid:
    """Nodes 101, 102, ... each run one region's handlers; ``hook(kind, msg, reply)`` may
    replace a reply (return an ``Error`` to drop the node, ``None`` for no answer)."""

    def __init__(
        self,
        node_configs: Mapping[str, Mapping[str, Any]],
        run_cfg: Mapping[str, Any],
        hook: Hook | None = None,
    ) -> None:
        self.nodes = {101 + i: dict(c) for i, c in enumerate(node_configs.values())}
        self.run_cfg = run_cfg
        self.hook = hook
        self.sent: list[tuple[int, str]] = []
        # Flower stamps messages with the run of the process: a SuperLink would have set it
        TaskIdentity.run_id = 7
        TaskIdentity.node_id = 1  # the SuperLink's own id
        TaskIdentity.task_id = 1

    def get_node_ids(self) -> Iterable[int]:
        return list(self.nodes)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            kind = msg.metadata.message_type
            self.sent.append((node, kind))
            handler = handle_train if kind == "train" else handle_query
            content = handler(msg, self.run_cfg, self.nodes[node])
            if self.hook is not None:
                content = self.hook(kind, msg, content)
            if content is None:
                continue
            replies.append(Message(content, reply_to=msg))
        return replies
