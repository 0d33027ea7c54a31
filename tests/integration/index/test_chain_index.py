"""The index against the real thing: anvil, the compute node attesting real images, the CLI,
and the same chain indexed into SQLite and PostgreSQL.

One marketplace history is played per test (assets registered with real encryption and
attested by a real :class:`~visdm.compute.AssetWorker`, a proposal with a signed proposal
document voted, tallied, trained with a published result and scores, claimed; a second one
reclaimed; a delegation; a withdrawal), then indexed several ways that must all give identical
tables: with the CLI, again over the same blocks, after a ``kill -9`` in the middle of a sync,
and on PostgreSQL. Payouts are played on their own: a rejecting provider's asset leaves the
round, a node pays what the market refuses, claims, a sweep, an abandoned job and a consumer
fault — and the index must report exactly what the market pays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from PIL import Image

from tests.integration.market.conftest import Market
from tests.unit.index._world import dump
from visdm.accounts import UnlockedAccount, import_account, load_account
from visdm.assets import add_asset, show_asset, withdraw_asset
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ResultCommitment
from visdm.chain.deployment import Deployment
from visdm.cli import main
from visdm.cli._json import scheme_problems
from visdm.compute import AssetWorker, NodeConfig
from visdm.config import Settings
from visdm.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from visdm.errors import ChainError
from visdm.index import SearchFilters, load_saved_search, open_index, search_index, sync_index
from visdm.manifest import Licence
from visdm.market import build_payout_tree
from visdm.storage import LocalStore

from ._market import propose_signed, result_document, vote_and_tally
from .conftest import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGES, LABELS = load_fashion_mnist("test", limit=32)
REPO = Path(__file__).resolve().parents[3]


def write_folder(folder: Path, indices: list[int]) -> Path:
    folder.mkdir(parents=True)
    rows = ["filename,label"]
    for i in indices:
        Image.fromarray(IMAGES[i]).save(folder / f"img{i:03d}.png")
        rows.append(f"img{i:03d}.png,{FASHION_MNIST_CLASSES[int(LABELS[i])]}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def label(i: int) -> str:
    return FASHION_MNIST_CLASSES[int(LABELS[i])]


@dataclass
class History:
    """What the played history left on chain."""

    settings: Settings
    a1: int
    a2: int
    a3: int
    trained: int
    reclaimed: int
    sample_ids: dict[tuple[int, int], str]


def play(
    chain: ChainClient, deployment: Deployment, roles: dict[str, LocalAccount], tmp: Path
) -> History:
    settings = Settings(home=tmp / "home", rpc_url=chain.rpc_url)
    deployment.save(settings.deployments_dir)
    people: dict[str, UnlockedAccount] = {}
    for name in ("provider", "provider2", "node"):
        import_account(settings.keystore_dir, name, bytes(roles[name].key), "pw", scrypt_n=1024)
        people[name] = load_account(settings.keystore_dir, name, "pw")
    node = people["node"]
    deployment.stakeholder_registry(chain).admit_node(
        roles["governance"],
        node.address,
        signer=node.address,
        region="local",
        encryption_key=node.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    worker = AssetWorker(
        chain, deployment, LocalStore(settings.store_dir), node, NodeConfig(settings.node_dir)
    )
    try:
        a1 = add_asset(settings, people["provider"], write_folder(tmp / "a", [0, 1, 2, 3, 4, 5]))
        worker.poll()
        # provider2 re-uploads two of provider's images beside two of its own
        a2 = add_asset(
            settings,
            people["provider2"],
            write_folder(tmp / "b", [0, 1, 10, 11]),
            licence=Licence(
                ("training", "research"), denied_consumers=(roles["stranger"].address,)
            ),
        )
        worker.poll()
        a3 = add_asset(settings, people["provider"], write_folder(tmp / "c", [2, 20]))
        worker.poll()
    finally:
        worker.close()
    withdraw_asset(settings, people["provider"], a3.asset_id)
    ids = {}
    for asset in (a1, a2):
        for s in show_asset(settings, asset.asset_id, samples=100).samples:
            ids[(asset.asset_id, int(s["index"]))] = str(s["sampleId"])

    mk = Market(chain, deployment, dict(roles))
    store = LocalStore(settings.store_dir)
    mk.delegations.delegate(roles["provider2"], roles["provider"].address)
    pid = propose_signed(mk, store, [(a1.asset_id, range(6)), (a2.asset_id, range(4))])
    vote_and_tally(mk, pid, [(a1.asset_id, 6), (a2.asset_id, 4)], {"provider": 0, "provider2": 0})
    mk.start(pid)
    scores = [
        {
            "sample_id": ids[key],
            "asset_id": key[0],
            "index": key[1],
            "provider": roles["provider" if key[0] == a1.asset_id else "provider2"].address,
            "value": -0.5 if key == (a1.asset_id, 5) else 0.125 * (key[1] + 1),
            "cluster_founder": ids[key],
            "cluster_size": 1,
            "flags": ["noisy"] if key == (a1.asset_id, 5) else [],
        }
        for key in sorted(ids)
    ]
    blob = json.dumps({"version": 1, "proposalId": pid, "samples": scores}).encode()
    selection = [a1.asset_id, a2.asset_id]
    tree = build_payout_tree({a1.asset_id: 700, a2.asset_id: 300}, {a1.asset_id: 0, a2.asset_id: 1})
    model_hash, seed_hash = keccak(text="encrypted model"), keccak(text="job seed")
    document = result_document(
        pid,
        node.address,
        tree=tree,
        owners={a1.asset_id: roles["provider"].address, a2.asset_id: roles["provider2"].address},
        model={"cid": store.put(b"sealed model bytes"), "modelHash": "0x" + model_hash.hex()},
        scores={"cid": store.put(blob), "hash": "0x" + keccak(blob).hex()},
        seed_hash=seed_hash,
    )
    mk.market.submit_result(
        roles["node"],
        pid,
        ResultCommitment(
            accuracy_bps=9100,
            result_cid=store.put(document),
            model_hash=model_hash,
            payout_root=tree.root,
            scores_hash=keccak(blob),
            seed_hash=seed_hash,
        ),
    )
    mk.market.claim(roles["stranger"], mk.claim(pid, tree, a1.asset_id, selection))
    reclaimed = propose_signed(mk, store, [(a1.asset_id, [0, 1])])
    vote_and_tally(mk, reclaimed, [(a1.asset_id, 2)], {"provider": 0})
    mk.advance(mk.market.parameters().start_period + 10)
    mk.market.reclaim(roles["consumer"], reclaimed)
    return History(settings, a1.asset_id, a2.asset_id, a3.asset_id, pid, reclaimed, ids)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> Any:
    code, out, err = run(
        capsys, "--home", str(settings.home), "--rpc-url", str(settings.rpc_url), *argv, "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert scheme_problems(data) == []
    return data


#: a sync in a child process that kills itself (SIGKILL, no clean-up) on its n-th document read
_KILLED_SYNC = """
import os, signal, sys
from pathlib import Path
from visdm.config import Settings
from visdm.index import ChainEventSource, IndexConfig, Indexer, open_database
from visdm.session import connect_deployed, open_store

home, rpc, url, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = Settings(home=Path(home), rpc_url=rpc)
store = open_store(settings)

class KilledOnRead:
    reads = 0
    def get(self, cid, max_bytes=None):
        KilledOnRead.reads += 1
        if KilledOnRead.reads == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return store.get(cid, max_bytes=max_bytes)

conn = connect_deployed(settings)
source = ChainEventSource(conn.client, conn.deployment)
names = ("StakeholderRegistry", "AssetRegistry", "TrainingMarket")
Indexer(
    open_database(url), source, KilledOnRead(), chain_id=conn.client.chain_id,
    contracts={k: conn.deployment.address_of(k) for k in names},
    start_block=source.start_block, config=IndexConfig(max_blocks_per_poll=4),
).sync()
print("not killed")
"""


def killed_then_resumed(history: History, url: str, reads: int) -> dict[str, Any]:
    """Sync ``url`` in a child killed on its ``reads``-th document, then resume; the dump."""
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_SYNC,
            *(str(history.settings.home), str(history.settings.rpc_url), url, str(reads)),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert child.returncode == -9, child.stdout + child.stderr
    db = open_index(history.settings, url)  # the killed sync left a usable, partial index
    try:
        cursor = db.scalar("SELECT value FROM index_meta WHERE key = 'cursor'")
        partial = None if cursor is None else int(cursor)
        if partial is not None:  # nothing past the last committed range was kept
            last = db.scalar("SELECT MAX(block_number) FROM chain_events")
            assert last is None or int(last) <= partial
    finally:
        db.close()
    report = sync_index(history.settings, url=url)
    assert report.cursor_before == partial
    assert report.cursor is not None and partial is not None and partial < report.cursor
    db = open_index(history.settings, url)
    try:
        return dump(db)
    finally:
        db.close()


def test_the_chain_indexed_every_way_gives_the_same_tables(
    chain: ChainClient,
    deployment: Deployment,
    funded_roles: dict[str, LocalAccount],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    h = play(chain, deployment, funded_roles, tmp_path)
    head = int(chain.w3.eth.block_number)
    provider, provider2 = funded_roles["provider"].address, funded_roles["provider2"].address

    # --- the CLI, first holding back the newest blocks ---------------------------------------
    held = cli_json(capsys, h.settings, "market", "sync", "--confirmations", "3")
    assert (held["cursor"], held["head"], held["confirmations"]) == (head - 3, head, 3)
    report = cli_json(capsys, h.settings, "market", "sync")
    assert (report["cursorBefore"], report["cursor"]) == (head - 3, head)
    assert (report["assets"], report["samples"], report["proposals"]) == (3, 12, 2)
    assert report["documents"] == {"missing": 0, "rejected": 0}
    assert report["scoredSamples"] == 10

    db = open_index(h.settings)
    try:
        assets = db.query(
            "SELECT asset_id, owner, status, metadata_status, manifest_status FROM assets "
            "ORDER BY asset_id"
        )
        assert assets == [
            (h.a1, provider, "active", "indexed", "indexed"),
            (h.a2, provider2, "active", "indexed", "indexed"),
            (h.a3, provider, "withdrawn", "indexed", "indexed"),
        ]
        labels = db.query(
            "SELECT sample_index, label, width, height, format FROM samples WHERE asset_id = ? "
            "ORDER BY sample_index",
            (h.a1,),
        )
        assert labels == [(i, label(i), 28, 28, "PNG") for i in range(6)]
        # provider2's copies of images 0 and 1 are linked to provider's at distance 0
        copies = db.query(
            "SELECT other_id, distance FROM sample_links WHERE sample_id = ? ORDER BY other_id",
            (h.sample_ids[(h.a2, 0)],),
        )
        assert (h.sample_ids[(h.a1, 0)], 0) in copies
        sizes = dict(
            ((a, i), n)
            for a, i, n in db.query("SELECT asset_id, sample_index, cluster_size FROM samples")
        )
        assert sizes[(h.a1, 0)] >= 2 and sizes[(h.a2, 0)] == sizes[(h.a1, 0)]
        assert sizes[(h.a3, 0)] == 1  # withdrawn: out of every cluster
        assert db.query(
            "SELECT purpose FROM asset_purposes WHERE asset_id = ? ORDER BY 1", (h.a2,)
        ) == [
            ("research",),
            ("training",),
        ]
        proposals = db.query("SELECT proposal_id, status FROM proposals ORDER BY proposal_id")
        assert proposals == [(h.trained, "completed"), (h.reclaimed, "cancelled")]
        assert db.query("SELECT status, scores_status FROM results") == [("indexed", "indexed")]
        assert db.query("SELECT document_status FROM proposals") == [("indexed",), ("indexed",)]
        assert db.query(
            "SELECT position, asset_id, owner, amount FROM payouts ORDER BY position"
        ) == [(0, h.a1, provider, "700"), (1, h.a2, provider2, "300")]
        assert db.query("SELECT position, asset_id, owner, amount FROM claims") == [
            (0, h.a1, provider, "700")
        ]
        assert db.query(
            "SELECT asset_id, sample_count FROM proposal_assets WHERE proposal_id = ? "
            "ORDER BY position",
            (h.trained,),
        ) == [(h.a1, 6), (h.a2, 4)]
        assert db.query("SELECT delegator, delegate FROM delegations") == [(provider2, provider)]
        assert db.scalar("SELECT COUNT(*) FROM votes WHERE proposal_id = ?", (h.trained,)) == 2
        node = db.query("SELECT address, encryption_key FROM compute_nodes")
        assert len(node) == 1 and node[0][1] != "0x" + bytes(range(100, 132)).hex()
        sqlite_tables = dump(db)
    finally:
        db.close()

    # --- search and a saved selection through the CLI ------------------------------------------
    found = cli_json(
        capsys,
        h.settings,
        "market",
        "search",
        "--label",
        label(0),
        "--exclude-flag",
        "noisy",
        "--save",
        "first-class",
    )
    expected = sorted(k for k in h.sample_ids if label(_image(h, k)) == label(0))
    assert [(s["assetId"], s["index"]) for s in found["samples"]] == expected
    saved = load_saved_search(h.settings, "first-class")
    assert saved.sample_count == len(expected)
    unique = search_index(h.settings, SearchFilters(max_duplicate_links=0), limit=100)
    assert (h.a1, 0) not in [(s.asset_id, s.index) for s in unique.samples]
    valued = search_index(h.settings, SearchFilters(min_score=0.5), limit=100)
    assert {(s.asset_id, s.index) for s in valued.samples} == {
        k for k in h.sample_ids if 0.125 * (k[1] + 1) >= 0.5 and k != (h.a1, 5)
    }
    summary = cli_json(capsys, h.settings, "market", "summary", "--purpose", "research")
    assert (summary["samples"], summary["assets"]) == (4, 1)

    # --- again over the same blocks: nothing changes ------------------------------------------
    again = sync_index(h.settings)
    assert again.events == 0
    replay = sync_index(h.settings, rebuild=True)
    assert replay.cursor_before is None
    db = open_index(h.settings)
    try:
        assert dump(db) == sqlite_tables
    finally:
        db.close()

    # --- killed mid-sync, then resumed ----------------------------------------------------------
    killed = killed_then_resumed(h, f"sqlite:///{tmp_path / 'killed.sqlite3'}", reads=4)
    assert killed == sqlite_tables

    # --- the same chain in PostgreSQL -----------------------------------------------------------
    postgres: PostgresServer = request.getfixturevalue("postgres")
    pg_url = postgres.new_database()
    sync_index(h.settings, url=pg_url, max_blocks_per_poll=7)
    db = open_index(h.settings, pg_url)
    try:
        assert db.backend == "postgresql"
        assert dump(db) == sqlite_tables
    finally:
        db.close()
    assert killed_then_resumed(h, postgres.new_database(), reads=5) == sqlite_tables


def _image(h: History, key: tuple[int, int]) -> int:
    """Which Fashion-MNIST image sample ``key`` is (the folders written in :func:`play`)."""
    asset, index = key
    return [0, 1, 2, 3, 4, 5][index] if asset == h.a1 else [0, 1, 10, 11][index]


def test_a_reorganised_chain_is_refused_until_rebuilt(
    chain: ChainClient,
    deployment: Deployment,
    funded_roles: dict[str, LocalAccount],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(home=tmp_path / "home", rpc_url=chain.rpc_url)
    deployment.save(settings.deployments_dir)
    delegations = deployment.delegation_registry(chain)
    provider, provider2 = funded_roles["provider"], funded_roles["provider2"]
    w3 = chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    delegations.delegate(provider2, provider.address)
    assert sync_index(settings).events >= 1
    # the block the index stopped at disappears...
    assert w3.provider.make_request("evm_revert", [snapshot])["result"]  # type: ignore[arg-type]
    chain.reset_nonces()
    with pytest.raises(ChainError, match="no such block"):
        sync_index(settings)
    # ...and another one takes its number
    delegations.delegate(provider2, funded_roles["stranger"].address)
    with pytest.raises(ChainError, match="reorganised"):
        sync_index(settings)
    code, _, err = run(
        capsys, "--home", str(settings.home), "--rpc-url", chain.rpc_url, "market", "sync"
    )
    assert code == 6 and "--rebuild" in err
    rebuilt = cli_json(capsys, settings, "market", "sync", "--rebuild")
    assert rebuilt["cursorBefore"] is None
    db = open_index(settings)
    try:
        assert db.query("SELECT delegate FROM delegations") == [(funded_roles["stranger"].address,)]
    finally:
        db.close()
