"""The marketplace index: chain events and public documents in SQL, and search over them.

Consumers choose data by public metadata (design 3.3 step 1), and reading the chain plus one
document per asset for every question would be slow and would need a chain. So an indexer
follows the marketplace contracts into a read model — stakeholders, regions and nodes; assets
with their licence and attested per-sample metadata; proposals, votes, tallies, training,
results with their published per-sample value scores and payouts per asset, claims and sweeps;
delegations — and searches run on that.

* :func:`sync_index` (``visdm market sync``) — follow the chain up to ``head − confirmations``
  with a durable, idempotent cursor (:class:`Indexer`, :mod:`._indexer`);
* :func:`search_index` / :func:`summarize_index` (``visdm market search`` / ``summary``) —
  :class:`SearchFilters` over the index, paged results or a summary; ``save=NAME`` writes a
  :class:`SavedSearch` that :func:`load_saved_search` reads back for a proposal;
* :func:`earnings_index` — what providers earned: the payout leaves of their assets (the market
  pays assets, and a claim credits the asset's owner), each claimed, unclaimed, held in its
  result's challenge window, overturned by the court, swept, unpayable (the tally took it out
  of the round, or the proposal never selected it) or unverified;
* one SQL layer (:func:`open_database`) over SQLite (``sqlite:///…``, the embedded default in
  ``<home>/index.sqlite3``) and PostgreSQL (``postgresql://…``).

Every document is verified against what the chain commits (metadata and scores by keccak256,
proposals by their consumer's signature and the selection's ``assetsHash``/``assetsRoot``,
results by the values of their event, the payout root and the escrowed price); a document that
fails is recorded as rejected, one that cannot be fetched as missing and retried — never a
crash.
"""

from typing import TYPE_CHECKING

from visdm._lazy import lazy_exports

from ._api import (
    default_index_url,
    earnings_index,
    open_index,
    search_index,
    summarize_index,
    sync_index,
)
from ._db import Database, IndexUrl, open_database, parse_index_url
from ._events import ChainEvent, EventSource
from ._filters import SearchFilters, parse_resolution
from ._indexer import IndexConfig, Indexer, SyncReport, refresh_clusters
from ._payouts import PAYOUT_STATES, PayoutLine, ProviderEarnings, earnings, payout_lines
from ._saved import (
    SavedSearch,
    SelectedSamples,
    list_saved_searches,
    load_saved_search,
    saved_search_path,
)
from ._schema import SCHEMA_VERSION, TABLES
from ._search import SampleHit, SearchResult, SearchSummary

if TYPE_CHECKING:
    from ._chain import ChainEventSource

__all__ = [
    "PAYOUT_STATES",
    "SCHEMA_VERSION",
    "TABLES",
    "ChainEvent",
    "ChainEventSource",
    "Database",
    "EventSource",
    "IndexConfig",
    "IndexUrl",
    "Indexer",
    "PayoutLine",
    "ProviderEarnings",
    "SampleHit",
    "SavedSearch",
    "SearchFilters",
    "SearchResult",
    "SearchSummary",
    "SelectedSamples",
    "SyncReport",
    "default_index_url",
    "earnings",
    "earnings_index",
    "list_saved_searches",
    "load_saved_search",
    "open_database",
    "open_index",
    "parse_index_url",
    "parse_resolution",
    "payout_lines",
    "refresh_clusters",
    "saved_search_path",
    "search_index",
    "summarize_index",
    "sync_index",
]

# the chain reader pulls in web3; searching the index does not need it
__getattr__ = lazy_exports(__name__, {"ChainEventSource": "._chain"})
