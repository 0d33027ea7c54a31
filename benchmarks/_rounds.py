"""A whole marketplace on loopback for the load benchmark and the fault suite: one anvil
(optionally with ``--state``), the contracts, providers with real Fashion-MNIST assets, a
``visdm node serve`` process, consumers, and :meth:`World.run_round` driving one proposal
through propose, votes, tally, quote over HTTP, training in the node's sandbox, and claims.

Every account's transactions go through one lock per account: the SDK opens a chain client
per call and each reads its nonce from the pending count, so two threads sending as the same
account at once would race for one nonce. Latencies of every HTTP request and index search
the rounds make are recorded in :class:`Latencies`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from eth_utils.crypto import keccak
from PIL import Image

from visdm.accounts import UnlockedAccount, import_account, load_account
from visdm.assets import add_asset
from visdm.chain.anvil import find_anvil
from visdm.chain.client import ChainClient
from visdm.chain.contracts import MarketParameters, ProposalStatus
from visdm.chain.deployment import deploy_marketplace
from visdm.config import Settings
from visdm.datasets import load_fashion_mnist_subset
from visdm.errors import (
    ChainNotRunningError,
    ChainTimeoutError,
    ContractRevertError,
    InvalidInputError,
)
from visdm.governance import admit_node
from visdm.manifest import Licence
from visdm.market import workflow
from visdm.market.books import BooksReport, audit, read_ledger
from visdm.market.quotes import NodeRequest, job_status_headers, sign_job_status_request
from visdm.market.workflow import NodeUnreachableError
from visdm.session import Connection, connect_deployed, register, top_up_dev_tokens
from visdm.types import Role

PASSWORD = "load"
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
#: small enough that a job costs seconds on a shared CPU, real enough to train and value
SPEC: dict[str, Any] = {
    "architecture": "mlp",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 16,
    "optimizer": "adam",
    "learning_rate": 0.003,
    "hidden": [16],
}
PARAMETERS = MarketParameters(
    min_voting_period=1, min_batch_size=1, min_selection_samples=1, min_selection_providers=1
)
#: errors a party meets when a peer or the chain is briefly away (one-line, nothing lost)
_TRANSIENT = (NodeUnreachableError, ChainNotRunningError, ChainTimeoutError)
FINAL = {
    ProposalStatus.COMPLETED,
    ProposalStatus.WTP_MISSED,
    ProposalStatus.CANCELLED,
    ProposalStatus.FAILED,
    ProposalStatus.REJECTED,
}
FINAL_STEPS = {s.name.lower() for s in FINAL}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def tree_rss(root: int) -> int:
    """Bytes resident in process ``root`` and every process below it (sandboxes included:
    bubblewrap's namespaces hide them from each other, not from the host's ``/proc``)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            status = (entry / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        pid = int(entry.name)
        children.setdefault(ppid, []).append(pid)
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1]) * 1024
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


class PeakRss(threading.Thread):
    """The peak of :func:`tree_rss` of a process, sampled every ``every_s`` until stopped."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        super().__init__(name="peak-rss", daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.peak = max(self.peak, tree_rss(self.pid))


class ProposalLostError(RuntimeError):
    """The chain no longer knows a proposal (anvil restarted from an older state)."""


class Latencies:
    """Seconds per named request, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        with self._lock:
            self.samples.setdefault(name, []).append(elapsed)

    def percentile(self, name: str, q: float) -> float:
        values = sorted(self.samples[name])
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


@dataclass
class RoundLog:
    """What one round did: its proposal, final status and the steps it went through."""

    consumer: str
    proposal_id: int = 0
    status: ProposalStatus = ProposalStatus.NONE
    steps: list[str] = field(default_factory=list)
    #: transient errors the round met and got past by trying again
    retries: list[str] = field(default_factory=list)


class World:
    """One marketplace on loopback; see the module docstring."""

    def __init__(
        self,
        home: Path,
        *,
        providers: int = 3,
        consumers: int = 2,
        images: int = 16,
        persist_chain: bool = False,
        node_poll_s: float = 0.5,
        node_args: tuple[str, ...] = (),
    ) -> None:
        self.home = home
        self.providers = [f"p{i}" for i in range(providers)]
        self.consumers = [f"c{i}" for i in range(consumers)]
        self.images = images
        self.persist_chain = persist_chain
        self.node_poll_s = node_poll_s
        #: more ``visdm node serve`` options (its budget, say); read at each start
        self.node_args = node_args
        self.latencies = Latencies()
        self.anvil: subprocess.Popen[bytes] | None = None
        self.chain_port = free_port()
        self.node_proc: subprocess.Popen[bytes] | None = None
        self.node_port = free_port()
        self.node_rpc_url: str | None = None  # the node's own RPC URL (a proxy, in faults)
        self.accounts: dict[str, UnlockedAccount] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.asset_ids: list[int] = []
        self.settings = Settings(home=home)
        self._local = threading.local()
        self._val = load_fashion_mnist_subset("test", limit=60)

    # --- chain ------------------------------------------------------------------------------
    def start_chain(self) -> ChainClient:
        """Start anvil on this world's port; with ``persist_chain``, from and into a state file
        dumped every 2 s, as ``visdm chain up`` runs it."""
        chain_dir = self.home / "chain"
        chain_dir.mkdir(parents=True, exist_ok=True)
        args = [str(find_anvil()), "--host", "127.0.0.1", "--port", str(self.chain_port)]
        args += ["--chain-id", "31337"]
        if self.persist_chain:
            args += ["--state", str(chain_dir / "state.json"), "--state-interval", "2"]
        with (chain_dir / "anvil.log").open("ab") as out:
            self.anvil = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.settings = replace(self.settings, rpc_url=self.rpc_url)
        wait_for("anvil to answer", lambda: _answers(self.rpc_url), 30)
        return self.client()

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.chain_port}"

    def client(self) -> ChainClient:
        return ChainClient(self.rpc_url, timeout_s=10, tx_timeout_s=60)

    def kill_chain(self) -> None:
        """SIGKILL anvil: it loses what it mined since its last state dump."""
        assert self.anvil is not None
        self.anvil.send_signal(signal.SIGKILL)
        self.anvil.wait(timeout=10)

    def stop_chain(self) -> None:
        if self.anvil is not None and self.anvil.poll() is None:
            self.anvil.terminate()  # anvil dumps its state on SIGTERM
            try:
                self.anvil.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.anvil.kill()
                self.anvil.wait(timeout=10)

    # --- cast ------------------------------------------------------------------------------
    def setup(self) -> None:
        """Deploy, create and fund every account, admit the node, register the cast."""
        client = self.start_chain()
        names = ["admin", "node", *self.providers, *self.consumers]
        for name in names:
            key = keccak(text=f"visdm load world {name}")
            import_account(self.settings.keystore_dir, name, key, PASSWORD, scrypt_n=1024)
            self.accounts[name] = load_account(self.settings.keystore_dir, name, PASSWORD)
            self.locks[name] = threading.Lock()
            client.fund_from_dev_faucet(self.accounts[name].address)
        admin = self.accounts["admin"].local_account
        deployment = deploy_marketplace(client, admin, parameters=PARAMETERS)
        deployment.save(self.settings.deployments_dir)
        node = self.accounts["node"]
        admit_node(
            self.settings,
            admin,
            node.address,
            region="local",
            endpoint=self.node_url,
            encryption_key=node.x25519_public.hex(),
        )
        for name in (*self.providers, *self.consumers):
            role = Role.PROVIDER if name in self.providers else Role.CONSUMER
            account = self.accounts[name]
            register(self.as_(name), account.local_account, role, account.x25519_public)

    def as_(self, name: str) -> Settings:
        return replace(self.settings, account=name)

    def add_assets(self) -> list[int]:
        """Each provider registers ``images`` Fashion-MNIST images as one asset (no DP needed
        by its licence, which keeps each job to seconds)."""
        xs, ys = load_fashion_mnist_subset("train", limit=self.images * len(self.providers))
        for k, name in enumerate(self.providers):
            folder = self.home / "photos" / name
            folder.mkdir(parents=True, exist_ok=True)
            rows = ["filename,label"]
            for i in range(k * self.images, (k + 1) * self.images):
                Image.fromarray(xs[i]).save(folder / f"img{i:04d}.png")
                rows.append(f"img{i:04d}.png,{NAMES[int(ys[i])]}")
            (folder / "labels.csv").write_text("\n".join(rows) + "\n")
            licence = Licence(("training",), dp_required=False)
            added = add_asset(self.as_(name), self.accounts[name], folder, licence=licence)
            self.asset_ids.append(added.asset_id)
        return self.asset_ids

    # --- the node -------------------------------------------------------------------------
    @property
    def node_url(self) -> str:
        return f"http://127.0.0.1:{self.node_port}"

    def start_node(self, *, timeout: float = 90.0) -> None:
        env = {
            **os.environ,
            "VISDM_HOME": str(self.home),
            "VISDM_RPC_URL": self.node_rpc_url or self.settings.rpc_url or "",
            "VISDM_ACCOUNT": "node",
            "VISDM_PASSWORD": PASSWORD,
        }
        log = (self.home / "node.log").open("ab")
        with log:
            self.node_proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "visdm",
                    "node",
                    "serve",
                    "--api-port",
                    str(self.node_port),
                    "--poll",
                    str(self.node_poll_s),
                    *self.node_args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for("the node API", self._node_healthy, timeout)

    def _node_healthy(self) -> bool:
        assert self.node_proc is not None
        if self.node_proc.poll() is not None:
            tail = (self.home / "node.log").read_text()[-2000:]
            raise RuntimeError(f"the node exited {self.node_proc.returncode}: {tail}")
        try:
            with self.latencies.time("node GET /health"):
                return httpx.get(f"{self.node_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop_node(self, sig: int = signal.SIGTERM) -> int | None:
        if self.node_proc is None or self.node_proc.poll() is not None:
            return None
        self.node_proc.send_signal(sig)
        try:
            return self.node_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.node_proc.kill()
            return self.node_proc.wait(timeout=10)

    def wait_attested(self, timeout: float = 120.0) -> None:
        conn = connect_deployed(self.settings)
        registry = conn.deployment.asset_registry(conn.client)

        def all_active() -> bool:
            return all(registry.asset(a).status.name == "ACTIVE" for a in self.asset_ids)

        wait_for("the node to attest every asset", all_active, timeout)

    # --- one round ------------------------------------------------------------------------
    def send(self, who: str, action: Callable[[], Any]) -> Any:
        """Run ``action`` holding ``who``'s lock: one transaction sender per account."""
        with self.locks[who]:
            return action()

    def mine(self) -> None:
        client = self.client()
        client.rpc(lambda: client.w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]

    def search(self, index_url: str) -> int:
        from visdm.index import SearchFilters, search_index

        with self.latencies.time("index search"):
            found = search_index(self.settings, SearchFilters(), url=index_url, limit=20)
        return found.total

    def run_round(
        self,
        consumer: str,
        *,
        wtp_bps: int = 500,
        # long enough for every provider's vote on a loaded CI machine (one came 11 s after
        # its proposal there, past a 2 s window); the round waits it out in real time
        voting_s: int = 15,
        index_url: str | None = None,
        timeout: float = 300.0,
        log: RoundLog | None = None,
        hook: Callable[[str, int], None] | None = None,
    ) -> RoundLog:
        """Search, propose, and drive the proposal to a final state; returns its log.
        ``hook(step, proposal_id)`` runs after each step (the fault suite strikes there)."""
        log = log or RoundLog(consumer)
        if index_url is not None:
            self.search(index_url)
            log.steps.append("searched")
        log.proposal_id = self.propose(consumer, wtp_bps=wtp_bps, voting_s=voting_s)
        log.steps.append("proposed")
        if hook is not None:
            hook("proposed", log.proposal_id)
        log.status = self.drive(consumer, log.proposal_id, timeout=timeout, log=log, hook=hook)
        return log

    def propose(self, consumer: str, *, wtp_bps: int, voting_s: int) -> int:
        c = self.accounts[consumer]
        created = self.send(
            consumer,
            lambda: workflow.propose(
                self.as_(consumer),
                c,
                selection=self.asset_ids,
                model_spec=SPEC,
                validation=self._val,
                classes=NAMES,
                offer=10**18,
                wtp_bps=wtp_bps,
                node=self.accounts["node"].address,
                voting_period_s=voting_s,
            ),
        )
        return int(created.proposal_id)

    def drive(
        self,
        consumer: str,
        pid: int,
        *,
        timeout: float = 300.0,
        log: RoundLog | None = None,
        hook: Callable[[str, int], None] | None = None,
    ) -> ProposalStatus:
        """Take proposal ``pid`` from whatever state the chain holds to a final one, doing
        each party's next step; safe to call again after any failure (every step reads the
        chain first), which is what recovery after a fault needs."""
        log = log or RoundLog(consumer, pid)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                step = self._step(consumer, pid, log)
            except _TRANSIENT as exc:
                # what a user does on a one-line error about a peer: try again shortly
                log.retries.append(f"{type(exc).__name__}: {exc}")
                self._local.conn = None
                time.sleep(1.0)
                continue
            if step is None:
                continue
            if step in FINAL_STEPS:
                return ProposalStatus[step.upper()]
            if hook is not None:
                hook(step, pid)
        raise TimeoutError(f"proposal {pid} did not reach a final state in {timeout:.0f} s")

    def reads(self) -> Connection:
        """This thread's connection for reads (transactions open their own through the SDK)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.client.rpc_url != self.rpc_url:
            conn = self._local.conn = connect_deployed(self.settings)
        return conn

    def _step(self, consumer: str, pid: int, log: RoundLog) -> str | None:
        """One party's next step on ``pid``; returns its name (``None``: still waiting)."""
        conn = self.reads()
        market = conn.deployment.training_market(conn.client)
        record = market.proposal(pid)
        s = record.status
        if s is ProposalStatus.VOTING:
            if conn.client.latest_timestamp() < record.voting_deadline:
                self._vote(market, pid)
                self._wait_past(record.voting_deadline)
            self.send(
                "admin", lambda: workflow.tally(self.as_("admin"), self.accounts["admin"], pid)
            )
            step = "tallied"
        elif s is ProposalStatus.APPROVED:
            self._start(consumer, pid)
            step = "started"
        elif s is ProposalStatus.TRAINING:
            with contextlib.suppress(httpx.HTTPError):
                self.job_status(consumer, pid)
            time.sleep(1.0)
            return None
        elif s is ProposalStatus.COUNTERED:
            self.send(
                consumer,
                lambda: workflow.accept_counter(self.as_(consumer), self.accounts[consumer], pid),
            )
            step = "accepted"
        elif s in FINAL:
            self.settle(consumer, pid, s)
            step = s.name.lower()
        else:
            raise ProposalLostError(
                f"proposal {pid} is unknown to the chain: a restarted chain lost it"
            )
        log.steps.append(step)
        return step

    def _vote(self, market: Any, pid: int) -> None:
        for p in self.providers:
            if market.vote_of(pid, self.accounts[p].address) is not None:
                continue
            try:
                self.send(p, lambda p=p: workflow.vote(self.as_(p), self.accounts[p], pid, 0))
            except (ContractRevertError, InvalidInputError) as exc:  # closed meanwhile
                if isinstance(exc, InvalidInputError) and "closed" not in str(exc):
                    raise
                return  # the tally decides with the votes that landed

    def _wait_past(self, deadline: int) -> None:
        while self.client().latest_timestamp() <= deadline:
            time.sleep(0.25)
            self.mine()

    def _start(self, consumer: str, pid: int) -> None:
        c = self.accounts[consumer]
        with self.latencies.time("node POST /quotes"):
            offer = workflow.request_quote(self.as_(consumer), pid, consumer=c)
        conn = connect_deployed(self.settings)
        market = conn.deployment.training_market(conn.client)
        token = conn.deployment.payment_token(conn.client)
        cost = offer.quote.training_cost

        def start() -> None:
            top_up_dev_tokens(conn.client, conn.deployment, c.local_account, cost)
            token.approve(c.local_account, market.address, cost)
            market.start_training(c.local_account, pid, offer.quote, offer.signature)

        self.send(consumer, start)

    def job_status(self, consumer: str, pid: int) -> dict[str, Any] | None:
        c = self.accounts[consumer]
        conn = self.reads()
        client, market = conn.client, conn.deployment.training_market(conn.client)
        request = NodeRequest(pid, c.address, int(time.time()))
        signature = sign_job_status_request(
            bytes(c.local_account.key), client.chain_id, market.address, request
        )
        with self.latencies.time("node GET /jobs/{id}"):
            response = httpx.get(
                f"{self.node_url}/jobs/{pid}",
                headers=job_status_headers(request, signature),
                timeout=10,
            )
        return dict(response.json()) if response.status_code == 200 else None

    def settle(self, consumer: str, pid: int, status: ProposalStatus) -> None:
        """Providers claim (and withdraw); the consumer withdraws a refund."""
        if status is ProposalStatus.COMPLETED:
            for p in self.providers:
                self.send(p, lambda p=p: workflow.claim(self.as_(p), self.accounts[p], [pid]))
        self.send(consumer, lambda: workflow.withdraw(self.as_(consumer), self.accounts[consumer]))

    def drive_all(self, *, timeout: float = 300.0) -> dict[int, ProposalStatus]:
        """Drive every proposal on chain to a final state and settle it again: what each party
        does on noticing that the chain lost blocks it had seen (claims, withdrawals)."""
        conn = self.reads()
        market = conn.deployment.training_market(conn.client)
        out: dict[int, ProposalStatus] = {}
        for pid in range(1, market.proposal_count() + 1):
            consumer = next(
                n
                for n in self.consumers
                if self.accounts[n].address == market.proposal(pid).consumer
            )
            out[pid] = self.drive(consumer, pid, timeout=timeout)
        return out

    def withdraw_all(self) -> None:
        """The node withdraws its training fees."""
        self.send("node", lambda: workflow.withdraw(self.as_("node"), self.accounts["node"]))

    # --- books ------------------------------------------------------------------------------
    def books(self) -> BooksReport:
        conn = connect_deployed(self.settings)
        d = conn.deployment
        ledger = read_ledger(
            d.training_market(conn.client),
            d.payment_token(conn.client),
            court=d.result_court(conn.client),
        )
        return audit(ledger)

    def close(self) -> None:
        self.stop_node(signal.SIGKILL)
        self.stop_chain()


def _answers(url: str) -> bool:
    try:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        return httpx.post(url, json=body, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
