"""``visdm demo``: the marketplace end to end on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.table import Table

from ._common import JsonOption, console, print_wide, to_jsonable

__all__ = ["demo"]


def demo(
    home: Path | None = typer.Option(
        None, "--data-dir", help="Empty directory for the demo's state (default: a temporary one)."
    ),
    report_dir: Path | None = typer.Option(
        None, "--report-dir", help="Also write the report as report.json into this directory."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run the marketplace end to end on a local chain started and stopped by the demo."""
    from visdm.demo import DemoStep, run_demo  # heavy: loaded only when the demo runs

    with tempfile.TemporaryDirectory(prefix="visdm-demo-") as tmp:
        target = home if home is not None else Path(tmp) / "home"

        def show(item: DemoStep) -> None:
            if not as_json:
                gas = f"  gas {item.gas_used:,}" if item.gas_used else ""
                console.print(f"[green]✓[/] {item.name:<16} {item.detail}{gas}  ({item.seconds} s)")

        report = run_demo(target, on_step=show)
    data = to_jsonable(report)
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.json").write_text(json.dumps(data, indent=1) + "\n")
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table(title="stakeholders on chain")
    for column in ("account", "address", "roles", "X25519 key on chain matches keystore"):
        table.add_column(column)
    for name, info in report.accounts.items():
        roles = ", ".join(info["roles"])  # type: ignore[arg-type]
        table.add_row(name, str(info["address"]), roles, "yes" if info["key_matches"] else "NO")
    print_wide(table)
    assets = Table(title="assets attested by the compute node")
    for column in ("asset", "owner", "samples", "labels", "near-duplicate links", "rejected"):
        assets.add_column(column)
    for row in report.assets:
        labels = ", ".join(f"{k} {v}" for k, v in row["labels"].items())
        assets.add_row(
            str(row["asset_id"]),
            row["owner"],
            str(row["samples"]),
            labels,
            str(row["duplicate_links"]),
            ", ".join(r["file"] for r in row["rejected"]) or "-",
        )
    print_wide(assets)
    console.print(
        f"cy's {report.copies_linked} exact copies of ada's images were linked to the originals; "
        f"demo finished in {report.total_seconds:.1f} s (chain {report.chain_id})"
    )
