"""prepare_asset: encrypted, stored, key-wrapped samples and a Merkle root over their ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from visdm.crypto import X25519KeyPair, unwrap_key
from visdm.errors import DecryptionError, InvalidInputError
from visdm.ingest import (
    SAMPLE_AAD_PREFIX,
    KeyRecipient,
    decrypt_sample,
    prepare_asset,
    sample_aad,
    validate_directory,
)
from visdm.merkle import StandardMerkleTree
from visdm.storage import MemoryStore, cid_digest

from ._files import image_bytes

pytestmark = pytest.mark.unit


def _party(name: str) -> tuple[KeyRecipient, X25519KeyPair]:
    secret = keccak(text=f"visdm-test/{name}")
    keys = X25519KeyPair.from_private(keccak(text=f"visdm-test-x25519/{name}"))
    return KeyRecipient(Account.from_key(secret).address, keys.public), keys


@pytest.fixture
def asset_dir(tmp_path: Path) -> Path:
    files = {f"img{i}.png": image_bytes("PNG", seed=i) for i in range(5)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    rows = "\n".join(f"{name},{'odd' if i % 2 else 'even'}" for i, name in enumerate(files))
    (tmp_path / "labels.csv").write_text("filename,label\n" + rows + "\n")
    return tmp_path


def test_round_trip_for_owner_and_every_node(asset_dir: Path) -> None:
    report = validate_directory(asset_dir)
    owner, owner_keys = _party("owner")
    node1, node1_keys = _party("node1")
    node2, node2_keys = _party("node2")
    store = MemoryStore()
    asset = prepare_asset(report, store=store, owner=owner, nodes=[node1, node2])
    assert asset.owner == owner.address and asset.sample_count == 5
    assert [w.role for w in asset.wrapped_keys] == ["owner", "node", "node"]
    assert [w.address for w in asset.wrapped_keys] == [owner.address, node1.address, node2.address]
    keys = {
        unwrap_key(w.wrapped, k.private)
        for w, k in zip(asset.wrapped_keys, (owner_keys, node1_keys, node2_keys), strict=True)
    }
    assert len(keys) == 1  # one data key, wrapped three times
    (data_key,) = keys
    for sample, accepted in zip(asset.samples, report.accepted, strict=True):
        assert sample.sample_id == cid_digest(sample.cid)
        assert store.is_pinned(sample.cid)
        plaintext = decrypt_sample(store, sample.cid, index=sample.index, data_key=data_key)
        assert plaintext == accepted.path.read_bytes()
        assert (sample.label, sample.name) == (accepted.label, accepted.name)
    assert len({s.sample_id for s in asset.samples}) == 5


def test_the_index_is_bound_into_every_blob(asset_dir: Path) -> None:
    owner, owner_keys = _party("owner")
    node, _ = _party("node")
    store = MemoryStore()
    asset = prepare_asset(validate_directory(asset_dir), store=store, owner=owner, nodes=[node])
    data_key = unwrap_key(asset.wrapped_keys[0].wrapped, owner_keys.private)
    with pytest.raises(DecryptionError, match="wrong associated data"):
        decrypt_sample(store, asset.samples[1].cid, index=2, data_key=data_key)
    assert sample_aad(3) == SAMPLE_AAD_PREFIX + b"\x00" * 7 + b"\x03"


def test_samples_root_is_an_openzeppelin_tree_over_the_ids(asset_dir: Path) -> None:
    owner, _ = _party("owner")
    node, _ = _party("node")
    asset = prepare_asset(
        validate_directory(asset_dir), store=MemoryStore(), owner=owner, nodes=[node]
    )
    expected = StandardMerkleTree.of([(s.sample_id,) for s in asset.samples], ["bytes32"])
    assert asset.samples_root == expected.root
    for sample in asset.samples:
        proof = asset.sample_proof(sample.index)
        assert StandardMerkleTree.verify(
            asset.samples_root, ["bytes32"], (sample.sample_id,), proof
        )
    stranger = (b"\x07" * 32,)
    assert not StandardMerkleTree.verify(
        asset.samples_root, ["bytes32"], stranger, asset.sample_proof(0)
    )


def test_every_asset_gets_a_fresh_key_and_fresh_ids(asset_dir: Path) -> None:
    owner, owner_keys = _party("owner")
    node, _ = _party("node")
    report = validate_directory(asset_dir)
    one = prepare_asset(report, store=MemoryStore(), owner=owner, nodes=[node])
    two = prepare_asset(report, store=MemoryStore(), owner=owner, nodes=[node])
    key_one = unwrap_key(one.wrapped_keys[0].wrapped, owner_keys.private)
    key_two = unwrap_key(two.wrapped_keys[0].wrapped, owner_keys.private)
    assert key_one != key_two
    assert not {s.sample_id for s in one.samples} & {s.sample_id for s in two.samples}


def test_a_file_changed_after_validation_is_refused(asset_dir: Path) -> None:
    owner, _ = _party("owner")
    node, _ = _party("node")
    report = validate_directory(asset_dir)
    (asset_dir / "img3.png").write_bytes(image_bytes("PNG", seed=99))
    with pytest.raises(InvalidInputError, match=r"img3\.png changed since it was validated"):
        prepare_asset(report, store=MemoryStore(), owner=owner, nodes=[node])


def test_recipients_are_checked(asset_dir: Path) -> None:
    owner, _ = _party("owner")
    node, _ = _party("node")
    report = validate_directory(asset_dir)
    with pytest.raises(InvalidInputError, match="no compute node to wrap the data key for"):
        prepare_asset(report, store=MemoryStore(), owner=owner, nodes=[])
    with pytest.raises(InvalidInputError, match=f"recipient {node.address} is listed twice"):
        prepare_asset(report, store=MemoryStore(), owner=owner, nodes=[node, node])
    with pytest.raises(InvalidInputError, match="no accepted samples"):
        prepare_asset([], store=MemoryStore(), owner=owner, nodes=[node])
    with pytest.raises(InvalidInputError, match=r"numbered 0\.\.n-1"):
        prepare_asset(report.accepted[1:], store=MemoryStore(), owner=owner, nodes=[node])
    with pytest.raises(InvalidInputError, match="'0x12' is not an address"):
        KeyRecipient("0x12", b"\x00" * 32)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be 32 bytes, got 31"):
        KeyRecipient(node.address, b"\x01" * 31)
    low_order = KeyRecipient(node.address, b"\x00" * 32)
    with pytest.raises(InvalidInputError, match="not a usable X25519 public key"):
        prepare_asset(report, store=MemoryStore(), owner=owner, nodes=[low_order])
    with pytest.raises(InvalidInputError, match="sample index must be an integer"):
        sample_aad(-1)
