"""Federated training across regions: what federation costs in accuracy, time and bytes, and
how exact its data values are.

Data: Fashion-MNIST training images (Debian ``dataset-fashion-mnist``, else the shipped subset;
the subset for ``--quick``) split over three regions, IID (seeded permutation) or label-skewed
(sorted by label, so each region holds about three classes); 10 % of the labels are flipped to
a random other class (seeded), so values have noise to find. Validation: test
images. Model: the zoo's ``mlp`` (one hidden layer of 64), SGD with momentum, batch 32, learning
rate 0.01 (0.1 under DP-SGD, whose clipped and noised steps need it).

Rows, in this process (:class:`visdm.federation.local_grid.LocalGrid` runs the ServerApp's round
against the ClientApp's handlers, each region with its own state directory, seed and
accountant):

* federated vs pooled accuracy (ratio; the peer is the node's own centralised
  :func:`visdm.training.train` on the union, same epochs): IID FedAvg, label-skewed FedAvg and
  FedProx (μ = 0.1), and with DP-SGD at ε = 4 (full size only: the PRV calibration takes
  seconds);
* federated TKNN-Shapley values vs the centralised computation on the same embeddings (max
  absolute difference; exact means 0);
* TKNN-Shapley vs exact KNN-Shapley (K = 5) on the same embeddings: Spearman rank correlation,
  and the noisy-label AUROC of each (the peer is KNN-Shapley);
* bytes per round of the in-process round (arrays and lists the messages carry).

Full size only, with real processes (a SuperLink with TLS and SuperNode authentication, three
SuperNodes): wall seconds and bytes per round (Flower's own count), SecAgg+ over plain FedAvg
(ratio of wall times; > 1 would mean SecAgg+ is faster), and the same FedAvg as a plain Flower
app (Flower's ``FedAvg`` strategy, a plain torch ClientApp, no DP, no sandbox, no chain) as the
peer: our overhead as a ratio. One repetition; the machine is shared, so times are noisy.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from _harness import Row, emit, parse_args
from visdm.datasets import DatasetNotFoundError, load_fashion_mnist, load_fashion_mnist_subset
from visdm.federation._local import embed
from visdm.federation.local_grid import LocalGrid
from visdm.federation.server_app import RoundConfig, run_federated
from visdm.training import train
from visdm.valuation import knn_shapley_values
from visdm.valuation._tknn_shapley import tknn_shapley_moments

SEED = bytes(32)  # fixed so that runs compare; a coordinator draws a fresh one per round
REGIONS = ("eu", "us", "ap")
NOISE = 0.1
SPEC: dict[str, Any] = {
    "architecture": "mlp",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 32,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "hidden": [64],
}
DP = {"target_epsilon": 4.0, "delta": 1e-4, "max_grad_norm": 1.0}


def _data(quick: bool) -> tuple[np.ndarray, ...]:
    per_region, n_val = (300, 300) if quick else (2000, 1000)
    n = per_region * len(REGIONS)
    try:
        if quick:
            raise DatasetNotFoundError("quick runs use the shipped subset")
        x, y = load_fashion_mnist("train", limit=n)
        vx, vy = load_fashion_mnist("test", limit=n_val)
    except DatasetNotFoundError:
        per_region = min(per_region, 2000 // len(REGIONS))
        n = per_region * len(REGIONS)
        x, y = load_fashion_mnist_subset("train", limit=n)
        vx, vy = load_fashion_mnist_subset("test", limit=min(n_val, 1000))
    rng = np.random.default_rng(0)
    y = y.copy()
    noisy = np.zeros(n, dtype=bool)
    flip = rng.choice(n, int(NOISE * n), replace=False)
    y[flip] = (y[flip] + rng.integers(1, 10, len(flip))) % 10
    noisy[flip] = True
    return x, y, vx, vy, noisy, np.array([per_region])


def _split(tmp: Path, x: np.ndarray, y: np.ndarray, order: np.ndarray, per: int) -> dict:
    configs = {}
    for i, name in enumerate(REGIONS):
        idx = order[i * per : (i + 1) * per]
        state = tmp / f"state-{name}"
        state.mkdir(parents=True, exist_ok=True)
        (state / "seed").write_bytes(bytes([i + 1]) * 32)
        path = tmp / f"{name}.npz"
        np.savez(path, images=x[idx], labels=y[idx], sample_ids=np.array([str(j) for j in idx]))
        configs[name] = {"region": name, "data-path": str(path), "state-dir": str(state)}
    return configs


def _federated(
    tmp: Path, nodes: dict, spec: dict, rounds: int, per: int, val: tuple, **extra: Any
) -> tuple:
    cfg = {
        "spec": json.dumps(spec),
        "regions": ",".join(f"{r}:{per}" for r in REGIONS),
        "num-rounds": rounds,
        "wait-nodes-s": 0.0,
        **extra,
    }
    grid = LocalGrid(nodes, cfg)
    start = time.perf_counter()
    result, weights = run_federated(
        grid, RoundConfig.from_run_config(cfg), seed=SEED, validation=val
    )
    seconds = time.perf_counter() - start
    return result, weights, seconds, (grid.bytes_down + grid.bytes_up) / rounds


def _pooled(spec: dict, x: np.ndarray, y: np.ndarray, rounds: int, val: tuple) -> float:
    result = train({**spec, "epochs": rounds}, x, y, *val, seed=SEED)
    return result.accuracy_bps / 10_000


def _auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(a positive outranks a negative), ties counted half (Mann-Whitney U / n₊n₋)."""
    ranks = stats.rankdata(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        argv,
        extra=lambda p: p.add_argument(
            "--no-processes", action="store_true", help="full size without the process rows"
        ),
    )
    quick = args.quick
    rounds = 2 if quick else 5
    x, y, vx, vy, noisy, per_arr = _data(quick)
    per = int(per_arr[0])
    val = (vx, vy)
    rows: list[Row] = []
    notes: dict[str, Any] = {"samples_per_region": per, "rounds": rounds, "validation": len(vy)}
    iid = np.random.default_rng(1).permutation(len(y))
    skew = np.argsort(y, kind="stable")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        pooled = _pooled(SPEC, x, y, rounds, val)
        res, weights, secs, per_round = _federated(
            tmp / "iid", _split(tmp / "iid", x, y, iid, per), SPEC, rounds, per, val
        )
        rows.append(_ratio("accuracy, IID FedAvg / pooled", res["accuracy"], pooled))
        rows.append(Row("bytes per round (in process, 3 regions)", per_round, "B"))
        notes["iid_round_seconds_in_process"] = round(secs / rounds, 2)
        for strategy, mu in (("fedavg", 0.0), ("fedprox", 0.1)):
            skewed, _, _, _ = _federated(
                tmp / strategy,
                _split(tmp / strategy, x, y, skew, per),
                SPEC,
                rounds,
                per,
                val,
                strategy=strategy,
                **{"proximal-mu": mu},
            )
            name = f"accuracy, label-skewed {'FedProx mu=0.1' if mu else 'FedAvg'} / pooled"
            rows.append(_ratio(name, skewed["accuracy"], pooled))
        rows += _valuation_rows(res, weights, tmp / "iid", noisy, iid, per, val)
        if not quick:
            # clipped, noised steps need a larger rate than plain SGD (0.1 trains, 0.01 barely)
            dp_spec = {**SPEC, "learning_rate": 0.1, "dp": DP}
            pooled_dp = _pooled(dp_spec, x, y, rounds, val)
            res_dp, _, _, _ = _federated(
                tmp / "dp", _split(tmp / "dp", x, y, iid, per), dp_spec, rounds, per, val
            )
            rows.append(
                _ratio("accuracy, IID FedAvg / pooled, DP eps=4", res_dp["accuracy"], pooled_dp)
            )
            notes["epsilon_per_region"] = {k: v["epsilon"] for k, v in res_dp["regions"].items()}
        if not quick and not args.no_processes:
            from _federated_processes import process_rows

            rows += process_rows(
                tmp / "processes", _split(tmp / "proc", x, y, iid, per), SPEC, per, val
            )
    emit("federated", rows, as_json=args.json, packages=("flwr", "torch", "opacus"), notes=notes)


def _ratio(metric: str, ours: float, peer: float) -> Row:
    return Row(metric, ours, "accuracy", "pooled (one node)", peer, ours / peer if peer else None)


def _valuation_rows(
    res: dict,
    weights: dict,
    tmp: Path,
    noisy: np.ndarray,
    order: np.ndarray,
    per: int,
    val: tuple,
) -> list[Row]:
    from visdm.training._spec import parse_model_spec

    spec = parse_model_spec(SPEC)
    embs, labels, ids = [], [], []
    for name in REGIONS:
        with np.load(tmp / f"{name}.npz") as d:
            embs.append(embed(spec, weights, d["images"]))
            labels.append(d["labels"])
            ids.append(d["sample_ids"].astype(str))
    xe, ye, ie = np.concatenate(embs), np.concatenate(labels), np.concatenate(ids)
    ve = embed(spec, weights, val[0])
    tau = res["valuation"]["tau"]
    central, _ = tknn_shapley_moments(xe, ye, ve, val[1], tau=tau, num_classes=10)
    federated = np.array([res["valuation"]["values"][i] for i in ie])
    knn = knn_shapley_values(xe, ye, ve, val[1], k=5)
    is_noisy = noisy[order[: per * len(REGIONS)]]
    rho = float(stats.spearmanr(federated, knn).statistic)
    return [
        Row(
            "TKNN values, federated vs centralised (max |diff|)",
            float(np.abs(federated - central).max()),
            "value",
            target="0 (exact)",
            meets=bool((federated == central).all()),
        ),
        Row(
            "TKNN vs exact KNN-Shapley, Spearman rank correlation",
            rho,
            "rho",
            "KNN-Shapley (K=5)",
            1.0,
        ),
        Row(
            "noisy-label AUROC, TKNN (federated)",
            _auroc(-federated, is_noisy),
            "AUROC",
            "KNN-Shapley (K=5)",
            _auroc(-knn, is_noisy),
            _auroc(-federated, is_noisy) / _auroc(-knn, is_noisy),
        ),
    ]


if __name__ == "__main__":
    main()
