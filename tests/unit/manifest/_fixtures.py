"""A prepared asset, its manifest and the accounts around it, for the manifest tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from visdm.crypto import X25519KeyPair, derive_x25519_keypair
from visdm.ingest import KeyRecipient, PreparedAsset, prepare_asset, validate_directory
from visdm.manifest import AssetManifest, Licence
from visdm.storage import MemoryStore

from ..ingest._files import image_bytes

CHAIN_ID = 31337
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CREATED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def account(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(keccak(text=f"visdm-test-account/{name}"))
    return acct


def x25519(acct: LocalAccount) -> X25519KeyPair:
    return derive_x25519_keypair(bytes(acct.key))


@dataclass
class World:
    owner: LocalAccount
    nodes: list[LocalAccount]
    consumer: LocalAccount
    store: MemoryStore
    asset: PreparedAsset
    manifest: AssetManifest


def build(tmp_path: Path, n: int = 4) -> World:
    for i in range(n):
        (tmp_path / f"s{i}.png").write_bytes(image_bytes("PNG", seed=i))
    rows = "".join(f"s{i}.png,{['Shirt', 'Bag'][i % 2]}\n" for i in range(n))
    (tmp_path / "labels.csv").write_text("filename,label\n" + rows)
    owner, consumer = account("provider"), account("consumer")
    nodes = [account("node"), account("node2")]
    store = MemoryStore()
    asset = prepare_asset(
        validate_directory(tmp_path),
        store=store,
        owner=KeyRecipient(owner.address, x25519(owner).public),
        nodes=[KeyRecipient(n.address, x25519(n).public) for n in nodes],
    )
    manifest = AssetManifest.from_prepared(
        asset,
        regions=["eu-west", "local"],
        licence=Licence(
            purposes=("training", "evaluation"),
            denied_consumers=(account("stranger").address,),
            expires=datetime(2026, 3, 1, tzinfo=UTC),
        ),
        created_at=CREATED,
    )
    return World(owner, nodes, consumer, store, asset, manifest)
