"""The peer for benchmarks/federated.py: the same FedAvg as a plain Flower app.

Flower's own ``FedAvg`` strategy (message API) and a ClientApp that trains the same ``mlp`` with
plain torch SGD on the region's ``.npz``: no DP, no sandbox, no chain, no node seed or
accountant, no values. Same data, rounds, batch size and learning rate as ours.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from torch import nn


def _net(spec: dict) -> nn.Module:
    hidden = spec["hidden"][0]
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


server = ServerApp()
client = ClientApp()


@server.main()
def main(grid: Grid, context: Context) -> None:
    spec = json.loads(str(context.run_config["spec"]))
    n = len(str(context.run_config["regions"]).split(","))
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=n, min_available_nodes=n)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(_net(spec).state_dict()),
        num_rounds=int(context.run_config["num-rounds"]),
        train_config=ConfigRecord({"lr": float(spec["learning_rate"])}),
    )


@client.train()
def fit(msg: Message, context: Context) -> Message:
    spec = json.loads(str(context.run_config["spec"]))
    with np.load(str(context.node_config["data-path"])) as d:
        x = torch.from_numpy(d["images"]).float().div(127.5).sub(1.0)[:, None]
        y = torch.from_numpy(d["labels"]).long()
    net = _net(spec)
    net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=float(spec["learning_rate"]), momentum=0.9)
    order = torch.randperm(len(y))
    for start in range(0, len(y), int(spec["batch_size"])):
        idx = order[start : start + int(spec["batch_size"])]
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    content = RecordDict(
        {"arrays": ArrayRecord(net.state_dict()), "metrics": MetricRecord({"num-examples": len(y)})}
    )
    return Message(content, reply_to=msg)
