"""``visdm market sync|search|summary``: search the marketplace index.

``sync`` follows the chain into the index; ``search`` and ``summary`` read only the index, so
they work without a chain. The index is ``<home>/index.sqlite3`` unless ``--index-url`` /
``$VISDM_INDEX_URL`` names another (``sqlite:///…`` or ``postgresql://…``).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ._common import JsonOption, console, emit, err_console, settings
from ._json import json_view

if TYPE_CHECKING:
    from visdm.index import SearchFilters, SearchResult, SearchSummary

__all__ = ["app"]

app = typer.Typer(help="Search the marketplace: what data is offered, by whom, at what quality.")

IndexUrl = Annotated[
    str | None,
    typer.Option(
        "--index-url",
        envvar="VISDM_INDEX_URL",
        help="Index database: sqlite:///path or postgresql://user@host/db "
        "(default: sqlite in the data directory).",
    ),
]
Labels = Annotated[
    list[str] | None, typer.Option("--label", help="Keep samples with this label (repeatable).")
]
MinResolution = Annotated[
    str | None, typer.Option("--min-resolution", help="Smallest WIDTHxHEIGHT, e.g. 64x64.")
]
MaxResolution = Annotated[
    str | None, typer.Option("--max-resolution", help="Largest WIDTHxHEIGHT.")
]
Formats = Annotated[
    list[str] | None, typer.Option("--format", help="PNG, JPEG, WEBP or BMP (repeatable).")
]
Number = float | None
MinBrightness = Annotated[Number, typer.Option("--min-brightness", help="Mean luma ≥ (0–255).")]
MaxBrightness = Annotated[Number, typer.Option("--max-brightness", help="Mean luma ≤ (0–255).")]
MinContrast = Annotated[Number, typer.Option("--min-contrast", help="Luma std-dev ≥ (0–255).")]
MaxContrast = Annotated[Number, typer.Option("--max-contrast", help="Luma std-dev ≤ (0–255).")]
MinSharpness = Annotated[
    Number, typer.Option("--min-sharpness", help="Laplacian variance ≥ (the metadata's blur).")
]
MaxSharpness = Annotated[Number, typer.Option("--max-sharpness", help="Laplacian variance ≤.")]
MaxDuplicateLinks = Annotated[
    int | None,
    typer.Option(
        "--max-duplicate-links", help="At most N near-duplicates in the market (0: none)."
    ),
]
DuplicateDistance = Annotated[
    int | None,
    typer.Option(
        "--duplicate-distance", help="Count only near-duplicates within this many pHash bits."
    ),
]
MaxClusterSize = Annotated[
    int | None,
    typer.Option("--max-cluster-size", help="Near-duplicate cluster of at most N samples."),
]
MinScore = Annotated[
    Number, typer.Option("--min-score", help="Mean value from past training rounds ≥.")
]
IncludeUnscored = Annotated[
    bool,
    typer.Option("--include-unscored", help="With --min-score, keep never-scored samples too."),
]
ExcludeFlags = Annotated[
    list[str] | None,
    typer.Option("--exclude-flag", help="Drop samples flagged noisy, copied or duplicate."),
]
Regions = Annotated[
    list[str] | None, typer.Option("--region", help="Asset allows this region (repeatable).")
]
Purposes = Annotated[
    list[str] | None,
    typer.Option("--purpose", help="Licence allows this purpose, e.g. training (repeatable)."),
]
Consumer = Annotated[
    str | None, typer.Option("--consumer", help="Licence admits this consumer address.")
]
IncludeExpired = Annotated[
    bool, typer.Option("--include-expired", help="Keep assets whose licence has expired.")
]
Providers = Annotated[
    list[str] | None, typer.Option("--provider", help="Asset owner address (repeatable).")
]
Assets = Annotated[list[int] | None, typer.Option("--asset", help="Asset id (repeatable).")]
IncludeWithdrawn = Annotated[
    bool, typer.Option("--include-withdrawn", help="Keep samples of withdrawn assets.")
]


@app.command("sync")
def sync(
    ctx: typer.Context,
    confirmations: int = typer.Option(
        0, "--confirmations", help="Index only blocks this deep below the head."
    ),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Drop the index and index the whole chain again."
    ),
    index_url: IndexUrl = None,
    as_json: bool = JsonOption,
) -> None:
    """Follow the chain into the index, up to the head minus --confirmations blocks."""
    from visdm.index import sync_index

    with Progress(
        TextColumn("index blocks"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
        transient=True,
    ) as progress:
        task = progress.add_task("sync", total=None)

        def on_progress(block: int, target: int) -> None:
            progress.update(task, completed=block, total=target)

        report = sync_index(
            settings(ctx),
            url=index_url,
            confirmations=confirmations,
            rebuild=rebuild,
            on_progress=on_progress,
        )
    if as_json:
        emit(report, as_json=True)
        return
    emit(report, as_json=False, title="index synced")


def _filters(
    *,
    label: list[str] | None,
    min_resolution: str | None,
    max_resolution: str | None,
    image_format: list[str] | None,
    min_brightness: float | None,
    max_brightness: float | None,
    min_contrast: float | None,
    max_contrast: float | None,
    min_sharpness: float | None,
    max_sharpness: float | None,
    max_duplicate_links: int | None,
    duplicate_distance: int | None,
    max_cluster_size: int | None,
    min_score: float | None,
    include_unscored: bool,
    exclude_flag: list[str] | None,
    region: list[str] | None,
    purpose: list[str] | None,
    consumer: str | None,
    include_expired: bool,
    provider: list[str] | None,
    asset: list[int] | None,
    include_withdrawn: bool,
) -> SearchFilters:
    from visdm.index import SearchFilters, parse_resolution

    low = parse_resolution(min_resolution) if min_resolution is not None else (None, None)
    high = (
        parse_resolution(max_resolution, option="--max-resolution")
        if max_resolution is not None
        else (None, None)
    )
    return SearchFilters(
        labels=tuple(label or ()),
        min_width=low[0],
        min_height=low[1],
        max_width=high[0],
        max_height=high[1],
        formats=tuple(image_format or ()),
        min_brightness=min_brightness,
        max_brightness=max_brightness,
        min_contrast=min_contrast,
        max_contrast=max_contrast,
        min_sharpness=min_sharpness,
        max_sharpness=max_sharpness,
        max_duplicate_links=max_duplicate_links,
        duplicate_distance=duplicate_distance,
        max_cluster_size=max_cluster_size,
        min_score=min_score,
        include_unscored=include_unscored,
        exclude_flags=tuple(exclude_flag or ()),
        regions=tuple(region or ()),
        purposes=tuple(purpose or ()),
        consumer=consumer,
        include_expired=include_expired,
        providers=tuple(provider or ()),
        asset_ids=tuple(asset or ()),
        include_withdrawn=include_withdrawn,
    )


@app.command("search")
def search(
    ctx: typer.Context,
    label: Labels = None,
    min_resolution: MinResolution = None,
    max_resolution: MaxResolution = None,
    image_format: Formats = None,
    min_brightness: MinBrightness = None,
    max_brightness: MaxBrightness = None,
    min_contrast: MinContrast = None,
    max_contrast: MaxContrast = None,
    min_sharpness: MinSharpness = None,
    max_sharpness: MaxSharpness = None,
    max_duplicate_links: MaxDuplicateLinks = None,
    duplicate_distance: DuplicateDistance = None,
    max_cluster_size: MaxClusterSize = None,
    min_score: MinScore = None,
    include_unscored: IncludeUnscored = False,
    exclude_flag: ExcludeFlags = None,
    region: Regions = None,
    purpose: Purposes = None,
    consumer: Consumer = None,
    include_expired: IncludeExpired = False,
    provider: Providers = None,
    asset: Assets = None,
    include_withdrawn: IncludeWithdrawn = False,
    limit: int = typer.Option(50, "--limit", help="Samples per page."),
    offset: int = typer.Option(0, "--offset", help="Matches to skip (paging)."),
    save: str | None = typer.Option(
        None, "--save", help="Save every match (not only this page) as a named selection."
    ),
    rank: str = typer.Option(
        "index",
        "--rank",
        help="Order: index (asset, then sample) or expected-value (best expected value first).",
    ),
    index_url: IndexUrl = None,
    as_json: bool = JsonOption,
) -> None:
    """Find samples by label, size, format, quality, duplicates, past value, region, licence."""
    from visdm.index import search_index

    filters = _filters(**{k: v for k, v in locals().items() if k in _FILTER_ARGS})
    result = search_index(
        settings(ctx), filters, url=index_url, limit=limit, offset=offset, save=save, rank=rank
    )
    if as_json:
        emit(result, as_json=True)
        return
    _print_search(result)


def _print_search(result: SearchResult) -> None:
    for label in result.unknown_labels:
        err_console.print(f"[yellow]note:[/] no indexed sample has the label {label!r}")
    first = result.offset + 1 if result.samples else 0
    last = result.offset + len(result.samples)
    if result.total_exact:
        console.print(f"{result.total} matching samples (showing {first}–{last})")
    else:
        console.print(
            f"more than {result.total - 1:,} matching samples (showing {first}–{last}; "
            "--save NAME counts and keeps them all)"
        )
    rows = [
        {
            "asset": s.asset_id,
            "index": s.index,
            "label": s.label,
            "size": f"{s.width}x{s.height}x{s.channels}",
            "format": s.format,
            "bytes": s.byte_size,
            "brightness": round(s.brightness, 1),
            "contrast": round(s.contrast, 1),
            "sharpness": round(s.sharpness, 1),
            "dups": s.duplicate_links,
            "cluster": s.cluster_size,
            "score": None if s.score is None else f"{s.score:.4g} ({s.score_rounds})",
            "expected": None if s.expected_value is None else f"{s.expected_value:.3g}",
            "confidence": f"{s.confidence:.2f} ({s.scoring_rounds})",
            "flags": ", ".join(s.flags),
            "provider": s.provider,
        }
        for s in result.samples
    ]
    if rows:
        emit(rows, as_json=False, title="samples")
    if result.saved_path is not None:
        console.print(f"saved {result.saved_samples} samples to {result.saved_path}")


@app.command("summary")
def summary(
    ctx: typer.Context,
    label: Labels = None,
    min_resolution: MinResolution = None,
    max_resolution: MaxResolution = None,
    image_format: Formats = None,
    min_brightness: MinBrightness = None,
    max_brightness: MaxBrightness = None,
    min_contrast: MinContrast = None,
    max_contrast: MaxContrast = None,
    min_sharpness: MinSharpness = None,
    max_sharpness: MaxSharpness = None,
    max_duplicate_links: MaxDuplicateLinks = None,
    duplicate_distance: DuplicateDistance = None,
    max_cluster_size: MaxClusterSize = None,
    min_score: MinScore = None,
    include_unscored: IncludeUnscored = False,
    exclude_flag: ExcludeFlags = None,
    region: Regions = None,
    purpose: Purposes = None,
    consumer: Consumer = None,
    include_expired: IncludeExpired = False,
    provider: Providers = None,
    asset: Assets = None,
    include_withdrawn: IncludeWithdrawn = False,
    index_url: IndexUrl = None,
    as_json: bool = JsonOption,
) -> None:
    """Label distribution and counts per provider and per asset of a search's matches."""
    from visdm.index import summarize_index

    filters = _filters(**{k: v for k, v in locals().items() if k in _FILTER_ARGS})
    result = summarize_index(settings(ctx), filters, url=index_url)
    if as_json:
        emit(summary_view(result), as_json=True)
        return
    _print_summary(result)


def summary_view(result: SearchSummary) -> dict[str, Any]:
    """``market summary --json``: the label distribution as rows, like every map keyed by
    data."""
    view: dict[str, Any] = json_view(result)
    view["labels"] = [{"label": k, "samples": n} for k, n in result.labels.items()]
    return view


def _print_summary(result: SearchSummary) -> None:
    for label in result.unknown_labels:
        err_console.print(f"[yellow]note:[/] no indexed sample has the label {label!r}")
    console.print(
        f"{result.samples} samples in {result.assets} assets from {result.providers} providers"
    )
    emit(
        [{"label": k, "samples": v} for k, v in result.labels.items()],
        as_json=False,
        title="labels",
    )
    emit(result.per_provider, as_json=False, title="providers")
    emit(result.per_asset, as_json=False, title="assets")


@app.command("earnings")
def earnings(
    ctx: typer.Context,
    provider: str | None = typer.Option(None, "--provider", help="Only this provider (address)."),
    proposal_id: int | None = typer.Option(None, "--proposal", help="Only this proposal."),
    index_url: IndexUrl = None,
    as_json: bool = JsonOption,
) -> None:
    """What each provider earned per payout leaf: claimed, unclaimed, held in a challenge
    window, overturned by the court, swept to the treasury, or unpayable (a leaf for an asset
    that was not selected or left the round)."""
    from visdm.index import earnings_index

    rows = earnings_index(settings(ctx), provider=provider, proposal_id=proposal_id, url=index_url)
    if as_json:
        emit([r.to_dict() for r in rows], as_json=True)
        return
    emit(
        [{k: v for k, v in r.to_dict().items() if k != "lines"} for r in rows],
        as_json=False,
        title="earnings (wei)",
    )


#: the search and summary parameters that are filters (the rest: paging, output, URL)
_FILTER_ARGS = frozenset(inspect.signature(_filters).parameters)
