"""The demo that ``make demo`` runs: the marketplace end to end on its embedded defaults.

It plays stakeholder registration (paper Algorithm 1) and asset registration (Algorithm 2)
with real parts: encrypted keystores, a local anvil chain started and stopped here, the deployed
contracts, governance admitting a compute node, two providers registering real Fashion-MNIST
images (one of them re-uploading copies of the other's), and the compute node decrypting,
describing and linking the near-duplicates before it attests on chain. Everything lives in one
data directory, a fresh temporary one unless given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from visdm import session
from visdm.accounts import UnlockedAccount, create_account, load_account
from visdm.assets import add_asset, show_asset
from visdm.chain.anvil import chain_down, chain_up
from visdm.compute import AssetWorker, NodeConfig
from visdm.config import Settings
from visdm.crypto import decrypt_blob, encrypt_blob, generate_data_key, wrap_key
from visdm.datasets import export_fashion_mnist
from visdm.errors import DecryptionError, InvalidInputError
from visdm.storage import ContentStore
from visdm.types import Role

__all__ = ["DemoReport", "DemoStep", "run_demo"]

_DEMO_PASSWORD = "visdm-demo"  # noqa: S105 - a throw-away demo keystore in a temporary directory
#: the demo's cast: account name → role on chain (None: governance / compute node)
_CAST = {
    "admin": None,
    "ada": Role.PROVIDER,
    "cy": Role.PROVIDER,
    "node1": None,
    "bob": Role.CONSUMER,
}


def _seal_sample(store: ContentStore, *, sender: UnlockedAccount, reader: UnlockedAccount) -> str:
    """The sender seals one sample to the reader: only the reader's derived X25519 key opens it."""
    data_key = generate_data_key()
    sample = b"\x89PNG demo sample bytes " * 64
    cid = store.put(encrypt_blob(data_key, sample, aad=b"sample:0"))
    wrapped = wrap_key(data_key, reader.x25519_public)
    if decrypt_blob(reader.unwrap_key(wrapped), store.get(cid), aad=b"sample:0") != sample:
        raise DecryptionError("the demo sample did not survive the round trip")
    try:
        sender.unwrap_key(wrapped)
    except DecryptionError:
        return cid
    raise DecryptionError("a key wrapped for the reader opened with the sender's key")


def _photos(root: Path, images: int) -> tuple[Path, Path]:
    """ada's photos; cy re-uploads the first six of them next to photos of its own, plus a
    file that is not an image (which validation rejects)."""
    ada_dir = export_fashion_mnist(root / "ada", count=images)
    cy_dir = export_fashion_mnist(root / "cy", count=images // 2, offset=images)
    rows = (ada_dir / "labels.csv").read_text().splitlines()[1:7]
    with (cy_dir / "labels.csv").open("a") as csv:
        for i, (png, row) in enumerate(zip(sorted(ada_dir.glob("*.png"))[:6], rows, strict=True)):
            (cy_dir / f"copy-{i}.png").write_bytes(png.read_bytes())
            csv.write(f"copy-{i}.png,{row.split(',')[1]}\n")
        (cy_dir / "not-an-image.png").write_bytes(b"this is not a picture")
        csv.write("not-an-image.png,bag\n")
    return ada_dir, cy_dir


@dataclass(slots=True)
class DemoStep:
    """One step of the demo: what happened, how long it took, the gas it cost."""

    name: str
    detail: str
    seconds: float
    gas_used: int | None = None


@dataclass(slots=True)
class DemoReport:
    """Everything the demo did, for printing or ``--json``."""

    home: str
    rpc_url: str = ""
    chain_id: int = 0
    steps: list[DemoStep] = field(default_factory=list)
    accounts: dict[str, dict[str, object]] = field(default_factory=dict)
    assets: list[dict[str, Any]] = field(default_factory=list)
    duplicate_links: int = 0
    copies_linked: int = 0
    sample_cid: str = ""
    total_seconds: float = 0.0


def run_demo(
    home: Path,
    *,
    scrypt_n: int | None = None,
    images: int = 24,
    on_step: Callable[[DemoStep], None] | None = None,
) -> DemoReport:
    """Play the marketplace in ``home`` (which must be empty or absent) and report it."""
    if home.exists() and any(home.iterdir()):
        raise InvalidInputError(f"the demo needs an empty data directory; {home} is not empty")
    started = time.perf_counter()
    settings = Settings(home=home)
    report = DemoReport(home=str(home))

    def step(name: str, detail: str, t0: float, gas: int | None = None) -> None:
        item = DemoStep(name, detail, round(time.perf_counter() - t0, 3), gas)
        report.steps.append(item)
        if on_step is not None:
            on_step(item)

    kdf = {} if scrypt_n is None else {"scrypt_n": scrypt_n}
    t0 = time.perf_counter()
    for name in _CAST:
        create_account(settings.keystore_dir, name, _DEMO_PASSWORD, **kdf)
    step("account new", f"{', '.join(_CAST)}: scrypt V3 keystores", t0)
    people = {n: load_account(settings.keystore_dir, n, _DEMO_PASSWORD) for n in _CAST}

    t0 = time.perf_counter()
    node, _ = chain_up(settings.chain_dir)
    report.rpc_url = node.rpc_url
    try:
        step("chain up", f"anvil at {node.rpc_url}, state in {settings.chain_dir}", t0)
        _play(settings, people, report, step, images=images)
    finally:
        chain_down(settings.chain_dir)
    report.total_seconds = round(time.perf_counter() - started, 3)
    return report


def _play(
    settings: Settings,
    people: dict[str, UnlockedAccount],
    report: DemoReport,
    step: Callable[..., None],
    *,
    images: int,
) -> None:
    from visdm.governance import admit_node

    t0 = time.perf_counter()
    deployment = session.deploy(settings, people["admin"].local_account)
    report.chain_id = deployment.chain_id
    gas = sum(c.gas_used for c in {c.address: c for c in deployment.contracts.values()}.values())
    step("deploy", f"{', '.join(deployment.contracts)} on chain {deployment.chain_id}", t0, gas)

    t0 = time.perf_counter()
    node1 = people["node1"]
    admit_node(
        settings,
        people["admin"].local_account,
        node1.address,
        region="local",
        endpoint="http://127.0.0.1:8700",
        encryption_key=node1.x25519_public.hex(),
    )
    step("admit node", f"node1 {node1.address} in region local", t0)

    for who, role in _CAST.items():
        if role is None:
            continue
        t0 = time.perf_counter()
        account = people[who]
        as_who = replace(settings, account=who)
        session.register(as_who, account.local_account, role, account.x25519_public)
        me = session.whoami(as_who, account.address, account.x25519_public)
        step(f"register {who}", f"{', '.join(me.roles)} at {me.address}", t0)
        report.accounts[who] = {
            "address": me.address,
            "roles": me.roles,
            "encryption_key": me.encryption_key,
            "key_matches": me.key_matches,
        }

    t0 = time.perf_counter()
    ada_dir, cy_dir = _photos(Path(report.home) / "photos", images)
    step("photos", f"{images} Fashion-MNIST images for ada, {images // 2} + 6 copies for cy", t0)

    worker = AssetWorker(
        session.connect(settings),
        deployment,
        session.open_store(settings),
        node1,
        NodeConfig(workdir=settings.node_dir),
    )
    try:
        for who, folder in (("ada", ada_dir), ("cy", cy_dir)):
            t0 = time.perf_counter()
            added = add_asset(replace(settings, account=who), people[who], folder)
            rejected = "; ".join(f"{r['file']}: {r['reason']}" for r in added.rejected)
            detail = f"asset {added.asset_id}: {added.sample_count} samples"
            step(
                f"asset add {who}",
                detail + (f", rejected {rejected}" if rejected else ""),
                t0,
                added.gas_used,
            )
            t0 = time.perf_counter()
            worker.poll()
            view = show_asset(settings, added.asset_id, samples=0)
            step(
                "node attests",
                f"asset {added.asset_id} {view.status}: {view.accepted_count} samples described, "
                f"{len(view.duplicate_links)} near-duplicate links",
                t0,
            )
            report.assets.append(
                {
                    "asset_id": added.asset_id,
                    "owner": who,
                    "samples": view.accepted_count,
                    "labels": view.labels,
                    "duplicate_links": len(view.duplicate_links),
                    "rejected": added.rejected,
                }
            )
            report.duplicate_links += len(view.duplicate_links)
            if who == "cy":
                report.copies_linked = sum(
                    1 for link in view.duplicate_links if link["distance"] == 0
                )
    finally:
        worker.close()

    t0 = time.perf_counter()
    report.sample_cid = _seal_sample(
        session.open_store(settings), sender=people["ada"], reader=people["bob"]
    )
    step("seal sample", f"ada seals {report.sample_cid[:16]}… to bob; only bob opens it", t0)
