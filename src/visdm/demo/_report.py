"""The demo's report: what it did, step by step, and on disk ``report.json`` and two PNG plots."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DemoReport", "DemoStep", "Progress", "report_json", "write_report"]


@dataclass(slots=True)
class DemoStep:
    """One step: what happened, how long it took, the gas it cost, and lines that explain it."""

    name: str
    detail: str
    seconds: float
    gas_used: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DemoReport:
    """Everything the demo did; ``visdm demo`` prints it and writes it as ``report.json``."""

    home: str
    config: dict[str, Any] = field(default_factory=dict)
    rpc_url: str = ""
    chain_id: int = 0
    steps: list[DemoStep] = field(default_factory=list)
    providers: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    #: each saved search: its name, filters, matches and labels
    search: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    values: list[dict[str, Any]] = field(default_factory=list)
    #: the consumer's withdrawn refunds and the sweep of what was never claimed
    settlement: dict[str, Any] = field(default_factory=dict)
    total_seconds: float = 0.0

    def gas_by_step(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            if s.gas_used:
                out[s.name] = out.get(s.name, 0) + s.gas_used
        return out


class Progress:
    """What the demo reports while it runs (the CLI draws bars; tests pass nothing)."""

    def step(self, item: DemoStep) -> None:
        """A step finished."""

    @contextmanager
    def task(self, description: str, total: float) -> Iterator[Callable[[float], None]]:
        """A long step: the callable sets how much of ``total`` is done."""
        yield lambda _done: None


_COLOURS = {"clean": "#4c72b0", "noisy": "#dd8452", "copied": "#c44e52"}
_LEFT_OUT = "#999999"
_LABELS = {"clean": "not flagged", "noisy": "flagged noisy", "copied": "flagged copy"}


def _kind(flags: list[str]) -> str:
    if "copied" in flags:
        return "copied"
    if "noisy" in flags:
        return "noisy"
    return "clean"


def report_json(report: DemoReport) -> dict[str, Any]:
    """The report as ``visdm demo --json`` prints it and ``report.json`` holds it, in the
    CLI's JSON language (camelCase keys, amounts as strings of wei under keys ending in Wei)."""
    from visdm.cli._json import json_view

    data: dict[str, Any] = json_view(report)
    data["gasByStep"] = [{"step": k, "gasUsed": v} for k, v in report.gas_by_step().items()]
    return data


def write_report(report: DemoReport, out_dir: Path) -> list[Path]:
    """Write ``report.json``, ``values.png`` and ``payouts.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    path = out_dir / "report.json"
    path.write_text(json.dumps(report_json(report), indent=1) + "\n")
    written.append(path)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    every = [v["value"] for v in report.values]
    edges = [float(e) for e in np.histogram_bin_edges(every, bins=50)] if every else 10
    for kind, colour in _COLOURS.items():
        values = [v["value"] for v in report.values if _kind(v["flags"]) == kind]
        if values:
            label = f"{_LABELS[kind]} ({len(values)})"
            ax.hist(values, bins=edges, alpha=0.75, color=colour, label=label)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("per-sample value (copy-robust KNN-Shapley; copies are worth 0)")
    ax.set_ylabel("samples")
    ax.set_title("Value of each sample in round 1 (flags come from the node's valuation)")
    ax.legend()
    fig.tight_layout()
    path = out_dir / "values.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    _plot_payouts(plt, report, out_dir / "payouts.png")
    written.append(out_dir / "payouts.png")
    return written


def _plot_payouts(plt: Any, report: DemoReport, path: Path) -> None:
    """One bar per provider, coloured by its part; a zero bar says why, an unclaimed payout
    is hatched."""
    from matplotlib.patches import Patch

    providers = sorted(report.providers, key=lambda p: (-p["payoutWei"], p["name"]))
    colours = [
        _COLOURS["copied"] if p["role"] == "copier"
        else _COLOURS["noisy"] if p["role"] == "noisy"
        else _LEFT_OUT if not p["samples"] else _COLOURS["clean"]
        for p in providers
    ]  # fmt: skip
    fig, ax = plt.subplots(figsize=(9, 4.8))
    bars = ax.bar(
        [p["name"] for p in providers], [p["payoutWei"] / 1e18 for p in providers], color=colours
    )
    for bar, p in zip(bars, providers, strict=True):
        if p["payoutWei"] and not p["claimedWei"]:
            bar.set_hatch("//")
            bar.set_edgecolor("white")
        note = "rejected:\nnot used,\nnot paid" if not p["samples"] else ""
        if p["role"] == "copier" and not p["payoutWei"]:
            note = "copies:\nworth 0"
        if note:
            ax.annotate(
                note,
                (bar.get_x() + bar.get_width() / 2, 0),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    price = next((r.get("priceWei", 0) for r in report.rounds if r.get("status") == "completed"), 0)
    ax.set_ylabel("payout (tokens)")
    ax.set_title(f"Round 1: {price / 1e18:g} tokens paid by the value of each provider's samples")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(
        handles=[
            Patch(color=_COLOURS["clean"], label="clean labels"),
            Patch(color=_COLOURS["noisy"], label="40% mislabelled"),
            Patch(color=_COLOURS["copied"], label="copier (JPEG copies)"),
            Patch(color=_LEFT_OUT, label="rejected the proposal"),
            Patch(facecolor=_COLOURS["clean"], hatch="//", edgecolor="white", label="unclaimed"),
        ],
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
