"""Asset registration end to end on anvil: provider SDK → storage → chain → compute node.

The provider validates, encrypts, signs and registers; the node follows the chain, checks the
manifest, decrypts, describes, links near-duplicates across the marketplace and attests.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from PIL import Image

from tests.conftest import role_account
from visdm.accounts import UnlockedAccount, import_account, load_account
from visdm.assets import add_asset, show_asset, withdraw_asset
from visdm.chain.client import ChainClient
from visdm.chain.contracts import AssetStatus
from visdm.chain.deployment import Deployment
from visdm.compute import AssetWorker, NodeConfig, NodeState
from visdm.config import Settings
from visdm.datasets import load_fashion_mnist
from visdm.manifest import manifest_hash, parse_manifest, sign_manifest
from visdm.storage import LocalStore

pytestmark = pytest.mark.integration

NAMES = [
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
]
IMAGES, LABELS = load_fashion_mnist("test", limit=64)


def write_folder(folder: Path, indices: list[int], *, broken: bool = False) -> Path:
    folder.mkdir(parents=True)
    rows = ["filename,label"]
    for i in indices:
        Image.fromarray(IMAGES[i]).save(folder / f"img{i:03d}.png")
        rows.append(f"img{i:03d}.png,{NAMES[int(LABELS[i])]}")
    if broken:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        rows.append("broken.png,bag")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


class Flow:
    def __init__(
        self, chain: ChainClient, deployment: Deployment, home: Path, roles: dict[str, LocalAccount]
    ) -> None:
        self.chain, self.deployment, self.home = chain, deployment, home
        self.settings = Settings(home=home, rpc_url=chain.rpc_url)
        deployment.save(self.settings.deployments_dir)
        self.roles = roles
        self.accounts: dict[str, UnlockedAccount] = {}
        for name in ("provider", "provider2", "node", "stranger"):
            import_account(
                self.settings.keystore_dir, name, bytes(roles[name].key), "pw", scrypt_n=1024
            )
            self.accounts[name] = load_account(self.settings.keystore_dir, name, "pw")
        # admit the node under its real derived X25519 key, so it can unwrap data keys
        node = self.accounts["node"]
        deployment.stakeholder_registry(chain).admit_node(
            roles["governance"],
            node.address,
            signer=node.address,
            region="local",
            encryption_key=node.x25519_public,
            endpoint="http://127.0.0.1:9/",
        )
        self.assets = deployment.asset_registry(chain)
        self.store = LocalStore(self.settings.store_dir)

    def worker(self) -> AssetWorker:
        return AssetWorker(
            self.chain,
            self.deployment,
            self.store,
            self.accounts["node"],
            NodeConfig(workdir=self.settings.node_dir),
        )

    def outcome(self, asset_id: int):  # type: ignore[no-untyped-def]
        """What the node recorded for ``asset_id``, read from its state file."""
        state = NodeState(self.settings.node_dir / "state.sqlite3")
        try:
            return state.outcome(asset_id)
        finally:
            state.close()

    def add(self, who: str, folder: Path, **kwargs):  # type: ignore[no-untyped-def]
        return add_asset(self.settings, self.accounts[who], folder, **kwargs)


@pytest.fixture
def flow(
    chain: ChainClient, deployment: Deployment, tmp_path: Path, funded_roles
) -> Iterator[Flow]:
    return Flow(chain, deployment, tmp_path / "home", dict(funded_roles))


def test_register_attest_show(flow: Flow, tmp_path: Path) -> None:
    added = flow.add(
        "provider", write_folder(tmp_path / "a", list(range(12)), broken=True), partial=True
    )
    assert added.sample_count == 12
    assert added.rejected[0]["file"] == "broken.png"
    assert flow.assets.asset(added.asset_id).status == AssetStatus.PENDING
    worker = flow.worker()
    try:
        assert worker.poll() >= 1
    finally:
        worker.close()
    record = flow.assets.asset(added.asset_id)
    assert (record.status, record.accepted_count) == (AssetStatus.ACTIVE, 12)
    view = show_asset(flow.settings, added.asset_id, samples=3)
    assert view.status == "active"
    assert sum(view.labels.values()) == 12
    assert len(view.samples) == 3
    assert {"phash", "width", "brightness", "blur", "histogram"} <= set(view.samples[0]) | {
        "histogram"
    }
    assert view.samples[0]["width"] == 28
    assert view.attested_by == flow.accounts["node"].address
    # the node kept nothing decrypted: its private directory holds only its state
    mode = stat.S_IMODE(flow.settings.node_dir.stat().st_mode)
    assert mode == 0o700
    assert {p.name for p in flow.settings.node_dir.iterdir()} <= {
        "state.sqlite3",
        "state.sqlite3-wal",
        "state.sqlite3-shm",
    }


def test_duplicates_link_across_providers_and_withdrawn_assets_leave(
    flow: Flow, tmp_path: Path
) -> None:
    first = flow.add("provider", write_folder(tmp_path / "a", list(range(10))))
    worker = flow.worker()
    worker.poll()
    # provider2 uploads exact copies of three of provider's images, and two new ones
    copy = flow.add("provider2", write_folder(tmp_path / "b", [0, 1, 2, 30, 31]))
    worker.poll()
    links = show_asset(flow.settings, copy.asset_id).duplicate_links
    originals = {s["sampleId"] for s in _all_samples(flow, first.asset_id)}
    cross = [link for link in links if link["otherId"] in originals]
    assert len(cross) >= 3
    assert all(link["distance"] == 0 for link in cross[:3])
    # the original is withdrawn: a third copy no longer links to it
    withdraw_asset(flow.settings, flow.accounts["provider"], first.asset_id)
    worker.poll()
    # provider2 uploads its copies once more, on purpose (the same images: `again`)
    third = flow.add("provider2", write_folder(tmp_path / "c", [0, 1, 2]), again=True)
    worker.poll()
    worker.close()
    later = show_asset(flow.settings, third.asset_id).duplicate_links
    assert not [link for link in later if link["otherId"] in originals]
    # but it does link to provider2's own earlier copies, which are still active
    assert later


def _all_samples(flow: Flow, asset_id: int) -> list[dict[str, object]]:
    return show_asset(flow.settings, asset_id, samples=10_000).samples


def test_restart_resumes_and_never_processes_an_asset_twice(flow: Flow, tmp_path: Path) -> None:
    first = flow.add("provider", write_folder(tmp_path / "a", [1, 2, 3]))
    worker = flow.worker()
    worker.poll()
    cursor = worker.state.cursor()
    worker.close()
    second = flow.add("provider", write_folder(tmp_path / "b", [4, 5]))
    restarted = flow.worker()
    assert restarted.state.cursor() == cursor
    restarted.poll()
    # a third instance on the same state attests nothing again (it only sees the attestation
    # event mined after the previous poll's range)
    restarted.close()
    again = flow.worker()
    assert again.poll() <= 1
    assert again.poll() == 0
    again.close()
    attested = flow.assets.logs("MetadataAttested")
    assert [int(e["args"]["assetId"]) for e in attested] == [first.asset_id, second.asset_id]
    assert flow.outcome(first.asset_id).outcome == "attested"
    assert flow.outcome(second.asset_id).outcome == "attested"


def test_a_forgotten_cursor_does_not_process_twice(flow: Flow, tmp_path: Path) -> None:
    # the node crashed after attesting but before saving anything: state lost entirely
    first = flow.add("provider", write_folder(tmp_path / "a", [1, 2]))
    worker = flow.worker()
    worker.poll()
    worker.close()
    for path in flow.settings.node_dir.iterdir():
        path.unlink()
    fresh = flow.worker()
    fresh.poll()
    # the attested samples are back in the duplicate index, from the published metadata
    assert len(fresh.state.active_samples()) == 2
    fresh.close()
    assert len(flow.assets.logs("MetadataAttested")) == 1
    assert flow.outcome(first.asset_id).outcome == "attested"  # type: ignore[union-attr]


def test_corrupt_blob_is_excluded_and_counted(flow: Flow, tmp_path: Path) -> None:
    added = flow.add("provider", write_folder(tmp_path / "a", [1, 2, 3, 4]))
    sample_cid = parse_manifest(flow.store.get(added.manifest_cid)).manifest.samples[2].cid
    flow.store.unpin(sample_cid)  # the blob is lost from storage before the node fetches it
    flow.store.gc()
    worker = flow.worker()
    worker.poll()
    worker.close()
    record = flow.assets.asset(added.asset_id)
    assert (record.status, record.accepted_count) == (AssetStatus.ACTIVE, 3)
    outcome = flow.outcome(added.asset_id)
    assert outcome is not None
    assert outcome.excluded == 1


def test_manifest_that_does_not_match_the_chain_is_rejected(flow: Flow, tmp_path: Path) -> None:
    good = flow.add("provider", write_folder(tmp_path / "a", [1, 2]))
    parsed_cid = good.manifest_cid
    manifest = parse_manifest(flow.store.get(parsed_cid)).manifest
    # register the same manifest again, but claiming another sample root: the node refuses
    provider = flow.roles["provider"]
    asset_id, _ = flow.assets.register_asset(
        provider,
        manifest_hash=manifest_hash(manifest),
        samples_root=b"\x05" * 32,
        sample_count=2,
        allowed_regions=["local"],
        key_nodes=[flow.accounts["node"].address],
        manifest_cid=parsed_cid,
    )
    # and a manifest signed by the wrong key (provider2 signs provider's manifest)
    impostor = flow.accounts["provider2"].address
    forged = replace(
        manifest,
        owner=impostor,
        keys=tuple(
            replace(k, recipient=impostor) if k.role == "owner" else k for k in manifest.keys
        ),
    )
    forged_xml = sign_manifest(
        forged,
        bytes(flow.roles["provider2"].key),
        chain_id=flow.chain.chain_id,
        registry=flow.assets.address,
    )
    forged_cid = flow.store.put(forged_xml)
    forged_id, _ = flow.assets.register_asset(
        provider,
        manifest_hash=manifest_hash(forged),
        samples_root=manifest.samples_root,
        sample_count=2,
        allowed_regions=["local"],
        key_nodes=[flow.accounts["node"].address],
        manifest_cid=forged_cid,
    )
    worker = flow.worker()
    worker.poll()
    worker.close()
    assert flow.assets.asset(good.asset_id).status == AssetStatus.ACTIVE
    for bad in (asset_id, forged_id):
        assert flow.assets.asset(bad).status == AssetStatus.PENDING
        outcome = flow.outcome(bad)
        assert outcome is not None
        assert outcome.outcome == "rejected"
    assert "sample root" in flow.outcome(asset_id).detail  # type: ignore[union-attr]
    assert "owner" in flow.outcome(forged_id).detail  # type: ignore[union-attr]


def test_a_node_that_is_not_a_recipient_skips_the_asset(flow: Flow, tmp_path: Path) -> None:
    # a second node in the same region gets the key; ours does not
    other = role_account("other-node")
    flow.chain.fund_from_dev_faucet(other.address)
    import_account(flow.settings.keystore_dir, "other", bytes(other.key), "pw", scrypt_n=1024)
    other_unlocked = load_account(flow.settings.keystore_dir, "other", "pw")
    flow.deployment.stakeholder_registry(flow.chain).admit_node(
        flow.roles["governance"],
        other.address,
        signer=other.address,
        region="local",
        encryption_key=other_unlocked.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    added = flow.add("provider", write_folder(tmp_path / "a", [1, 2]), nodes=[other.address])
    worker = flow.worker()
    worker.poll()
    worker.close()
    assert flow.assets.asset(added.asset_id).status == AssetStatus.PENDING
    assert flow.outcome(added.asset_id).detail == "no data key wrapped for this node"  # type: ignore[union-attr]


def test_bad_inputs_to_add_asset(flow: Flow, tmp_path: Path) -> None:
    from visdm.errors import InvalidInputError, NoValidSamplesError

    folder = write_folder(tmp_path / "a", [1])
    with pytest.raises(InvalidInputError, match="unknown region"):
        flow.add("provider", folder, regions=["mars"])
    with pytest.raises(InvalidInputError, match="not an active compute node"):
        flow.add("provider", folder, nodes=[flow.roles["stranger"].address])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "labels.csv").write_text("filename,label\n")
    (empty / "x.png").write_bytes(b"nope")
    with pytest.raises(NoValidSamplesError):
        flow.add("provider", empty)
    assert flow.assets.asset_count() == 0, "nothing reaches the chain when validation fails"
