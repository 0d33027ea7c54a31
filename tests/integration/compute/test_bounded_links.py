"""A node keeps at most ``max_links`` near-duplicate links per new sample and publishes each
sample's cluster, so metadata grows linearly while copies past the bound stay one group: a
restart (or an old state file) keeps the clusters, and a selection of two copies that link
only to older ones is still grouped for valuation."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.test_asset_flow import Flow, write_folder
from visdm.assets import show_asset, withdraw_asset
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.compute import AssetWorker, NodeConfig
from visdm.compute._state import NodeState
from visdm.metadata import selection_links

pytestmark = pytest.mark.integration


@pytest.fixture
def flow(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
) -> Flow:
    return Flow(chain, deployment, tmp_path / "home", dict(funded_roles))


def _worker(flow: Flow, max_links: int | None) -> AssetWorker:
    config = NodeConfig(workdir=flow.settings.node_dir, max_links=max_links)
    return AssetWorker(flow.chain, flow.deployment, flow.store, flow.accounts["node"], config)


def _document(flow: Flow, asset_id: int) -> dict[str, object]:
    view = show_asset(flow.settings, asset_id, samples=10_000)
    return {"samples": view.samples, "duplicateLinks": view.duplicate_links}


def test_copies_past_the_bound_share_one_cluster_across_restarts(
    flow: Flow, tmp_path: Path
) -> None:
    owners = ["provider", "provider2"] * 3
    copies = []
    worker = _worker(flow, max_links=2)
    for n, who in enumerate(owners[:4]):  # four uploads of one image
        copies.append(flow.add(who, write_folder(tmp_path / f"c{n}", [5]), again=n >= 2).asset_id)
        worker.poll()
    worker.close()
    docs = [_document(flow, a) for a in copies]
    first = docs[0]["samples"][0]["sampleId"]  # type: ignore[index]
    assert [d["samples"][0]["cluster"] for d in docs] == [first] * 4  # type: ignore[index]
    # the nearest, then the oldest: the fourth copy links to the first two only
    assert [len(d["duplicateLinks"]) for d in docs] == [0, 1, 2, 2]  # type: ignore[arg-type]
    third, fourth = (d["samples"][0]["sampleId"] for d in docs[2:])  # type: ignore[index]
    assert {link["otherId"] for link in docs[3]["duplicateLinks"]} == {  # type: ignore[attr-defined]
        first,
        docs[1]["samples"][0]["sampleId"],  # type: ignore[index]
    }
    # a selection of the last two copies alone: their links name none of them, the cluster
    # does, so valuation still sees one player
    selected = {third, fourth}
    plain = [
        (link["sampleId"], link["otherId"])
        for d in docs[2:]
        for link in d["duplicateLinks"]  # type: ignore[attr-defined]
        if link["otherId"] in selected
    ]
    assert plain == []
    assert (fourth, third) in selection_links(docs[2:], selected=selected)

    # a restarted node restores the clusters from its state: with the first copy withdrawn,
    # a fifth links to the second (oldest still active) and joins the first copy's cluster
    withdraw_asset(flow.settings, flow.accounts["provider"], copies[0])
    fifth = flow.add("provider2", write_folder(tmp_path / "c5", [5]), again=True).asset_id
    worker = _worker(flow, max_links=2)
    worker.poll()
    worker.close()
    doc = _document(flow, fifth)
    second = docs[1]["samples"][0]["sampleId"]  # type: ignore[index]
    assert doc["duplicateLinks"][0]["otherId"] == second  # type: ignore[index]
    assert doc["samples"][0]["cluster"] == first  # type: ignore[index]


def test_a_state_file_without_clusters_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE samples (sample_id BLOB PRIMARY KEY, asset_id INTEGER NOT NULL, "
            "phash INTEGER NOT NULL, position INTEGER NOT NULL, active INTEGER NOT NULL "
            "DEFAULT 1)"
        )
        db.execute("INSERT INTO samples VALUES (?, 1, -5, 0, 1)", (b"\x01" * 32,))
    state = NodeState(path)
    try:
        assert state.active_samples() == [(b"\x01" * 32, 2**64 - 5, b"\x01" * 32)]
        state.add_samples(2, [(b"\x02" * 32, 7)], [b"\x01" * 32])
        assert state.active_samples()[1] == (b"\x02" * 32, 7, b"\x01" * 32)
    finally:
        state.close()
    assert replace(NodeConfig(workdir=tmp_path)).max_links == 8
