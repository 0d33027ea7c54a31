"""Scoring rounds and the cold start: is a newcomer's good data chosen before and after one round?

Market: Fashion-MNIST training images (Debian ``dataset-fashion-mnist``; the shipped subset for
``--quick``) held by ten providers of ``per_provider`` images each (300 full size, 60 with
``--quick``). Eight are incumbents whose samples carry scores — 80 % of the market — four
honest and four labelling 40 % of their images wrongly (a random other class, seeded). Two
providers are new and unscored: one honest, one as noisy as the noisy incumbents.

Incumbents' scores: one real training round over all their samples — the node's own job
(``visdm.training:run_job``: an ``mlp`` trained on the selection, copy-robust KNN-Shapley on its
embeddings against a consumer's validation set of ``n_val`` further training images), run in
this process. The scoring round: the node's scoring job (``visdm.scoring._job:run_scoring_job``)
on the two newcomers' batch against the default public reference (Fashion-MNIST test images
0–499 score, 500–999 are anchors), run in this process as well (``benchmarks/training.py``
prices the sandbox).

Choice: a consumer takes the half of the market with the best **expected value**
(:func:`visdm.scoring.expected_values` over every round's :func:`visdm.scoring.relative_value`,
what ``visdm market search --rank expected-value`` orders by). An unscored sample's expected
value is the market's mean. Reported: the share of the honest newcomer's samples chosen before
and after its one scoring round, beside the share of honest incumbents' samples chosen (the
peer: what the market already gives an honest, scored provider), and the same for the noisy
newcomer. Target: after one round the honest newcomer is chosen at ≥ 0.8 × the incumbents'
rate, and the noisy newcomer less often than the honest one. One repetition (every step is
seeded and deterministic).
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from _harness import Row, emit, parse_args
from visdm.compute.sandbox import SandboxJob
from visdm.datasets import load_fashion_mnist
from visdm.proposals import pack_arrays
from visdm.scoring import (
    DEFAULT_SCORING_SPEC,
    Observation,
    expected_values,
    relative_value,
    round_scale,
)

SEED = bytes(32)  # fixed so that runs compare; a node draws a fresh seed per job
NOISE = 0.4
INCUMBENTS = 8
HONEST_INCUMBENTS = 4
NEWCOMER, NOISY_NEWCOMER = 8, 9  # provider numbers of the unscored two
REFERENCE_VAL, REFERENCE_ANCHORS = 500, 500


def _provider(k: int) -> str:
    return f"0x{k + 1:040x}"


def _market(per_provider: int, n_val: int) -> dict[str, Any]:
    total = per_provider * (INCUMBENTS + 2)
    x, y = load_fashion_mnist("train", limit=total + n_val)
    rng = np.random.default_rng(7)
    labels = y[:total].copy()
    owner = np.repeat(np.arange(INCUMBENTS + 2), per_provider)
    noisy_provider = (owner >= HONEST_INCUMBENTS) & (owner != NEWCOMER)
    wrong = noisy_provider & (rng.random(total) < NOISE)
    labels[wrong] = (labels[wrong] + rng.integers(1, 10, wrong.sum())) % 10
    return {
        "x": x[:total],
        "y": labels,
        "owner": owner,
        "wrong": wrong,
        "x_val": x[total:],
        "y_val": y[total : total + n_val],
    }


def _job(entry: str, inp: Path, out: Path) -> dict[str, Any]:
    from visdm.scoring._job import run_scoring_job
    from visdm.training import run_job

    job = SandboxJob(
        job_id="bench",
        entry_point=entry,
        input_dir=inp,
        output_dir=out,
        params={
            "spec": DEFAULT_SCORING_SPEC,
            "limits": {},
            "seed": SEED.hex(),
            "valuation": {"k": 5, "cosine_threshold": None},
        },
    )
    run = run_scoring_job if entry.startswith("visdm.scoring") else run_job
    return dict(run(job, lambda *_, **__: None) or {})


def _describe(idx: np.ndarray, m: dict[str, Any]) -> dict[str, Any]:
    return {
        "sample_ids": [f"0x{i + 1:064x}" for i in idx],
        "providers": [_provider(int(m["owner"][i])) for i in idx],
        "asset_ids": [int(m["owner"][i]) + 1 for i in idx],
        "rank": [int(i) for i in idx],
        "links": [],
    }


def _training_round(m: dict[str, Any], idx: np.ndarray, tmp: Path) -> dict[int, Observation]:
    """The incumbents' scores: one training round over ``idx`` (relative values)."""
    inp, out = tmp / "train-in", tmp / "train-out"
    inp.mkdir()
    out.mkdir()
    (inp / "train.npz").write_bytes(pack_arrays(m["x"][idx], m["y"][idx]))
    (inp / "validation.npz").write_bytes(pack_arrays(m["x_val"], m["y_val"]))
    (inp / "samples.json").write_text(json.dumps(_describe(idx, m)))
    _job("visdm.training:run_job", inp, out)
    rows = json.loads((out / "valuation.json").read_text())["samples"]
    return _observations(idx, rows, round_scale(r["value"] for r in rows))


def _scoring_round(m: dict[str, Any], idx: np.ndarray, tmp: Path) -> dict[int, Observation]:
    """The newcomers' scores: the node's scoring job on their batch against the reference."""
    test_x, test_y = load_fashion_mnist("test", limit=REFERENCE_VAL + REFERENCE_ANCHORS)
    inp, out = tmp / "score-in", tmp / "score-out"
    (inp / "train").mkdir(parents=True)
    out.mkdir()
    files = []
    for n, i in enumerate(idx):
        buffer = io.BytesIO()
        Image.fromarray(m["x"][i]).save(buffer, format="PNG")
        files.append(f"{n:06d}")
        (inp / "train" / files[-1]).write_bytes(buffer.getvalue())
    (inp / "samples.json").write_text(
        json.dumps({**_describe(idx, m), "files": files, "labels": m["y"][idx].tolist()})
    )
    (inp / "validation.npz").write_bytes(
        pack_arrays(test_x[:REFERENCE_VAL], test_y[:REFERENCE_VAL])
    )
    (inp / "anchors.npz").write_bytes(pack_arrays(test_x[REFERENCE_VAL:], test_y[REFERENCE_VAL:]))
    _job("visdm.scoring._job:run_scoring_job", inp, out)
    written = json.loads((out / "scores.json").read_text())
    return _observations(idx, written["samples"], float(written["scale"]))


def _observations(
    idx: np.ndarray, rows: list[dict[str, Any]], scale: float
) -> dict[int, Observation]:
    out = {}
    assert len(rows) == len(idx), "every sample of the round is valued"
    for row in rows:
        se = (row.get("evidence") or {}).get("value_se")
        out[int(row["sample_id"], 16) - 1] = Observation(
            relative_value(row["value"], scale),
            None if se is None else relative_value(se, scale),
        )
    return out


def _chosen(scores: dict[int, Observation], total: int) -> np.ndarray:
    """The half of the market with the best expected value (ties by sample)."""
    found = expected_values({k: [v] for k, v in scores.items()}, keys=list(range(total)))
    ranked = sorted(range(total), key=lambda k: (-found[k].expected, k))
    chosen = np.zeros(total, dtype=bool)
    chosen[ranked[: total // 2]] = True
    return chosen


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    per_provider, n_val = (60, 300) if args.quick else (300, 1000)
    m = _market(per_provider, n_val)
    total = len(m["y"])
    owner = m["owner"]
    incumbents = np.flatnonzero(owner < INCUMBENTS)
    newcomers = np.flatnonzero(owner >= INCUMBENTS)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        scores = _training_round(m, incumbents, Path(tmp))
        train_s = time.perf_counter() - started
        before = _chosen(scores, total)
        started = time.perf_counter()
        scores |= _scoring_round(m, newcomers, Path(tmp))
        score_s = time.perf_counter() - started
        after = _chosen(scores, total)

    def rate(chosen: np.ndarray, who: np.ndarray) -> float:
        return float(chosen[who].mean())

    honest_incumbents = owner < HONEST_INCUMBENTS
    noisy_incumbents = (owner >= HONEST_INCUMBENTS) & (owner < INCUMBENTS)
    honest_new, noisy_new = owner == NEWCOMER, owner == NOISY_NEWCOMER
    peer = "honest incumbents' samples chosen"
    inc_before, inc_after = rate(before, honest_incumbents), rate(after, honest_incumbents)
    new_before, new_after = rate(before, honest_new), rate(after, honest_new)
    noisy_after = rate(after, noisy_new)
    rows = [
        Row(
            "honest newcomer's samples chosen, before a scoring round",
            new_before,
            "share",
            peer=peer,
            peer_value=inc_before,
            ratio=new_before / inc_before if inc_before else None,
        ),
        Row(
            "honest newcomer's samples chosen, after one scoring round",
            new_after,
            "share",
            peer=peer,
            peer_value=inc_after,
            ratio=new_after / inc_after if inc_after else None,
            target="ratio ≥ 0.8",
            meets=bool(inc_after and new_after / inc_after >= 0.8),
        ),
        Row(
            "noisy newcomer's samples chosen, after one scoring round",
            noisy_after,
            "share",
            peer="noisy incumbents' samples chosen",
            peer_value=rate(after, noisy_incumbents),
            target="below the honest newcomer's",
            meets=noisy_after < new_after,
        ),
        Row(
            "correctly labelled share of the chosen half, after the round",
            float((~m["wrong"][after]).mean()),
            "share",
            peer="before the round",
            peer_value=float((~m["wrong"][before]).mean()),
        ),
        Row(
            "scoring round wall time (the newcomers' batch, in process)",
            score_s,
            "s",
            peer="the incumbents' training round, in process",
            peer_value=train_s,
        ),
    ]
    emit(
        "scoring",
        rows,
        as_json=args.json,
        packages=("visdm", "torch", "numpy"),
        notes={
            "market": f"10 providers x {per_provider} Fashion-MNIST training images, 80 % scored",
            "noise": f"4 incumbents and 1 newcomer label {NOISE:.0%} of their images wrongly",
            "reference": f"test images 0-{REFERENCE_VAL - 1} score, "
            f"{REFERENCE_VAL}-{REFERENCE_VAL + REFERENCE_ANCHORS - 1} are anchors",
            "repetitions": 1,
        },
    )


if __name__ == "__main__":
    main()
