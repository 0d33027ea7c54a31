"""The demo's report on disk: ``report.json`` and two PNG plots."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ._play import DemoReport

__all__ = ["write_report"]

_COLOURS = {"clean": "#4c72b0", "noisy": "#dd8452", "copied": "#c44e52"}


def _kind(flags: list[str]) -> str:
    if "copied" in flags:
        return "copied"
    if "noisy" in flags:
        return "noisy"
    return "clean"


def write_report(report: DemoReport, out_dir: Path) -> list[Path]:
    """Write ``report.json``, ``values.png`` and ``payouts.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    data: dict[str, Any] = asdict(report)
    data["gas_by_step"] = report.gas_by_step()
    path = out_dir / "report.json"
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    written.append(path)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    every = [v["value"] for v in report.values]
    edges = [float(e) for e in np.histogram_bin_edges(every, bins=50)] if every else 10
    for kind, colour in _COLOURS.items():
        values = [v["value"] for v in report.values if _kind(v["flags"]) == kind]
        if values:
            ax.hist(values, bins=edges, alpha=0.75, color=colour, label=f"{kind} ({len(values)})")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("per-sample value (copy-robust KNN-Shapley; copies are worth 0)")
    ax.set_ylabel("samples")
    ax.set_title("Value of each sample in the training round")
    ax.legend()
    fig.tight_layout()
    path = out_dir / "values.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    providers = sorted(report.providers, key=lambda p: -p["payout"])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    colours = [
        _COLOURS["copied"] if p["role"] == "copier"
        else _COLOURS["noisy"] if p["role"] == "noisy" else _COLOURS["clean"]
        for p in providers
    ]  # fmt: skip
    ax.bar([p["name"] for p in providers], [p["payout"] / 1e18 for p in providers], color=colours)
    ax.set_ylabel("payout (tokens)")
    ax.set_title("Payout per provider (orange: 40% mislabelled, red: copier)")
    ax.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    path = out_dir / "payouts.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
