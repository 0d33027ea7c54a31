"""A selection's public assets are loaded with a query per event kind and chunk of assets, not
two queries per asset: a 1,000-asset proposal made 2,000 ``eth_getLogs`` calls from block 0."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit.proposals.test_public_asset_cache import CHAIN_ID, Registry, _asset
from visdm.chain.contracts import AssetRecord
from visdm.errors import InvalidProposalError
from visdm.proposals import PublicAssetCache, _selection, load_public_asset, load_public_assets
from visdm.proposals._consumer import _curate
from visdm.storage import MemoryStore
from visdm.types import Address, AssetId

pytestmark = pytest.mark.unit

CHUNK = 4
ASSETS = 10  # three chunks of ids per event kind


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_selection, "EVENTS_PER_QUERY", CHUNK)


class Chain(Registry):
    """Answers topic lists as a node does (any of the ids), and records each query's start."""

    def __init__(self, records: dict[int, AssetRecord], events: dict[str, list[Any]]) -> None:
        super().__init__(records, events)
        self.starts: list[int] = []

    def asset(self, asset_id: int) -> AssetRecord:
        if asset_id in self.records:
            return super().asset(asset_id)
        self.calls["asset"] += 1  # what the registry answers for an unknown id
        return replace(self.records[1], asset_id=AssetId(asset_id), owner=Address("0x" + "0" * 40))

    def logs(self, name: str, *, where: dict[str, Any], from_block: int = 0) -> list[Any]:
        self.calls["logs"] += 1
        self.starts.append(from_block)
        wanted = where["assetId"]
        ids = set(wanted) if isinstance(wanted, list) else {wanted}
        return [e for e in self.events.get(name, []) if e["args"]["assetId"] in ids]


@pytest.fixture(scope="module")
def crowd() -> tuple[dict[int, AssetRecord], dict[str, list[Any]], MemoryStore]:
    store = MemoryStore()
    records: dict[int, AssetRecord] = {}
    events: dict[str, list[Any]] = {"AssetRegistered": [], "MetadataAttested": []}
    for asset_id in range(1, ASSETS + 1):
        records[asset_id], (reg, att) = _asset(store, asset_id, metadata=b'{"samples":[]}')
        events["AssetRegistered"].append(reg)
        events["MetadataAttested"].append(att)
    return records, events, store


def test_a_selection_costs_a_query_per_event_and_chunk(
    crowd: tuple[dict[int, AssetRecord], dict[str, list[Any]], MemoryStore],
) -> None:
    records, events, store = crowd
    chain, cache = Chain(records, events), PublicAssetCache()
    ids = list(range(1, ASSETS + 1))
    loaded = load_public_assets(chain, store, ids, chain_id=CHAIN_ID, from_block=9, cache=cache)
    assert chain.calls == {"asset": ASSETS, "logs": 6}
    assert set(chain.starts) == {9}
    # what one asset at a time would have loaded
    alone = Chain(records, events)
    assert loaded == {
        a: load_public_asset(alone, store, a, chain_id=CHAIN_ID, cache=None) for a in ids
    }
    assert alone.calls["logs"] == 2 * ASSETS
    # once cached, only the records are read again
    load_public_assets(chain, store, ids, chain_id=CHAIN_ID, cache=cache)
    assert chain.calls == {"asset": 2 * ASSETS, "logs": 6}


def test_a_proposal_curates_its_selection_in_one_batch(
    crowd: tuple[dict[int, AssetRecord], dict[str, list[Any]], MemoryStore],
) -> None:
    records, events, store = crowd
    chain = Chain(records, events)
    ids = list(range(ASSETS, 0, -1))
    public, chosen = _curate(chain, store, ids, chain_id=CHAIN_ID, from_block=9)
    assert [c.asset_id for c in chosen] == sorted(ids)
    assert set(public) == set(ids)
    assert chain.calls["logs"] == 6


def test_an_unknown_or_unregistered_asset_is_refused(
    crowd: tuple[dict[int, AssetRecord], dict[str, list[Any]], MemoryStore],
) -> None:
    records, events, store = crowd
    with pytest.raises(InvalidProposalError, match="asset 0 does not exist"):
        load_public_assets(Chain(records, events), store, [1, 0], chain_id=CHAIN_ID, cache=None)
    # a record without its AssetRegistered event (a node that hides logs)
    hidden = {**events, "AssetRegistered": events["AssetRegistered"][1:]}
    with pytest.raises(InvalidProposalError, match="asset 1 has no AssetRegistered event"):
        load_public_assets(Chain(records, hidden), store, [1, 2], chain_id=CHAIN_ID, cache=None)
