"""prepare_asset interrupted part way (Ctrl-C, a file changed, a full disk): the blobs this run
pinned are unpinned before the exception goes on, so none is left pinned with nothing that can
ever refer to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from visdm.crypto import X25519KeyPair
from visdm.errors import InvalidInputError, StorageError
from visdm.ingest import KeyRecipient, prepare_asset, validate_directory
from visdm.ingest._prepare import release_blobs
from visdm.storage import LocalStore, MemoryStore

from ._files import image_bytes

pytestmark = pytest.mark.unit


def _party(name: str) -> KeyRecipient:
    keys = X25519KeyPair.from_private(keccak(text=f"visdm-test-x25519/{name}"))
    return KeyRecipient(Account.from_key(keccak(text=f"visdm-test/{name}")).address, keys.public)


@pytest.fixture
def asset_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "asset"
    folder.mkdir()
    rows = []
    for i in range(6):
        (folder / f"img{i}.png").write_bytes(image_bytes("PNG", seed=i))
        rows.append(f"img{i}.png,x")
    (folder / "labels.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    return folder


def test_ctrl_c_part_way_leaves_nothing_pinned(asset_dir: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    report = validate_directory(asset_dir)

    def interrupt_after_three(done: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_asset(
            report,
            store=store,
            owner=_party("owner"),
            nodes=[_party("node")],
            on_sample=interrupt_after_three,
        )
    assert store.pins() == []
    assert store.gc().removed_blocks == 3  # what the run wrote is now garbage, and only that
    # the same run, not interrupted, pins every sample
    asset = prepare_asset(report, store=store, owner=_party("owner"), nodes=[_party("node")])
    assert sorted(store.pins()) == sorted(s.cid for s in asset.samples)


def test_a_file_changed_mid_run_unpins_what_was_stored(asset_dir: Path) -> None:
    store = MemoryStore()
    report = validate_directory(asset_dir)
    (asset_dir / "img4.png").write_bytes(image_bytes("PNG", seed=99))
    with pytest.raises(InvalidInputError, match=r"img4\.png changed since it was validated"):
        prepare_asset(report, store=store, owner=_party("owner"), nodes=[_party("node")])
    stored = _all_cids(store)
    assert len(stored) == 4 and not any(store.is_pinned(cid) for cid in stored)


def test_a_file_gone_mid_run_is_a_clear_error(asset_dir: Path) -> None:
    store = MemoryStore()
    report = validate_directory(asset_dir)
    (asset_dir / "img2.png").unlink()
    with pytest.raises(InvalidInputError, match=r"img2.png cannot be read any more .*validate"):
        prepare_asset(report, store=store, owner=_party("owner"), nodes=[_party("node")])
    assert not any(store.is_pinned(cid) for cid in _all_cids(store))


def test_release_never_raises_a_storage_error() -> None:
    store = MemoryStore()
    kept = store.put(b"kept", pin=True)
    gone = store.put(b"gone", pin=True)
    unpinned = store.put(b"unpinned")
    assert release_blobs(store, [gone, unpinned]) == 1
    assert store.is_pinned(kept) and not store.is_pinned(gone)
    with pytest.raises(StorageError):
        store.unpin(unpinned)  # what release_blobs swallowed


def _all_cids(store: MemoryStore) -> list[str]:
    return list(store._blobs)  # the test looks inside the fake
