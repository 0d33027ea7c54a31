"""The marketplace ``crowd.py`` measures: one anvil behind a counting JSON-RPC proxy, the
contracts, a ``visdm node serve`` process, a consumer, and N providers who each add one asset of
real Fashion-MNIST images through the SDK (validated, encrypted, stored, signed, registered)
which the node attests; every provider also delegates to one collective and joins it.

Setup that is not what the benchmark measures (funding, registering N stakeholders, the
collective's delegations and joins) is sent unsigned from impersonated accounts in one block per
phase, as ``gas.py`` does; asset registration goes through :func:`visdm.assets.add_asset`,
which is what a provider runs.

Images: the Debian package's 60,000 training images, then the same images flipped left to
right (a flip changes the perceptual hash, so the node does not link them as copies) for sizes
past 60,000; without the package, the 2,000 images shipped with visdm (and their flips).
The consumer's validation set is the first 200 test images.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import numpy as np
import psutil
from eth_account import Account
from eth_utils.crypto import keccak
from numpy.typing import NDArray
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gas import Bulk
from visdm import collectives
from visdm.accounts import AccountInfo, UnlockedAccount, import_account, load_account
from visdm.assets import add_asset
from visdm.chain.anvil import AnvilNode, start_anvil
from visdm.chain.client import ChainClient
from visdm.chain.contracts import AssetStatus, MarketParameters
from visdm.chain.deployment import Deployment, deploy_marketplace
from visdm.config import Settings
from visdm.crypto import derive_x25519_keypair
from visdm.datasets import DatasetNotFoundError, load_fashion_mnist
from visdm.governance import admit_node
from visdm.manifest import Licence
from visdm.session import register
from visdm.types import Role

__all__ = ["PASSWORD", "RssSampler", "World", "fashion_images"]

PASSWORD = "crowd"
NAMES = ("tshirt", "trouser", "pullover", "dress", "coat")
NAMES += ("sandal", "shirt", "sneaker", "bag", "boot")
PARAMETERS = MarketParameters(
    min_voting_period=1, min_batch_size=1, min_selection_samples=1, min_selection_providers=1
)
_PROXY = Path(__file__).with_name("_crowd_proxy.py")
_NODE = (sys.executable, "-m", "visdm", "node", "serve")
#: a collective's floor per sample, far below any offer here: its cast accepts
FLOOR = 1


def fashion_images(count: int) -> tuple[NDArray[np.uint8], NDArray[np.int64], str]:
    """``count`` labelled 28x28 images (see the module docstring) and where they came from."""
    try:
        xs, ys = load_fashion_mnist("train")
        source = "Fashion-MNIST train (Debian dataset-fashion-mnist)"
    except DatasetNotFoundError:
        from visdm.datasets import load_fashion_mnist_subset

        xs, ys = load_fashion_mnist_subset("train")
        source = "Fashion-MNIST train, first 2,000 (shipped with visdm)"
    if count > len(xs):
        copies = -(-count // len(xs))
        xs = np.concatenate([xs if k % 2 == 0 else xs[:, :, ::-1] for k in range(copies)])
        ys = np.concatenate([ys] * copies)
        source += f", and flipped left to right past {len(ys) // copies:,}"
        if copies > 2:
            source += " (sizes past twice the set repeat images: the node links them as copies)"
    return xs[:count], ys[:count], source


class RssSampler:
    """Peak resident memory of a process and all its descendants, sampled every ``every_s``."""

    def __init__(self, pid: int, *, every_s: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        total = 0
        with contextlib.suppress(psutil.Error):
            for p in [self.root, *self.root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.wait(self.every_s)

    def reset(self) -> None:
        self.peak = self.now()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class World:
    """See the module docstring; :meth:`build` sets it up, :meth:`close` stops what it started."""

    home: Path
    providers: int
    samples: int
    settings: Settings = field(init=False)
    anvil: AnvilNode | None = None
    proxy: subprocess.Popen[bytes] | None = None
    node_proc: subprocess.Popen[bytes] | None = None
    node_port: int = 0
    accounts: dict[str, UnlockedAccount] = field(default_factory=dict)
    asset_ids: list[int] = field(default_factory=list)
    #: each provider's asset
    asset_of: dict[str, int] = field(default_factory=dict)
    collective: str = ""
    source: str = ""
    #: wall seconds of each setup phase
    setup_s: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.settings = Settings(home=self.home, rpc_timeout_s=120, tx_timeout_s=300)

    @property
    def names(self) -> list[str]:
        return [f"p{i}" for i in range(self.providers)]

    def as_(self, name: str) -> Settings:
        return replace(self.settings, account=name)

    def client(self) -> ChainClient:
        assert self.settings.rpc_url is not None
        return ChainClient(self.settings.rpc_url, timeout_s=120, tx_timeout_s=300)

    def rpc_counts(self) -> dict[str, int]:
        """Calls per JSON-RPC method through the proxy so far (every party's)."""
        assert self.settings.rpc_url is not None
        return dict(httpx.get(self.settings.rpc_url, timeout=30).json())

    # --- setup ------------------------------------------------------------------------------
    def build(self, *, progress: Callable[[str], None] = lambda _: None) -> None:
        self._phase("chain, proxy and contracts", self._chain)
        progress("chain up")
        self._phase("accounts (keystores, bulk funding and registration)", self._accounts)
        self._phase("node start", self._start_node)
        progress(f"node up; adding {self.providers} assets")
        self._phase("assets added (validate, encrypt, store, sign, register)", self._assets)
        progress("assets added; waiting for attestation")
        self._phase("assets attested by the node (after the last add)", self._attested)
        self._phase("collective: create, delegate and join (bulk)", self._collective)

    def _phase(self, name: str, fn: Callable[[], None]) -> None:
        start = time.perf_counter()
        fn()
        self.setup_s[name] = time.perf_counter() - start

    def _chain(self) -> None:
        self.anvil = start_anvil(state_file=None, log_file=self.home / "anvil.log")
        port_file = self.home / "proxy.port"
        self.proxy = subprocess.Popen(
            [sys.executable, str(_PROXY), self.anvil.rpc_url, str(port_file)],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline or self.proxy.poll() is not None:
                raise RuntimeError("the counting RPC proxy did not start")
            time.sleep(0.05)
        self.settings = replace(self.settings, rpc_url=f"http://127.0.0.1:{port_file.read_text()}")
        for name in ("admin", "node", "consumer"):  # the node process unlocks its keystore
            key = keccak(text=f"visdm crowd {name}")
            import_account(self.settings.keystore_dir, name, key, PASSWORD, scrypt_n=1024)
            self.accounts[name] = load_account(self.settings.keystore_dir, name, PASSWORD)
        for name in self.names:  # unlocked in memory: a keystore each costs minutes at 1,000
            key = keccak(text=f"visdm crowd {name}")
            local, x25519 = Account.from_key(key), derive_x25519_keypair(key)
            info = AccountInfo(name, local.address, "0x" + x25519.public.hex(), self.home / name)
            self.accounts[name] = UnlockedAccount(info, local, x25519)
        client = self.client()
        for name in ("admin", "node", "consumer"):
            client.fund_from_dev_faucet(self.accounts[name].address)
        admin = self.accounts["admin"].local_account
        deploy_marketplace(client, admin, parameters=PARAMETERS).save(self.settings.deployments_dir)

    def deployment(self) -> Deployment:
        from visdm.session import connect_deployed

        return connect_deployed(self.settings).deployment

    def _accounts(self) -> None:
        client = self.client()
        dep = self.deployment()
        node = self.accounts["node"]
        self.node_port = _free_port()
        admit_node(
            self.settings,
            self.accounts["admin"].local_account,
            node.address,
            region="local",
            endpoint=f"http://127.0.0.1:{self.node_port}",
            encryption_key=node.x25519_public.hex(),
        )
        consumer = self.accounts["consumer"]
        register(
            self.as_("consumer"), consumer.local_account, Role.CONSUMER, consumer.x25519_public
        )
        bulk = Bulk(client)
        providers = [self.accounts[n] for n in self.names]
        bulk.fund([p.address for p in providers])
        stakeholders = dep.stakeholder_registry(client)
        contract = client.contract(stakeholders.address, stakeholders.ARTIFACT)
        calls = [(p.address, [int(Role.PROVIDER), p.x25519_public]) for p in providers]
        bulk.send(contract, "register", calls, "StakeholderRegistered")
        bulk.rpc([("anvil_autoImpersonateAccount", [False])])

    def _start_node(self) -> None:
        env = {
            **os.environ,
            "VISDM_HOME": str(self.home),
            "VISDM_RPC_URL": self.settings.rpc_url or "",
            "VISDM_ACCOUNT": "node",
            "VISDM_PASSWORD": PASSWORD,
        }
        with (self.home / "node.log").open("ab") as log:
            self.node_proc = subprocess.Popen(
                [*_NODE, "--api-port", str(self.node_port), "--poll", "0.5"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 120
        while True:
            if self.node_proc.poll() is not None:
                tail = (self.home / "node.log").read_text()[-2000:]
                raise RuntimeError(f"the node exited {self.node_proc.returncode}: {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.node_url}/health", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the node's API did not answer within 120 s")
            time.sleep(0.2)

    @property
    def node_url(self) -> str:
        return f"http://127.0.0.1:{self.node_port}"

    def _assets(self) -> None:
        xs, ys, self.source = fashion_images(self.samples)
        shares = np.array_split(np.arange(self.samples), self.providers)
        licence = Licence(("training",), dp_required=False)

        def one(k: int) -> tuple[str, int]:
            name = f"p{k}"
            folder = self.home / "photos" / name
            folder.mkdir(parents=True, exist_ok=True)
            rows = ["filename,label"]
            for i in shares[k]:
                Image.fromarray(xs[i]).save(folder / f"img{i:06d}.png")
                rows.append(f"img{i:06d}.png,{NAMES[int(ys[i])]}")
            (folder / "labels.csv").write_text("\n".join(rows) + "\n")
            added = add_asset(self.as_(name), self.accounts[name], folder, licence=licence)
            return name, added.asset_id

        # each provider sends as itself: distinct accounts, so no nonce is shared between threads
        with ThreadPoolExecutor(max_workers=2) as pool:
            self.asset_of = dict(pool.map(one, range(self.providers)))
        self.asset_ids = sorted(self.asset_of.values())

    def _attested(self) -> None:
        client = self.client()
        registry = self.deployment().asset_registry(client)
        pending = set(self.asset_ids)
        deadline = time.monotonic() + 7200
        while pending:
            pending = {a for a in pending if registry.asset(a).status != AssetStatus.ACTIVE}
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} assets were not attested in 2 h")
            if pending:
                time.sleep(1.0)

    def _collective(self) -> None:
        client = self.client()
        dep = self.deployment()
        admin = self.accounts["admin"].local_account
        made = collectives.create(client, dep, admin, name="crowd", policy_delay=0)
        self.collective = made.address
        bulk = Bulk(client)
        delegations = dep.delegation_registry(client)
        registry = client.contract(delegations.address, delegations.ARTIFACT)
        owners = [self.accounts[n].address for n in self.names]
        bulk.send(registry, "delegate", [(o, [made.address]) for o in owners], "DelegateChanged")
        contract = client.contract(made.address, "Collective")
        calls = [(self.accounts[n].address, [[self.asset_of[n]], FLOOR]) for n in self.names]
        bulk.send(contract, "join", calls, "MemberJoined")
        bulk.rpc([("anvil_autoImpersonateAccount", [False])])

    def close(self) -> None:
        if self.node_proc is not None and self.node_proc.poll() is None:
            self.node_proc.terminate()
            try:
                self.node_proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.node_proc.kill()
                self.node_proc.wait(timeout=10)
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.terminate()
            self.proxy.wait(timeout=10)
        if self.anvil is not None:
            self.anvil.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
