"""What a provider can claim from a round that pays a crowd: its own assets' leaves, found
without reading every payee's asset from the chain, each checked against the position the
market selected it at."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from tests.unit.market.test_next import RECORD, T0
from visdm.chain.contracts import ProposalStatus
from visdm.config import Settings
from visdm.errors import InvalidInputError
from visdm.market import build_payout_tree, results

pytestmark = pytest.mark.unit

PAYEES = 1_000
ME = "0x" + "ab" * 20
MINE = (5, 700)


def owner(asset_id: int) -> str:
    return to_checksum_address(ME if asset_id in MINE else f"0x{asset_id:040x}")


class Registry:
    """An asset registry whose reads are counted; ``logs`` filters by owner as a node does."""

    def __init__(self) -> None:
        self.reads: Counter[str] = Counter()

    def asset(self, asset_id: int) -> Any:
        self.reads["asset"] += 1
        return SimpleNamespace(owner=owner(asset_id))

    def logs(self, name: str, *, from_block: int = 0, where: dict[str, Any]) -> list[Any]:
        self.reads[f"logs from block {from_block}"] += 1
        assert name == "AssetRegistered"
        ids = [a for a in range(1, PAYEES + 1) if owner(a).lower() == where["owner"].lower()]
        return [{"args": {"assetId": a, "owner": where["owner"]}} for a in ids]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    reg = Registry()
    ids = list(range(1, PAYEES + 1))

    def selected_asset(pid: int, position: int) -> int:
        reg.reads["selectedAsset"] += 1
        return ids[position]

    market = SimpleNamespace(
        is_claimed=lambda pid, position: False,
        proposal_count=lambda: 3,
        selected_asset=selected_asset,
    )
    deployment = SimpleNamespace(
        asset_registry=lambda client: reg,
        training_market=lambda client: market,
        contracts={"AssetRegistry": SimpleNamespace(block_number=7)},
    )
    conn = SimpleNamespace(
        client=SimpleNamespace(latest_timestamp=lambda: T0), deployment=deployment
    )
    tree = build_payout_tree({a: 1_000 + a for a in ids}, {a: i for i, a in enumerate(ids)})
    done = replace(
        RECORD,
        status=ProposalStatus.COMPLETED,
        claim_deadline=T0 + 3600,
        asset_count=PAYEES,
        payout_root=tree.root,
    )
    document = {"proposalId": 3, "payouts": {"tree": tree.dump()}}

    def unread(*args: Any) -> None:
        raise AssertionError("a claim needs no signed proposal: the market keeps its selection")

    monkeypatch.setattr(results, "connect_deployed", lambda settings: conn)
    monkeypatch.setattr(results, "open_store", lambda settings: None)
    monkeypatch.setattr(results, "_proposal", lambda c, pid: done)
    monkeypatch.setattr(results, "_result_document", lambda c, s, pid: document)
    monkeypatch.setattr(results, "_signed_proposal", unread)
    return reg


def test_a_provider_finds_its_leaves_with_one_query_however_many_payees(
    registry: Registry, tmp_path: Path
) -> None:
    receipts, pending = results.claimable(Settings(home=tmp_path), ME, [3])
    assert receipts == []
    ((pid, requests),) = pending
    assert pid == 3
    assert sorted((r.asset_id, r.amount) for r in requests) == [(a, 1_000 + a) for a in MINE]
    # one query of the owner's registrations, from the registry's deployment, and each own
    # leaf's position checked against the market: no read per leaf, no proposal document
    assert registry.reads == {"logs from block 7": 1, "selectedAsset": len(MINE)}


def test_a_provider_who_owns_no_payee_has_nothing_to_claim(
    registry: Registry, tmp_path: Path
) -> None:
    receipts, pending = results.claimable(Settings(home=tmp_path), "0x" + "cd" * 20, [3])
    assert pending == []
    assert [(r.proposal_id, r.amount, r.note) for r in receipts] == [(3, 0, "not a payee")]
    assert registry.reads["asset"] == 0


def test_a_leaf_at_a_position_the_market_selected_another_asset_at_is_refused(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = results.connect_deployed(Settings(home=tmp_path))
    market = conn.deployment.training_market(conn.client)
    monkeypatch.setattr(market, "selected_asset", lambda pid, position: 1 + (position + 1) % PAYEES)
    with pytest.raises(InvalidInputError, match="pays asset 5 at selection position 4, which is"):
        results.claimable(Settings(home=tmp_path), ME, [3])
