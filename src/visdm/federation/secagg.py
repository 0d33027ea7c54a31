"""The same federated rounds under SecAgg+, so the coordinator never sees one region's update.

SecAgg+ (Bell et al., CCS 2020) is Flower's ``SecAggPlusWorkflow`` with the ``secaggplus_mod``
on the clients, which Flower 1.42 offers on its legacy workflow path (``LegacyContext``,
``DefaultWorkflow``, a ``NumPyClient``). Each region masks its quantised, sample-weighted update
with pairwise masks that cancel in the sum; the ServerApp only ever unmasks the sum, which the
legacy FedAvg then divides by the total sample count. The local round is the same
:func:`visdm.federation._local.local_update` (zoo, DP-SGD, the node's seed, the accountant file).

Differences from :mod:`visdm.federation.server_app`: Flower's legacy FedAvg drives the rounds, so
a region that drops out is handled by SecAgg+'s own threshold (``reconstruction-threshold`` of
``num-shares``) rather than by the accepted-share rule, and no TKNN count round runs here (its
counts are public sums already; run :mod:`~visdm.federation.server_app` for values).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid
from numpy.typing import NDArray

from visdm.federation._local import (
    cached_sigma,
    epsilon_of,
    evaluate,
    initial_weights,
    load_history,
    local_update,
    node_seed,
    round_seed,
    save_history,
)
from visdm.federation.client_app import _state_dir, load_region_data
from visdm.federation.server_app import parse_regions
from visdm.training._spec import parse_model_spec

__all__ = ["client", "server"]


class _RegionClient(NumPyClient):
    """One region's legacy client: a local round on the node's own data."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def fit(
        self, parameters: list[NDArray[Any]], config: dict[str, Any]
    ) -> tuple[list[NDArray[Any]], int, dict[str, Any]]:
        run_config, node_config = self.context.run_config, self.context.node_config
        spec = parse_model_spec(str(run_config["spec"]))
        images, labels, _ = load_region_data(node_config)
        names = list(initial_weights(spec, bytes(32)))  # the state dict's order, not its values
        weights = dict(zip(names, parameters, strict=True))
        server_round = int(config["server-round"])
        total_epochs = int(run_config["num-rounds"]) * int(run_config.get("local-epochs", 1))
        state = _state_dir(node_config)
        run_id = int(self.context.run_id)
        sigma = None
        if spec.dp is not None:
            path = state / f"sigma-{run_id}.json"
            sigma = cached_sigma(path, spec, len(labels), total_epochs, None)
        update = local_update(
            spec,
            images,
            labels,
            weights,
            seed=round_seed(node_seed(state), run_id, server_round),
            epochs=int(run_config.get("local-epochs", 1)),
            total_epochs=total_epochs,
            sigma=sigma,
        )
        metrics: dict[str, Any] = {"loss": update.loss}
        if update.history_entry is not None and spec.dp is not None:
            path = state / f"accountant-{run_id}.json"
            history = [*load_history(path), update.history_entry]
            save_history(path, history)
            metrics["epsilon"] = epsilon_of(history, spec.dp.delta)
        return [update.weights[k] for k in names], update.num_examples, metrics


class _SeenFedAvg(FedAvg):
    """Legacy FedAvg that records what aggregation was shown: under SecAgg+ every result
    carries the same unmasked sum, never one region's own update."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[dict[str, int]] = []

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
        digests = {
            hashlib.sha256(b"".join(fit.parameters.tensors)).hexdigest() for _, fit in results
        }
        self.seen.append(
            {"round": server_round, "results": len(results), "distinct_updates": len(digests)}
        )
        return super().aggregate_fit(server_round, results, failures)


def _client_fn(context: Context) -> Any:
    return _RegionClient(context).to_client()


client = ClientApp(client_fn=_client_fn, mods=[secaggplus_mod])
server = ServerApp()


@server.main()
def main(grid: Grid, context: Context) -> None:
    """FedAvg under SecAgg+ for ``num-rounds`` rounds; the result goes to ``result-path``."""
    run_config = context.run_config
    spec = parse_model_spec(str(run_config["spec"]))
    regions = parse_regions(str(run_config["regions"]))
    weights = initial_weights(spec, os.urandom(32))
    names = list(weights)
    k = len(regions)
    strategy = _SeenFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=k,
        min_available_clients=k,
        initial_parameters=ndarrays_to_parameters(list(weights.values())),
        on_fit_config_fn=lambda server_round: {"server-round": server_round},
    )
    legacy = LegacyContext(
        context, config=ServerConfig(num_rounds=int(run_config["num-rounds"])), strategy=strategy
    )
    shares = int(run_config.get("num-shares", max(3, k)))
    threshold = int(run_config.get("reconstruction-threshold", max(2, k - 1)))
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(num_shares=shares, reconstruction_threshold=threshold)
    )
    workflow(grid, legacy)
    record = legacy.state.array_records["parameters"]
    final = dict(zip(names, record.to_numpy_ndarrays(), strict=True))
    result: dict[str, Any] = {
        "status": "completed",
        "secagg": True,
        "num_shares": shares,
        "aggregation_saw": strategy.seen,
    }
    if run_config.get("validation-path"):
        with np.load(str(run_config["validation-path"])) as data:
            result["accuracy"] = evaluate(spec, final, data["images"], data["labels"])
    if run_config.get("result-path"):
        path = Path(str(run_config["result-path"]))
        np.savez(path.with_suffix(".npz"), **final)  # type: ignore[arg-type]
        path.write_text(json.dumps(result, indent=1))
