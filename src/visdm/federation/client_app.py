"""A regional node's ClientApp: local DP training rounds and TKNN count and value queries.

The SuperNode's ``--node-config`` says where the node keeps what it decided to train on and its
own state (the node decides; the coordinator only names the round):

* ``region`` — the region this node trains for;
* ``data-path`` — an ``.npz`` with ``images`` (uint8), ``labels`` and ``sample_ids`` (hex), the
  node's share of the selection, already decrypted inside the node;
* ``state-dir`` — the node's private directory: its secret seed and the privacy accountant's
  history, which must outlive the one process Flower starts per message;
* ``sandbox`` — ``true`` to train each round in the node's bubblewrap sandbox
  (:mod:`visdm.federation._sandboxed`).

The model spec comes from the run config (``spec``), as the proposal fixed it. Handlers are
plain functions of ``(message, run_config, node_config)`` so that the unit tests drive them
without processes; :data:`app` wraps them for Flower.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import (
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    MetricRecordValues,
    RecordDict,
)
from flwr.clientapp import ClientApp
from numpy.typing import NDArray

from visdm.errors import InvalidInputError
from visdm.federation._local import (
    cached_sigma,
    embed,
    epsilon_of,
    load_history,
    local_update,
    node_seed,
    round_seed,
    save_history,
)
from visdm.federation._wire import from_record, to_record
from visdm.training._spec import parse_model_spec
from visdm.valuation._tknn_shapley import TKNNCounts, tknn_counts, tknn_values_from_counts

__all__ = ["app", "handle_query", "handle_train", "load_region_data"]


def load_region_data(node_config: Mapping[str, Any]) -> tuple[NDArray[Any], ...]:
    """The node's images, labels and sample ids (hex strings) from ``data-path``."""
    path = Path(str(node_config.get("data-path", "")))
    if not path.is_file():
        raise InvalidInputError(
            f"the SuperNode's data-path {str(path)!r} is not a file: start it with "
            "--node-config 'data-path=\"...\"'"
        )
    with np.load(path, allow_pickle=False) as data:
        return data["images"], data["labels"], data["sample_ids"].astype(str)


def _state_dir(node_config: Mapping[str, Any]) -> Path:
    text = str(node_config.get("state-dir", ""))
    if not text:
        raise InvalidInputError("the SuperNode has no state-dir in its --node-config")
    return Path(text)


def handle_train(
    msg: Message, run_config: Mapping[str, Any], node_config: Mapping[str, Any]
) -> RecordDict:
    """One local round: the global weights in, this region's update and ε out."""
    spec = parse_model_spec(str(run_config["spec"]))
    images, labels, _ = load_region_data(node_config)
    config = msg.content.config_records["config"]
    server_round = int(config["server-round"])  # type: ignore[arg-type]
    weights = from_record(msg.content.array_records.get("arrays"), who="the coordinator")
    state = _state_dir(node_config)
    seed = round_seed(node_seed(state), int(msg.metadata.run_id), server_round)
    total_epochs = int(config["total-epochs"])  # type: ignore[arg-type]
    sigma = None
    if spec.dp is not None:
        sizes, values = config.get("sigma-samples", []), config.get("sigma-values", [])
        offers: dict[object, object] = {}
        if isinstance(sizes, list) and isinstance(values, list):
            offers = dict(zip(sizes, values, strict=False))
        offered = offers.get(len(labels))
        sigma = cached_sigma(
            state / f"sigma-{msg.metadata.run_id}.json",
            spec,
            len(labels),
            total_epochs,
            float(offered) if isinstance(offered, int | float) else None,
        )
    knobs = {
        "seed": seed,
        "epochs": int(config["local-epochs"]),  # type: ignore[arg-type]
        "total_epochs": total_epochs,
        "proximal_mu": float(config["proximal-mu"]),  # type: ignore[arg-type]
        "sigma": sigma,
    }
    if node_config.get("sandbox") is True:
        # the decrypted samples meet training code only in the node's sandbox
        from visdm.federation._sandboxed import run_sandboxed_round

        update = run_sandboxed_round(
            spec,
            Path(str(node_config["data-path"])),
            weights,
            workdir=state / f"round-{msg.metadata.run_id}-{server_round}",
            **knobs,  # type: ignore[arg-type]
        )
    else:
        update = local_update(spec, images, labels, weights, **knobs)  # type: ignore[arg-type]
    metrics: dict[str, MetricRecordValues] = {
        "num-examples": update.num_examples,
        "loss": update.loss,
    }
    if update.history_entry is not None and spec.dp is not None:
        # the accountant's state is a file: Flower runs each round in a new process
        path = state / f"accountant-{msg.metadata.run_id}.json"
        history = [*load_history(path), update.history_entry]
        save_history(path, history)
        metrics["epsilon"] = epsilon_of(history, spec.dp.delta)
    return RecordDict(
        {
            "arrays": to_record(update.weights),
            "metrics": MetricRecord(metrics),
            "meta": ConfigRecord({"region": str(node_config.get("region", ""))}),
        }
    )


def handle_query(
    msg: Message, run_config: Mapping[str, Any], node_config: Mapping[str, Any]
) -> RecordDict:
    """TKNN count step (``tknn-counts``) or value step (``tknn-values``)."""
    spec = parse_model_spec(str(run_config["spec"]))
    images, labels, ids = load_region_data(node_config)
    config = msg.content.config_records["config"]
    step, tau = str(config["step"]), float(config["tau"])  # type: ignore[arg-type]
    weights = from_record(msg.content.array_records.get("arrays"), who="the coordinator")
    val = from_record(msg.content.array_records.get("validation"), who="the coordinator")
    v_emb, v_labels = val["embeddings"].astype(np.float64), val["labels"].astype(np.int64)
    # the region's embeddings are computed here and stay here
    x_emb = embed(spec, weights, images)
    if step == "tknn-counts":
        counts = tknn_counts(x_emb, labels, v_emb, v_labels, tau=tau)
        record = ConfigRecord(
            {
                "within": counts.within.tolist(),
                "same-label": counts.same_label.tolist(),
                "n": counts.n,
            }
        )
        return RecordDict({"counts": record})
    if step == "tknn-values":
        summed = TKNNCounts.from_lists(
            list(config["within"]),  # type: ignore[arg-type]
            list(config["same-label"]),  # type: ignore[arg-type]
            int(config["n"]),  # type: ignore[arg-type]
        )
        values, stderr = tknn_values_from_counts(
            x_emb, labels, v_emb, v_labels, summed, tau=tau, num_classes=spec.num_classes
        )
        record = ConfigRecord(
            {
                "sample-ids": [str(i) for i in ids],
                "values": values.tolist(),
                "stderr": stderr.tolist(),
            }
        )
        return RecordDict({"values": record})
    raise InvalidInputError(f"unknown query step {step!r}: expected tknn-counts or tknn-values")


app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Flower's entry for a training round."""
    return Message(handle_train(msg, context.run_config, context.node_config), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Flower's entry for the TKNN count and value steps."""
    return Message(handle_query(msg, context.run_config, context.node_config), reply_to=msg)
