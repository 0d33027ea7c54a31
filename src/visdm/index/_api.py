"""The SDK calls behind ``visdm market``: one function per command.

Each takes the :class:`~visdm.config.Settings` and an optional index URL (``None``: the embedded
SQLite file ``<home>/index.sqlite3``; the CLI fills it from ``--index-url`` /
``$VISDM_INDEX_URL``). Input is checked before anything is opened, so a bad option fails fast
with its name in the message. Searching needs no chain: it reads only the index, which
``sync_index`` fills.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from visdm.config import Settings
from visdm.errors import ConfigError

from ._db import Database, open_database, parse_index_url
from ._filters import SearchFilters
from ._indexer import IndexConfig, Indexer, SyncReport, check_schema_version, read_meta
from ._payouts import ProviderEarnings, check_proposal_id, check_provider, earnings
from ._saved import check_search_name, write_saved_search
from ._search import (
    SearchResult,
    SearchSummary,
    check_paging,
    check_rank,
    search,
    select_all,
    summarize,
)

__all__ = [
    "default_index_url",
    "earnings_index",
    "open_index",
    "search_index",
    "summarize_index",
    "sync_index",
]

INDEX_FILE = "index.sqlite3"


def default_index_url(settings: Settings) -> str:
    """The embedded index: ``sqlite:///`` + ``<home>/index.sqlite3``."""
    return f"sqlite:///{settings.home / INDEX_FILE}"


def open_index(settings: Settings, url: str | None = None) -> Database:
    """An existing, synced index for reading; a clear error when there is none yet."""
    parsed = parse_index_url(url or default_index_url(settings))
    if parsed.backend == "sqlite" and parsed.path is not None and not parsed.path.exists():
        raise ConfigError(
            f"there is no index at {parsed.url} yet: build it with `visdm market sync`"
        )
    db = open_database(parsed)
    try:
        meta = read_meta(db)
        if not meta:
            raise ConfigError(
                f"the database {parsed.redacted} holds no marketplace index yet: build it with "
                "`visdm market sync`"
            )
        check_schema_version(db, meta)
    except BaseException:
        db.close()
        raise
    return db


def sync_index(
    settings: Settings,
    *,
    url: str | None = None,
    confirmations: int = 0,
    rebuild: bool = False,
    max_blocks_per_poll: int = 2_000,
    on_progress: Callable[[int, int], None] | None = None,
) -> SyncReport:
    """Bring the index up to the chain's head minus ``confirmations`` blocks.

    ``rebuild`` drops every index table first and indexes from the deployment block again.
    """
    from visdm.session import connect_deployed, open_store

    from ._chain import ChainEventSource
    from ._events import CONTRACTS

    config = IndexConfig(confirmations=confirmations, max_blocks_per_poll=max_blocks_per_poll)
    parsed = parse_index_url(url or default_index_url(settings))
    conn = connect_deployed(settings)
    source = ChainEventSource(conn.client, conn.deployment)
    contracts = {name: str(conn.deployment.address_of(name)) for name in CONTRACTS}
    db = open_database(parsed)
    try:
        indexer = Indexer(
            db,
            source,
            open_store(settings),
            chain_id=conn.client.chain_id,
            contracts=contracts,
            start_block=source.start_block,
            config=config,
            rebuild=rebuild,
        )
        return indexer.sync(on_progress=on_progress)
    finally:
        db.close()


def search_index(
    settings: Settings,
    filters: SearchFilters | None = None,
    *,
    url: str | None = None,
    limit: int = 50,
    offset: int = 0,
    save: str | None = None,
    now: int | None = None,
    rank: str = "index",
) -> SearchResult:
    """A page of samples matching ``filters``; with ``save``, every match is also written as
    the saved search ``save`` (see :func:`visdm.index.load_saved_search`).

    ``now`` (unix seconds, default: the current time) decides which licences have expired;
    ``rank`` is ``"index"`` (asset, then sample) or ``"expected-value"`` (best first).
    """
    chosen = filters or SearchFilters()
    check_paging(limit, offset)
    check_rank(rank)
    if save is not None:
        check_search_name(save)
    at = int(time.time()) if now is None else now
    db = open_index(settings, url)
    try:
        result = search(db, chosen, now=at, limit=limit, offset=offset, rank=rank)
        if save is None:
            return result
        saved = write_saved_search(settings, save, chosen, select_all(db, chosen, now=at))
    finally:
        db.close()
    # the saved selection holds every match: the total is exact whatever the count limit
    return replace(
        result,
        saved_path=str(saved.path),
        saved_samples=saved.sample_count,
        total=saved.sample_count,
        total_exact=True,
    )


def summarize_index(
    settings: Settings,
    filters: SearchFilters | None = None,
    *,
    url: str | None = None,
    now: int | None = None,
) -> SearchSummary:
    """Label distribution and counts per provider and per asset of a search's matches."""
    chosen = filters or SearchFilters()
    at = int(time.time()) if now is None else now
    db = open_index(settings, url)
    try:
        return summarize(db, chosen, now=at)
    finally:
        db.close()


def earnings_index(
    settings: Settings,
    *,
    provider: str | None = None,
    proposal_id: int | None = None,
    url: str | None = None,
) -> list[ProviderEarnings]:
    """What each provider (or only ``provider``) earned from payouts (of ``proposal_id``, or
    every proposal): each payout leaf of its assets in its state — claimed, unclaimed, swept,
    unpayable or unverified (see :mod:`visdm.index._payouts`) — and the totals."""
    if provider is not None:
        provider = check_provider(provider)
    if proposal_id is not None:
        check_proposal_id(proposal_id)
    db = open_index(settings, url)
    try:
        return earnings(db, provider=provider, proposal_id=proposal_id)
    finally:
        db.close()
