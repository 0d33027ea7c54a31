"""The demo's report: what it did, step by step, and on disk ``report.json`` and two PNG plots.

The values plot colours each sample by the truth the cast knows (correctly labelled, mislabelled,
a copy), not by the node's flags, and outlines those the node flagged ``noisy``: it shows what the
flags found and what they missed. :func:`flag_quality` measures the same: precision and recall of
the ``noisy`` flag on the mislabelled samples, and the share of correctly labelled samples it
flagged, beside what a negative value alone would have flagged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DemoReport",
    "DemoStep",
    "Progress",
    "collective_line",
    "flag_quality",
    "flag_quality_line",
    "newcomer_line",
    "report_json",
    "write_report",
]


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
    #: the collective: its members and floors, the policy, each vote it cast and its statistics
    collective: dict[str, Any] = field(default_factory=dict)
    #: the scoring round: the reference and fee, the newcomer, the batch the node scored and
    #: the newcomer's samples chosen by a search by expected value before and after it
    scoring: dict[str, Any] = field(default_factory=dict)
    #: the old and the new round spec trained on the same images (``demo._compare``)
    spec_comparison: list[dict[str, Any]] = field(default_factory=list)
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
_TRUTH = {"clean": "correctly labelled", "noisy": "mislabelled", "copied": "copy (worth 0)"}


def _truth(row: dict[str, Any]) -> str:
    if "copied" in row["flags"]:
        return "copied"
    return "noisy" if row.get("mislabelled") else "clean"


def flag_quality(values: list[dict[str, Any]]) -> dict[str, Any]:
    """How well the ``noisy`` flags of a round's scores find the truly mislabelled samples.

    ``values`` are the report's per-sample rows (``flags``, ``value``, ``mislabelled``); copies
    of another provider's samples are left out (they are flagged ``copied`` and valued 0).
    ``precision`` and ``recall`` are of the flag on the mislabelled samples (``None`` when
    undefined), ``honestFlagRate`` the share of correctly labelled samples flagged;
    ``negativeValue`` gives the same three for flagging every negative value.
    """
    rows = [v for v in values if "copied" not in v["flags"]]

    def score(flagged: list[bool]) -> dict[str, Any]:
        wrong = [bool(v.get("mislabelled")) for v in rows]
        hits = sum(f and w for f, w in zip(flagged, wrong, strict=True))
        honest = len(rows) - sum(wrong)
        false = sum(flagged) - hits
        return {
            "flagged": sum(flagged),
            "truePositives": hits,
            "precision": hits / sum(flagged) if any(flagged) else None,
            "recall": hits / sum(wrong) if any(wrong) else None,
            "honestFlagged": false,
            "honestFlagRate": false / honest if honest else None,
        }

    return {
        "samples": len(rows),
        "mislabelled": sum(bool(v.get("mislabelled")) for v in rows),
        **score(["noisy" in v["flags"] for v in rows]),
        "negativeValue": score([v["value"] < 0 for v in rows]),
    }


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def flag_quality_line(report: DemoReport) -> str:
    """One line on the flags of round 1, for people (see :func:`flag_quality`)."""
    q = flag_quality(report.values)
    old = q["negativeValue"]
    rate = "-" if q["honestFlagRate"] is None else f"{q['honestFlagRate']:.1%}"
    old_rate = "-" if old["honestFlagRate"] is None else f"{old['honestFlagRate']:.1%}"
    return (
        f"noisy flags: {q['flagged']} samples, {q['truePositives']} of the {q['mislabelled']} "
        f"mislabelled: precision {_share(q['precision'])}, recall {_share(q['recall'])}, "
        f"{q['honestFlagged']} correctly labelled flagged ({rate}); a negative value alone "
        f"would flag {old['honestFlagged']} ({old_rate}), precision {_share(old['precision'])}"
    )


def collective_line(report: DemoReport) -> str:
    """The collective's statistics in one line (empty before they were read)."""
    from ._settle import tokens

    collective = report.collective
    stats = collective.get("stats")
    if not stats:
        return ""
    outcomes = ", ".join(f"{o['proposals']} {o['outcome']}" for o in stats["outcomes"])
    rate = stats["acceptanceRate"]
    per_sample = stats["earningsPerSampleWei"]
    return (
        f"collective {collective['name']} ({len(collective['members'])} members) voted on "
        f"{stats['proposalsVoted']} proposals ({outcomes}) and accepted {stats['accepted']}"
        + (f" ({rate:.0%})" if rate is not None else "")
        + f"; its members earned {tokens(stats['earningsWei'])} tokens through it"
        + (f", {tokens(per_sample)} per selected sample" if per_sample else "")
    )


def card_line(card: Any) -> str:
    """A model card (:class:`visdm.training._card.ModelCard`, or ``None``) in one line."""
    if card is None:
        return "no card"
    low, high = card.interval_bps
    privacy = (
        "no DP"
        if card.epsilon_budget is None
        else f"eps {card.epsilon_spent:.3g} of {card.epsilon_budget:g} spent"
    )
    return (
        f"{card.accuracy_bps / 100:.2f} % ({card.ci_level:.0%} interval {low / 100:.1f}-"
        f"{high / 100:.1f} %), {card.train_samples} of {card.selected_samples} samples, {privacy}"
    )


def newcomer_line(report: DemoReport) -> str:
    """The newcomer's samples in the best-expected-value third of the market before and after
    its scoring round, beside honest scored providers' (empty before the round ran)."""
    figures = report.scoring
    before, after = figures.get("before"), figures.get("after")
    if not before or not after:
        return ""
    who = figures["newcomer"]
    return (
        f"{who['name']}'s {who['samples']} samples in the best-expected-value third of the "
        f"market: {before['newcomerChosen']} ({before['newcomerShare']:.0%}) before her "
        f"scoring round, {after['newcomerChosen']} ({after['newcomerShare']:.0%}) after; "
        f"honest scored providers' {before['honestShare']:.0%} → {after['honestShare']:.0%}"
    )


def report_json(report: DemoReport) -> dict[str, Any]:
    """The report as ``visdm demo --json`` prints it and ``report.json`` holds it, in the
    CLI's JSON language (camelCase keys, amounts as strings of wei under keys ending in Wei)."""
    from visdm.cli._json import json_view

    data: dict[str, Any] = json_view(report)
    data["gasByStep"] = [{"step": k, "gasUsed": v} for k, v in report.gas_by_step().items()]
    data["flagQuality"] = flag_quality(report.values)
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

    fig, ax = plt.subplots(figsize=(8, 4.8))
    every = [v["value"] for v in report.values]
    edges = [float(e) for e in np.histogram_bin_edges(every, bins=50)] if every else 10
    for kind, colour in _COLOURS.items():
        values = [v["value"] for v in report.values if _truth(v) == kind]
        if values:
            label = f"{_TRUTH[kind]} ({len(values)})"
            ax.hist(values, bins=edges, alpha=0.6, color=colour, label=label)
    flagged = [v["value"] for v in report.values if "noisy" in v["flags"]]
    if flagged:
        ax.hist(flagged, bins=edges, histtype="step", color="black", linewidth=1.2,
                label=f"flagged noisy by the node ({len(flagged)})")  # fmt: skip
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("per-sample value (copy-robust KNN-Shapley; copies are worth 0)")
    ax.set_ylabel("samples")
    q = flag_quality(report.values)
    ax.set_title(
        "Value of each sample in round 1, coloured by the truth\n"
        f"noisy flags: precision {_share(q['precision'])}, recall {_share(q['recall'])}, "
        f"{q['honestFlagged']} correctly labelled flagged "
        f"(a negative value: {q['negativeValue']['honestFlagged']})",
        fontsize=10,
    )
    ax.legend(fontsize=8)
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
    first = next((r for r in report.rounds if r.get("status") == "completed"), {})
    price, fee = first.get("priceWei", 0), first.get("scoringFeeWei", 0)
    ax.set_ylabel("payout (tokens)")
    fee_text = f"\n(the price, {price / 1e18:g}, less {fee / 1e18:g} to the scoring pool)"
    ax.set_title(
        f"Round 1: {(price - fee) / 1e18:g} tokens paid by the value of each provider's samples"
        + (fee_text if fee else "")
    )
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
