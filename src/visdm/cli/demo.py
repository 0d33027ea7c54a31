"""``visdm demo``: the marketplace end to end on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bars
from rich.table import Table

from ._common import JsonOption, console, print_wide

if TYPE_CHECKING:
    from visdm.demo import DemoReport, DemoStep

__all__ = ["demo"]

_TOKEN = 10**18


def demo(
    home: Path | None = typer.Option(
        None, "--data-dir", help="Empty directory for the demo's state (default: a temporary one)."
    ),
    report_dir: Path | None = typer.Option(
        None, "--report-dir", help="Write report.json, values.png and payouts.png here."
    ),
    quick: bool = typer.Option(False, "--quick", help="A smaller market (10 providers)."),
    serve: bool = typer.Option(
        False,
        "--serve",
        help="Then keep the market running with the web app on a printed URL until Ctrl-C "
        "(the data directory is kept).",
    ),
    port: int = typer.Option(
        8765, "--port", help="With --serve: the web app's port on 127.0.0.1 (0: any free port)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run the whole marketplace on a local chain, store and node started by the demo."""
    from visdm.demo import Progress, run_demo, write_report  # heavy: loaded when it runs

    if serve and as_json:
        raise typer.BadParameter("--serve prints a URL to open and keeps running: drop --json")

    class Shown(Progress):
        def step(self, item: DemoStep) -> None:
            if not as_json:
                gas = f"  [dim]gas {item.gas_used:,}[/]" if item.gas_used else ""
                console.print(f"[green]✓[/] {item.name:<16} {item.detail}{gas}  ({item.seconds} s)")
                for note in item.notes:
                    console.print(f"  {'':<16} [dim]{note}[/]", highlight=False)

        @contextmanager
        def task(self, description: str, total: float) -> Iterator[Callable[[float], None]]:
            if as_json or not console.is_terminal:
                # bars only redraw in place on a terminal; piped, they would leave blank lines
                yield lambda _done: None
                return
            with Bars(
                TextColumn("  {task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bars:
                task = bars.add_task(description, total=total)
                yield lambda done: bars.update(task, completed=done)

    if serve:
        _play_and_serve(home, report_dir, quick=quick, port=port, progress=Shown())
        return
    with tempfile.TemporaryDirectory(prefix="visdm-demo-") as tmp:
        target = home if home is not None else Path(tmp) / "home"
        report = run_demo(target, quick=quick, progress=Shown())
        written = write_report(report, report_dir) if report_dir is not None else []
    if as_json:
        from visdm.demo import report_json

        console.print_json(json.dumps(report_json(report)))
        return
    _print(report, written)


def _play_and_serve(
    home: Path | None, report_dir: Path | None, *, quick: bool, port: int, progress: Any
) -> None:
    """Play the demo, print its report, then serve the web app over the market it left."""
    from visdm.demo import write_report
    from visdm.web import LaunchInfo, play_and_serve

    # the market outlives the command's report: a directory that is kept, not a temporary one
    target = home if home is not None else Path(tempfile.mkdtemp(prefix="visdm-demo-")) / "home"

    def played(report: DemoReport) -> None:
        _print(report, write_report(report, report_dir) if report_dir is not None else [])

    serving = []

    def ready(info: LaunchInfo) -> None:
        serving.append(info)
        console.print(f"the demo market keeps running in {target}", markup=False)
        console.print(f"open {info.url}", markup=False, soft_wrap=True)
        console.print("(the token in the URL starts a session; Ctrl-C stops the app and chain)")

    try:
        play_and_serve(
            target, quick=quick, port=port, progress=progress, on_played=played, on_ready=ready
        )
    except KeyboardInterrupt:
        if not serving:  # stopped while the demo played: an interruption like any other
            raise
        # Ctrl-C is how serving ends; the chain is already stopped and its state saved
        console.print(f"stopped; the demo market's state is kept in {target}", markup=False)


def _print(report: DemoReport, written: list[Path]) -> None:
    table = Table(title="providers after the first round")
    for column in (
        "provider", "role", "vote", "samples", "mislabelled", "flagged noisy", "flagged copy",
        "value share", "payout (tokens)", "per sample", "claimed",
    ):  # fmt: skip
        left = column in ("provider", "role", "vote")
        table.add_column(column, justify="left" if left else "right")
    for p in sorted(report.providers, key=lambda p: (-p["payoutWei"], p["name"])):
        table.add_row(
            p["name"],
            p["role"],
            p["vote"],
            str(p["samples"]) if p["samples"] else "left out",
            str(p["mislabelled"]),
            str(p["flaggedNoisy"]),
            str(p["flaggedCopied"]),
            f"{p['valueShare']:.1%}",
            f"{p['payoutWei'] / _TOKEN:.3f}",
            f"{p['payoutPerSampleWei'] / _TOKEN:.4f}",
            "yes" if p["claimedWei"] else "no" if p["payoutWei"] else "-",
        )
    print_wide(table)
    if report.values:  # ground truth is known in the demo: say how far the flags can be trusted
        from visdm.demo import flag_quality_line

        console.print(flag_quality_line(report), highlight=False)
    gas = Table(title="gas per step")
    gas.add_column("step")
    gas.add_column("gas", justify="right")
    for name, used in report.gas_by_step().items():
        gas.add_row(name, f"{used:,}")
    print_wide(gas)
    for r in report.rounds:
        console.print(_round_line(r), highlight=False)
    from visdm.demo import collective_line, newcomer_line

    for line in (collective_line(report), newcomer_line(report)):
        if line:
            console.print(line, highlight=False)
    settled = report.settlement
    if settled:
        console.print(
            f"bob withdrew {settled.get('refundedWei', 0) / _TOKEN:g} tokens of refunds; "
            f"{settled.get('sweptWei', 0) / _TOKEN:.3f} unclaimed tokens went to the treasury",
            highlight=False,
        )
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"demo finished in {report.total_seconds:.1f} s (chain {report.chain_id})")


def _round_line(r: dict[str, Any]) -> str:
    line = f"proposal {r['proposalId']}: {r['outcome']}"
    if r["outcome"] == "countered":
        line += f" at {r['clearingPriceWei'] / _TOKEN:g}"
    if r.get("outOfRound"):
        line += f" ({', '.join(r['outOfRound'])} rejected)"
    if r.get("status") and r["status"] != r["outcome"]:
        line += (
            f" → {r['status']}, accuracy {r.get('accuracyBps', 0) / 100:.2f}% "
            f"(WTP {r.get('wtpBps', 0) / 100:g}%)"
        )
    if r.get("scoringFeeWei"):
        line += f", {r['scoringFeeWei'] / _TOKEN:g} tokens of its price to the scoring pool"
    if r.get("refundWei"):
        line += f", {r['refundWei'] / _TOKEN:g} tokens refunded"
    return line
