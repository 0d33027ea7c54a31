"""The coordinator's ServerApp: FedAvg (or FedProx) rounds, then exact TKNN-Shapley values.

:func:`run_federated` is the whole round against anything with Flower's ``Grid`` interface
(``get_node_ids``, ``send_and_receive``); :data:`app` is the ServerApp the SuperLink runs, which
reads :class:`RoundConfig` from the run config, runs it and writes the result as JSON (and the
global weights as ``.npz``) where the coordinator asked.

**Aggregation.** FedAvg (McMahan et al., AISTATS 2017, Algorithm 1): the new global weights are
the average of the regions' weights, each weighted by its number of training samples. FedProx
(Li et al., MLSys 2020) aggregates the same way; its proximal term is the clients' (``proximal-mu``
in the run config, see :mod:`visdm.federation._local`), for label-skewed regions.

**Drop-outs.** A region that does not answer within ``node-timeout-s``, answers with an error, or
sends weights of the wrong names, shapes or values, leaves the round. The round goes on while the
regions left hold at least ``min-share`` of the selection (samples, as the proposal counts them
per region); below it the round fails, and the result says so, for a full refund.

**Valuation.** A count round (each region: how many of its samples lie within τ of each
validation embedding, and how many of those share its label) and a value round (each region
values its own samples against the summed counts) give every sample its exact TKNN-Shapley value
(:mod:`visdm.valuation._tknn_shapley`). What leaves a region: weights, counts, its samples'
values; never a sample or an embedding of one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp
from numpy.typing import NDArray

from visdm.errors import FederationRoundError, InvalidInputError, VisdmError
from visdm.federation._local import calibrate, embed, evaluate, initial_weights
from visdm.federation._wire import from_record, reply_audit, to_record
from visdm.training._spec import ModelSpec, parse_model_spec
from visdm.valuation._tknn_shapley import TKNNCounts

__all__ = ["GridLike", "RoundConfig", "app", "fedavg", "parse_regions", "run_federated"]

Weights = dict[str, NDArray[Any]]


class GridLike(Protocol):
    """The part of Flower's ``Grid`` a round uses (a fake one drives the unit tests)."""

    def get_node_ids(self) -> Iterable[int]: ...

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]: ...


def parse_regions(text: str) -> dict[str, int]:
    """``"eu:120,us:80"`` → ``{"eu": 120, "us": 80}``: each region's selected samples."""
    regions: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, count = part.partition(":")
        if not sep or not name.strip() or not count.strip().isdigit() or int(count) < 1:
            raise InvalidInputError(
                f"region entry {part!r} in {text!r} is not name:count with a positive count"
            )
        if name.strip() in regions:
            raise InvalidInputError(f"region {name.strip()!r} is named twice in {text!r}")
        regions[name.strip()] = int(count)
    if not regions:
        raise InvalidInputError("a federated round names no regions: give regions='eu:120,...'")
    if len(regions) > 8:
        raise InvalidInputError(f"a federation has at most 8 regional nodes, got {len(regions)}")
    return regions


@dataclass(frozen=True)
class RoundConfig:
    """A federated round's knobs, as the run config carries them (keys in kebab-case)."""

    spec: ModelSpec
    regions: dict[str, int]
    num_rounds: int = 3
    local_epochs: int = 1
    strategy: str = "fedavg"
    proximal_mu: float = 0.0
    min_share: float = 1.0
    node_timeout_s: float = 300.0
    wait_nodes_s: float = 60.0
    tknn_tau: float = 0.0  # 0: the median positive distance between validation embeddings
    validation_path: str = ""
    result_path: str = ""

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> RoundConfig:
        """Parse and check the run config; every bad value is one clear error."""
        try:
            cfg = cls(
                spec=parse_model_spec(str(run_config["spec"])),
                regions=parse_regions(str(run_config["regions"])),
                num_rounds=int(run_config.get("num-rounds", 3)),
                local_epochs=int(run_config.get("local-epochs", 1)),
                strategy=str(run_config.get("strategy", "fedavg")),
                proximal_mu=float(run_config.get("proximal-mu", 0.0)),
                min_share=float(run_config.get("min-share", 1.0)),
                node_timeout_s=float(run_config.get("node-timeout-s", 300.0)),
                wait_nodes_s=float(run_config.get("wait-nodes-s", 60.0)),
                tknn_tau=float(run_config.get("tknn-tau", 0.0)),
                validation_path=str(run_config.get("validation-path", "")),
                result_path=str(run_config.get("result-path", "")),
            )
        except KeyError as err:
            raise InvalidInputError(f"the run config lacks {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            if isinstance(err, VisdmError):
                raise
            raise InvalidInputError(f"a run config value is malformed: {err}") from None
        cfg.check()
        return cfg

    def check(self) -> None:
        if not 1 <= self.num_rounds <= 1000 or not 1 <= self.local_epochs <= 100:
            raise InvalidInputError(
                f"num-rounds must be 1-1000 and local-epochs 1-100, got {self.num_rounds} and "
                f"{self.local_epochs}"
            )
        if self.strategy not in ("fedavg", "fedprox"):
            raise InvalidInputError(f"strategy must be fedavg or fedprox, got {self.strategy!r}")
        if not (0 <= self.proximal_mu < 100) or (self.strategy == "fedavg" and self.proximal_mu):
            raise InvalidInputError(
                f"proximal-mu={self.proximal_mu} needs strategy fedprox and 0 <= mu < 100"
            )
        if not 0 < self.min_share <= 1:
            raise InvalidInputError(f"min-share must be in (0, 1], got {self.min_share}")
        if not (self.node_timeout_s > 0 and self.wait_nodes_s >= 0) or not math.isfinite(
            self.tknn_tau + self.node_timeout_s
        ):
            raise InvalidInputError("node-timeout-s must be positive and tknn-tau finite")


@dataclass
class _Region:
    node_id: int
    samples: int = 0
    epsilon: float | None = None
    dropped: str = ""


@dataclass
class _State:
    cfg: RoundConfig
    regions: dict[str, _Region] = field(default_factory=dict)  # region name → node
    audit: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def alive(self) -> dict[str, _Region]:
        return {name: r for name, r in self.regions.items() if not r.dropped}

    def drop(self, name: str, why: str) -> None:
        self.regions[name].dropped = why

    def check_share(self) -> None:
        total = sum(self.cfg.regions.values())
        held = sum(self.cfg.regions[name] for name in self.alive())
        if held < self.cfg.min_share * total:
            gone = {n: r.dropped for n, r in self.regions.items() if r.dropped}
            missing = sorted(set(self.cfg.regions) - set(self.regions))
            raise FederationRoundError(
                f"the regions left hold {held} of the {total} selected samples, below the "
                f"accepted share {self.cfg.min_share:.0%} (dropped: {gone or 'none'}, never "
                f"joined: {missing or 'none'}): the round fails and the consumer is refunded"
            )


def _message(node_id: int, kind: str, content: RecordDict) -> Message:
    return Message(content, dst_node_id=node_id, message_type=kind)


def _exchange(
    grid: GridLike, state: _State, kind: str, contents: Mapping[int, RecordDict]
) -> dict[int, Message]:
    """Send to each node, keep the answers that came back in time without an error."""
    replies = grid.send_and_receive(
        [_message(node, kind, content) for node, content in contents.items()],
        timeout=state.cfg.node_timeout_s,
    )
    good: dict[int, Message] = {}
    for reply in replies:
        node = int(reply.metadata.src_node_id)
        if reply.has_error():
            continue
        state.audit.append({"node_id": node, "kind": kind, "records": reply_audit(reply.content)})
        good[node] = reply
    return good


def _join(grid: GridLike, state: _State) -> list[int]:
    deadline = time.monotonic() + state.cfg.wait_nodes_s
    while True:
        nodes = sorted(int(n) for n in grid.get_node_ids())
        if len(nodes) >= len(state.cfg.regions) or time.monotonic() >= deadline:
            return nodes
        time.sleep(0.5)


def _train_round(grid: GridLike, state: _State, weights: Weights, server_round: int) -> Weights:
    cfg = state.cfg
    total_epochs = cfg.num_rounds * cfg.local_epochs
    nodes = [r.node_id for r in state.alive().values()] if server_round > 1 else _join(grid, state)
    by_node = {r.node_id: name for name, r in state.regions.items()}
    config: dict[str, Any] = {
        "server-round": server_round,
        "local-epochs": cfg.local_epochs,
        "total-epochs": total_epochs,
        "proximal-mu": cfg.proximal_mu,
    }
    if cfg.spec.dp is not None:
        # σ per region size, offered so that no node spends seconds calibrating; each node
        # checks the one for its size against its budget before it uses it
        sizes = sorted({*cfg.regions.values(), *(r.samples for r in state.regions.values())})
        sizes = [n for n in sizes if n > cfg.spec.batch_size]
        config["sigma-samples"] = sizes
        config["sigma-values"] = [calibrate(cfg.spec, n, total_epochs) for n in sizes]
    contents = {
        n: RecordDict({"arrays": to_record(weights), "config": ConfigRecord(config)}) for n in nodes
    }
    start = time.perf_counter()
    replies = _exchange(grid, state, "train", contents)
    updates: list[tuple[int, Weights]] = []
    for node in nodes:
        reply = replies.get(node)
        name = by_node.get(node)
        if reply is None:
            if name is not None:
                state.drop(name, f"no answer in round {server_round}")
            continue
        try:
            name = _claim(state, reply, name)
        except FederationRoundError as err:
            if name is not None:
                state.drop(name, str(err))
            continue
        state.regions.setdefault(name, _Region(node))
        try:
            update, samples, epsilon = _read_update(state, reply, weights, name)
        except FederationRoundError as err:
            state.drop(name, str(err))
            continue
        state.regions[name].samples, state.regions[name].epsilon = samples, epsilon
        updates.append((samples, update))
    state.check_share()
    state.rounds.append(
        {
            "round": server_round,
            "regions": sorted(state.alive()),
            "seconds": time.perf_counter() - start,
        }
    )
    return fedavg(updates)


def _claim(state: _State, reply: Message, known: str | None) -> str:
    """The region a reply speaks for: one of the round's, and not another node's."""
    node = int(reply.metadata.src_node_id)
    meta = reply.content.config_records.get("meta")
    name = str(meta.get("region", "")) if meta is not None else ""
    who = f"node {node} ({name or 'no region'})"
    if name not in state.cfg.regions:
        raise FederationRoundError(f"{who} is not one of the round's regions")
    if known is None and name in state.regions:
        raise FederationRoundError(f"{who} claims a region another node already holds")
    if known is not None and known != name:
        raise FederationRoundError(f"{who} changed its region from {known!r}")
    return name


def _read_update(
    state: _State, reply: Message, weights: Weights, name: str
) -> tuple[Weights, int, float | None]:
    who = f"node {reply.metadata.src_node_id} ({name})"
    content = reply.content
    metrics = content.metric_records.get("metrics")
    if metrics is None:
        raise FederationRoundError(f"{who} sent no metrics")
    samples = int(_number(metrics.get("num-examples", 0), who))
    if not 1 <= samples <= state.cfg.regions[name]:
        raise FederationRoundError(
            f"{who} trained on {samples} samples, its region has {state.cfg.regions[name]} selected"
        )
    update = from_record(content.array_records.get("arrays"), like=weights, who=who)
    epsilon = _number(metrics["epsilon"], who) if "epsilon" in metrics else None
    return update, samples, epsilon


def _number(value: object, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FederationRoundError(f"{who} sent {value!r} where a number was expected")
    return float(value)


def fedavg(updates: list[tuple[int, Weights]]) -> Weights:
    """Σ n_k w_k / Σ n_k per array, in float64, back to each array's dtype (rounded for
    integer buffers)."""
    if not updates:
        raise FederationRoundError("no region sent an update: nothing to aggregate")
    total = float(sum(n for n, _ in updates))
    out: Weights = {}
    for key, first in updates[0][1].items():
        acc = np.sum([n * w[key].astype(np.float64) for n, w in updates], axis=0) / total
        out[key] = (np.rint(acc) if first.dtype.kind in "iu" else acc).astype(first.dtype)
    return out


def _values(
    grid: GridLike, state: _State, weights: Weights, val: tuple[NDArray[Any], NDArray[Any]]
) -> dict[str, Any]:
    cfg = state.cfg
    v_emb = embed(cfg.spec, weights, val[0])
    tau = cfg.tknn_tau
    if tau <= 0:
        diff = v_emb[:, None, :] - v_emb[None, :, :]
        distances = np.sqrt((diff * diff).sum(axis=2))
        positive = distances[distances > 0]
        # a collapsed model embeds everything alike: then every point is everyone's neighbour
        tau = float(np.median(positive)) if positive.size else 1.0
    query: dict[str, Any] = {
        "arrays": to_record(weights),
        "validation": to_record({"embeddings": v_emb, "labels": val[1].astype(np.int64)}),
    }
    nodes = {r.node_id: name for name, r in state.alive().items()}
    step = ConfigRecord({"step": "tknn-counts", "tau": tau})
    replies = _exchange(
        grid, state, "query", {n: RecordDict({**query, "config": step}) for n in nodes}
    )
    total: TKNNCounts | None = None
    for node, name in nodes.items():
        counts = replies.get(node)
        if counts is None or "counts" not in counts.content.config_records:
            state.drop(name, "no TKNN counts")
            continue
        rec = counts.content.config_records["counts"]
        part = TKNNCounts.from_lists(
            list(rec["within"]),  # type: ignore[arg-type]
            list(rec["same-label"]),  # type: ignore[arg-type]
            int(rec["n"]),  # type: ignore[arg-type]
        )
        if part.n != state.regions[name].samples or part.within.shape != (v_emb.shape[0],):
            state.drop(name, "TKNN counts over the wrong sets")
            continue
        total = part if total is None else total + part
    state.check_share()
    if total is None:
        raise FederationRoundError("no region sent TKNN counts")
    summed = ConfigRecord(
        {
            "step": "tknn-values",
            "tau": tau,
            "within": total.within.tolist(),
            "same-label": total.same_label.tolist(),
            "n": total.n,
        }
    )
    alive = {r.node_id: name for name, r in state.alive().items()}
    replies = _exchange(
        grid, state, "query", {n: RecordDict({**query, "config": summed}) for n in alive}
    )
    values: dict[str, float] = {}
    for node, name in alive.items():
        reply = replies.get(node)
        got = reply.content.config_records.get("values") if reply is not None else None
        ids = list(got["sample-ids"]) if got is not None else []  # type: ignore[arg-type]
        vals = list(got["values"]) if got is not None else []  # type: ignore[arg-type]
        if len(ids) != state.regions[name].samples or len(vals) != len(ids):
            state.drop(name, "no TKNN values for its samples")
            continue
        try:
            values.update((str(i), _number(v, name)) for i, v in zip(ids, vals, strict=True))
        except FederationRoundError as err:
            state.drop(name, str(err))
    state.check_share()
    return {"tau": tau, "values": values, "counts_n": total.n}


def run_federated(
    grid: GridLike,
    cfg: RoundConfig,
    *,
    seed: bytes,
    validation: tuple[NDArray[Any], NDArray[Any]] | None = None,
) -> tuple[dict[str, Any], Weights | None]:
    """The whole round; returns the result document and the final global weights (``None``
    when the round failed: the result's ``status`` is then ``failed`` with the reason)."""
    state = _State(cfg)
    weights = initial_weights(cfg.spec, seed)
    result: dict[str, Any] = {"strategy": cfg.strategy, "num_rounds": cfg.num_rounds}
    try:
        for server_round in range(1, cfg.num_rounds + 1):
            weights = _train_round(grid, state, weights, server_round)
        if validation is not None:
            result["accuracy"] = evaluate(cfg.spec, weights, *validation)
            result["valuation"] = _values(grid, state, weights, validation)
        result["status"] = "completed"
    except FederationRoundError as err:
        result.update(status="failed", reason=str(err))
        weights_out: Weights | None = None
    else:
        weights_out = weights
    result["regions"] = {
        name: {
            "node_id": r.node_id,
            "samples": r.samples,
            "epsilon": r.epsilon,
            "dropped": r.dropped or None,
        }
        for name, r in sorted(state.regions.items())
    }
    result["rounds"] = state.rounds
    result["audit"] = state.audit
    return result, weights_out


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the round the run config describes and write its result where it says."""
    cfg = RoundConfig.from_run_config(context.run_config)
    validation = None
    if cfg.validation_path:
        with np.load(cfg.validation_path) as data:
            validation = (data["images"], data["labels"])
    result, weights = run_federated(grid, cfg, seed=os.urandom(32), validation=validation)
    if cfg.result_path:
        path = Path(cfg.result_path)
        if weights is not None:
            np.savez(path.with_suffix(".npz"), **weights)  # type: ignore[arg-type]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=str))
        tmp.replace(path)
