"""``visdm asset add|list|show|withdraw``: a provider's data assets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from visdm.config import Settings
from visdm.errors import InvalidInputError

from ._common import (
    CommandInterruptedError,
    JsonOption,
    console,
    emit,
    err_console,
    settings,
    unlock_account,
)
from ._json import json_view, transactions

if TYPE_CHECKING:
    from visdm.assets import AddedAsset, AssetCheck, AssetView
    from visdm.ingest import IngestReport

__all__ = ["app"]

app = typer.Typer(help="Register, inspect and withdraw data assets.")


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@app.command("add")
def add(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Folder of images (PNG, JPEG, WebP, BMP)."),
    labels: Path | None = typer.Option(
        None, "--labels", help="CSV with filename,label rows (default: DIR/labels.csv)."
    ),
    regions: str = typer.Option("local", "--regions", help="Allowed regions, comma-separated."),
    nodes: str | None = typer.Option(
        None, "--nodes", help="Allowed compute nodes (default: every active node in the regions)."
    ),
    licence: Path | None = typer.Option(
        None,
        "--licence",
        help="Licence terms as a JSON file (purposes, allowed_consumers, denied_consumers, "
        "expires, dp_required, max_epsilon, max_delta). Default: training only, DP required, "
        "epsilon at most 8, delta below 1/N.",
    ),
    allow_no_dp: bool | None = typer.Option(
        None,
        "--allow-no-dp/--require-dp",
        help="Allow training without differential privacy, or require DP-SGD. Default: the "
        "licence file's dp_required, else DP required.",
    ),
    max_epsilon: float | None = typer.Option(
        None,
        "--max-epsilon",
        help="Largest privacy budget epsilon a training round may spend on this asset when it "
        "uses DP, in (0, 100]. Default: the licence file's max_epsilon, else 8.",
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Dry run: report every problem add would find (files, labels rows, licence, "
        "regions, nodes, earlier registrations) and change nothing. No password needed.",
    ),
    partial: bool = typer.Option(
        False,
        "--partial",
        help="Register the accepted files even though other files or labels rows cannot be "
        "used (each is reported).",
    ),
    again: bool = typer.Option(
        False,
        "--again",
        help="Register files that are all already in one of your live assets a second time.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Validate, encrypt, store, sign and register a folder of labelled images."""
    from visdm.assets import add_asset, check_asset, check_licence, load_licence
    from visdm.ingest import IngestReport

    cfg = settings(ctx)
    # read the terms before asking for a password: a bad licence fails with nothing unlocked
    terms = load_licence(
        licence,
        dp_required=None if allow_no_dp is None else not allow_no_dp,
        max_epsilon=max_epsilon,
    )
    if check:
        result = check_asset(
            cfg,
            directory,
            owner=_owner_address(cfg),
            labels_file=labels,
            regions=_csv(regions) or [],
            nodes=_csv(nodes),
            licence=terms,
            partial=partial,
            again=again,
        )
        _print_check(result, as_json=as_json)
        if result.problems:
            raise InvalidInputError(result.problems[0])
        return
    check_licence(terms)
    owner = unlock_account(cfg)
    reached = ["validate"]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
        transient=True,  # the lines after it say what happened
    ) as progress:
        task = progress.add_task("validate", total=None)

        def on_stage(name: str, report: IngestReport | None) -> None:
            reached.append(name)
            total = len(report.accepted) if report is not None else None
            progress.update(task, description=name, total=total)

        def on_sample(done: int) -> None:
            progress.update(task, completed=done)

        try:
            added = add_asset(
                cfg,
                owner,
                directory,
                labels_file=labels,
                regions=_csv(regions) or [],
                nodes=_csv(nodes),
                licence=terms,
                partial=partial,
                again=again,
                on_stage=on_stage,
                on_sample=on_sample,
            )
        except KeyboardInterrupt:
            progress.stop()
            _interrupted(registering=reached[-1] == "register on chain")
        except InvalidInputError as exc:
            progress.stop()
            report = getattr(exc, "report", None)
            if isinstance(report, IngestReport) and not as_json:
                for line in _problem_lines(report):
                    err_console.print(line, markup=False)
            raise
        progress.update(task, description="registered")
    if as_json:
        emit(_added_view(added), as_json=True)
        return
    console.print(
        f"asset {added.asset_id} registered: {added.sample_count} samples, manifest "
        f"{added.manifest_cid}, gas {added.gas_used:,}"
    )
    for row in added.rejected:
        console.print(f"  left out {row['file']}: {row['reason']}", markup=False)
    for problem in added.label_problems:
        console.print(
            f"  {problem['file']} line {problem['line']}: {problem['reason']}", markup=False
        )
    for old in added.already_registered:
        console.print(
            f"  note: {old['files']} of these files are already in your asset {old['asset_id']} "
            f"(added from {old['directory']})",
            markup=False,
        )
    console.print(f"the compute node(s) {', '.join(added.nodes)} will attest its metadata")


def _added_view(added: AddedAsset) -> dict[str, Any]:
    """``asset add --json``: the asset, and its ``registerAsset`` as every write command shows
    its transactions."""
    view: dict[str, Any] = json_view(added)
    for key in ("txHash", "blockNumber", "gasUsed"):
        view.pop(key, None)
    sent = [{"txHash": added.tx_hash, "blockNumber": added.block_number, "gasUsed": added.gas_used}]
    return {**view, "transactions": sent if added.tx_hash else [], "gasUsed": added.gas_used}


def _owner_address(cfg: Settings) -> str | None:
    """The current account's address for --check (no password), or None when none is chosen."""
    from visdm.errors import KeystoreError
    from visdm.session import current_account

    try:
        return current_account(cfg).address
    except (KeystoreError, InvalidInputError):
        return None


def _problem_lines(report: IngestReport) -> list[str]:
    lines = [f"  rejected {r.name}: {r.reason}" for r in report.rejected]
    name = report.labels_file.name
    lines += [f"  {name} line {p.line}: {p.reason}" for p in report.label_problems]
    return lines


def _print_check(result: AssetCheck, *, as_json: bool) -> None:
    if as_json:
        emit(result, as_json=True)
        return
    out = console.print
    out(
        f"{result.directory}: {result.accepted} accepted, {len(result.rejected)} rejected, "
        f"{len(result.label_problems)} unusable labels row(s)",
        markup=False,
    )
    for row in result.rejected:
        out(f"  rejected {row['file']}: {row['reason']}", markup=False)
    for problem in result.label_problems:
        out(f"  {problem['file']} line {problem['line']}: {problem['reason']}", markup=False)
    for old in result.already_registered:
        out(
            f"  {old['files']} file(s) already in your asset {old['asset_id']} (added from "
            f"{old['directory']})",
            markup=False,
        )
    if result.labels:
        out(f"  labels: {', '.join(result.labels)}", markup=False)
    out(f"  regions: {', '.join(result.regions)}", markup=False)
    if result.nodes:
        out(f"  compute nodes: {', '.join(result.nodes)}", markup=False)
    for what in result.not_checked:
        out(f"  not checked: {what}", markup=False)
    if result.ready:
        out(f"ready: `visdm asset add` would register {result.accepted} sample(s)", markup=False)
    else:
        out(f"add would refuse ({len(result.problems)} problem(s)):", markup=False)
        for reason in result.problems:
            out(f"  {reason}", markup=False)


def _interrupted(*, registering: bool) -> NoReturn:
    if registering:
        raise CommandInterruptedError(
            "interrupted while registering on chain: the transaction may still be mined, so "
            "the stored samples are kept; run `visdm asset list --mine` to see, or the same "
            "`visdm asset add` again, which finds the registration if it was mined"
        )
    raise CommandInterruptedError(
        "interrupted: nothing was registered and the samples stored so far were unpinned"
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    mine: bool = typer.Option(False, "--mine", help="Only the current account's assets."),
    as_json: bool = JsonOption,
) -> None:
    """Every registered asset, newest first."""
    from visdm.assets import list_assets
    from visdm.session import current_account

    cfg = settings(ctx)
    owner = current_account(cfg).address if mine else None
    emit(list_assets(cfg, owner=owner), as_json=as_json, title="assets")


@app.command("show")
def show(
    ctx: typer.Context,
    asset_id: int = typer.Argument(..., help="The asset's id."),
    samples: int = typer.Option(5, "--samples", help="How many samples' metadata to show."),
    as_json: bool = JsonOption,
) -> None:
    """An asset's chain record, public metadata and near-duplicate links."""
    from visdm.assets import show_asset

    view = show_view(show_asset(settings(ctx), asset_id, samples=samples))
    if as_json:
        emit(view, as_json=True)
        return
    head = {k: v for k, v in view.items() if k not in ("labels", "samples", "duplicateLinks")}
    head["labels"] = ", ".join(f"{row['label']} {row['samples']}" for row in view["labels"])
    emit(head, as_json=False, title=f"asset {asset_id}")
    if view["samples"]:
        emit([_sample_row(s) for s in view["samples"]], as_json=False, title="samples")
    emit(view["duplicateLinks"], as_json=False, title="near-duplicate links")


def show_view(view: AssetView) -> dict[str, Any]:
    """``asset show``'s answer: labels as rows, and each sample's fields under the names
    ``market search`` uses (the metadata document's ``blur`` is ``sharpness``: the variance
    of the Laplacian, higher is sharper)."""
    data: dict[str, Any] = json_view(view)
    data["labels"] = [{"label": k, "samples": n} for k, n in view.labels.items()]
    data["samples"] = [
        {("sharpness" if k == "blur" else k): v for k, v in sample.items()}
        for sample in data["samples"]
    ]
    return data


def _sample_row(sample: dict[str, Any]) -> dict[str, object]:
    """The columns a person scans; ``--json`` has every field."""
    return {
        "index": sample["index"],
        "label": sample["label"],
        "size": f"{sample['width']}x{sample['height']}x{sample['channels']}",
        "format": sample["format"],
        "bytes": sample["byteSize"],
        "phash": sample["phash"],
        "brightness": round(float(sample["brightness"]), 1),
        "contrast": round(float(sample["contrast"]), 1),
        "sharpness": round(float(sample["sharpness"]), 1),
    }


@app.command("withdraw")
def withdraw(
    ctx: typer.Context,
    asset_id: int = typer.Argument(..., help="The asset's id."),
    as_json: bool = JsonOption,
) -> None:
    """Withdraw an asset: it leaves the market and every training not yet started."""
    from visdm.assets import withdraw_asset

    cfg = settings(ctx)
    status, tx = withdraw_asset(cfg, unlock_account(cfg), asset_id)
    if as_json:
        emit({"assetId": asset_id, "status": status, **transactions(tx)}, as_json=True)
        return
    console.print(f"asset {asset_id} is now {status} ({tx.gas_used:,} gas)")
