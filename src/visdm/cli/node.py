"""``visdm node serve|status|jobs``: run a compute node."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import typer

from visdm.config import Settings
from visdm.errors import ChainNotRunningError, InvalidInputError

from ._common import JsonOption, console, emit, settings, unlock_account

if TYPE_CHECKING:
    from visdm.compute import AssetWorker, ScoringWorker, TrainingConfig, TrainingWorker
    from visdm.compute._budget import NodeBudget
    from visdm.compute._serve import ServeLock
    from visdm.verify import VerifyWorker

__all__ = ["app"]

app = typer.Typer(help="Run a compute node: attest asset metadata, quote and run training rounds.")

_log = logging.getLogger("visdm.node")


@app.command("serve")
def serve(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Handle what is pending, then exit."),
    confirmations: int = typer.Option(0, "--confirmations", help="Blocks to wait before acting."),
    poll: float = typer.Option(1.0, "--poll", help="Seconds between polls of the chain."),
    api_host: str | None = typer.Option(
        None, "--api-host", help="Listen address (default: the endpoint registered on chain)."
    ),
    api_port: int | None = typer.Option(
        None, "--api-port", help="Listen port (default: the registered endpoint's, else free)."
    ),
    price_per_gflop: str = typer.Option(
        "0.000001", "--price-per-gflop", help="Training price per GFLOP (tokens, or NNNwei)."
    ),
    max_duration: int = typer.Option(
        3600, "--max-duration", help="Seconds of training a quote promises at most."
    ),
    allow_unsandboxed: bool = typer.Option(
        False,
        "--allow-unsandboxed",
        help="DEVELOPMENT ONLY: run jobs without bubblewrap when it is unavailable.",
    ),
    score: bool = typer.Option(
        False, "--score", help="When no training job waits, claim and score scoring-pool batches."
    ),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Also check other nodes' results: re-execute a share, confirm or challenge, vote "
        "when drawn to a committee, settle after the window.",
    ),
    verify_share: float = typer.Option(
        0.25, "--verify-share", help="With --verify: the share of results to re-execute (0-1)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="With --once: print what was handled as JSON instead of text."
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        help="Training jobs run at once (default: as many as --cpus and --memory hold, one CPU "
        "and 2 GiB each).",
    ),
    cpus: int | None = typer.Option(
        None,
        "--cpus",
        help="CPUs the jobs share; each gets cpus // jobs threads (default: every CPU this "
        "process may use).",
    ),
    memory: float | None = typer.Option(
        None,
        "--memory",
        help="GiB of memory the jobs share; each job's sandbox is limited to its grant "
        "(default: 3/4 of the memory available at start, at least 2).",
    ),
) -> None:
    """Follow the chain: attest assets, serve quotes, train (Ctrl-C stops).

    Training jobs run at once within the budget of --jobs, --cpus and --memory, in deadline
    order as they fit; a quote for a job larger than the whole budget is refused. Stopping
    (Ctrl-C, SIGTERM) kills the running jobs' sandboxes and queues the jobs again.

    One node per data directory: a second ``serve`` (or ``--once``) is refused while one runs.
    The chain may go away and come back (``visdm chain down`` / ``chain up``, even on another
    port): the node says so once, waits, and carries on where it stopped.
    """
    from visdm.compute._budget import budget_from_options
    from visdm.compute._serve import ServeLock

    budget = budget_from_options(jobs=jobs, cpus=cpus, memory_gib=memory)  # refused before all
    cfg = settings(ctx)
    with ServeLock(cfg.node_dir / "serve.lock"):
        _serve(
            cfg,
            once=once,
            confirmations=confirmations,
            poll=poll,
            api_host=api_host,
            api_port=api_port,
            price_per_gflop=price_per_gflop,
            max_duration=max_duration,
            allow_unsandboxed=allow_unsandboxed,
            score=score,
            verify_share=verify_share if verify else None,
            as_json=as_json,
            budget=budget,
        )


def _serve(
    cfg: Settings,
    *,
    once: bool,
    confirmations: int,
    poll: float,
    api_host: str | None,
    api_port: int | None,
    price_per_gflop: str,
    max_duration: int,
    allow_unsandboxed: bool,
    score: bool = False,
    verify_share: float | None = None,
    as_json: bool = False,
    budget: NodeBudget | None = None,
) -> None:
    from visdm.compute import AssetWorker, NodeConfig, TrainingConfig
    from visdm.compute._serve import ApiServer, api_address
    from visdm.compute.api import QuoteService, create_app
    from visdm.session import connect, connect_deployed, open_store

    account = unlock_account(cfg)
    conn = connect_deployed(cfg)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if allow_unsandboxed:
        _log.warning(
            "--allow-unsandboxed: training jobs may run WITHOUT the sandbox when bubblewrap is "
            "unavailable; never use this with real data"
        )
    store = open_store(cfg)
    from .rounds import parse_amount

    me = conn.deployment.stakeholder_registry(conn.client).compute_node(account.address)
    if me.admitted and me.signer != account.address:
        raise InvalidInputError(
            f"governance registered {me.signer} as this node's signer, but the node runs as "
            f"{account.address}: quotes and model deliveries would not verify; run the node as "
            "its signer or ask governance to re-admit it"
        )
    training_config = TrainingConfig(
        workdir=cfg.node_dir,
        price_per_gflop=parse_amount(price_per_gflop, "--price-per-gflop"),
        max_duration_s=max_duration,
        allow_unsandboxed=allow_unsandboxed,
        budget=budget,
    )
    # built first: a refusal (no court, a bad share) leaves nothing open
    verifier = (
        None
        if verify_share is None
        else _verify_worker(cfg, conn, store, account, verify_share, training_config)
    )
    assets = AssetWorker(
        conn.client,
        conn.deployment,
        store,
        account,
        NodeConfig(workdir=cfg.node_dir, confirmations=confirmations, poll_interval_s=poll),
    )
    training = _training_worker(cfg, conn, store, account, training_config)
    scoring = _scoring_worker(cfg, conn, store, account, allow_unsandboxed) if score else None

    def score_when_idle() -> int:
        # training jobs come first: a batch is claimed only while none waits
        if scoring is None:
            return 0
        return scoring.poll(idle=not training.journal.pending())

    account_lock = _account_lock(conn, account.address)
    api = None
    try:
        if once:
            counts = {
                "assetEvents": assets.poll(),
                "trainingJobs": training.poll(confirmations=confirmations),
                "scoringBatches": score_when_idle(),
            }
            if verifier is not None:
                counts["verificationTransactions"] = verifier.poll(confirmations=confirmations)
            _report_once(counts, assets.state.cursor(), as_json=as_json)
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        endpoint = (
            conn.deployment.stakeholder_registry(conn.client).compute_node(account.address).endpoint
        )
        host, port = api_address(endpoint, api_host, api_port)
        # the API gets its own chain client: web3 providers are not shared across threads
        quotes = QuoteService(connect(cfg), conn.deployment, store, account, training_config)
        api = ApiServer(
            create_app(quotes, cfg.node_dir / "jobs.sqlite3"), host, port, cfg.node_dir / "api.json"
        )
        url = api.start()
        console.print(
            f"node {account.address} following chain {conn.client.chain_id}; API {url}; "
            + ("jobs one at a time" if budget is None else f"budget {budget.describe()}")
        )
        # checking other nodes' results comes after this node's own work
        checks = (
            ()
            if verifier is None
            else (partial(verifier.poll, confirmations=confirmations, should_stop=stop.is_set),)
        )
        steps: tuple[Callable[[], object], ...] = (
            lambda: training.poll(confirmations=confirmations, should_stop=stop.is_set, wait=False),
            score_when_idle,
            *checks,
        )
        presence = _ChainPresence()
        with _attesting(cfg, assets, stop, poll, presence):  # never behind a training job
            _follow(steps, stop, poll, lambda: conn.client.rpc_url, presence)
    finally:
        training.close()  # first: running sandboxes are killed, their jobs queued again
        account_lock.release()
        if api is not None:
            api.stop()
        for worker in (assets, scoring, verifier):
            if worker is not None:
                worker.close()


@contextlib.contextmanager
def _attesting(
    cfg: Settings,
    assets: AssetWorker,
    stop: threading.Event,
    poll: float,
    presence: _ChainPresence,
) -> Iterator[None]:
    """Attest assets in a thread of its own while the body runs: with a chain client, a store
    and a state connection of its own (web3 providers and SQLite connections stay in their
    thread; nonces are shared by the process), so that a provider's asset is attested while
    the node trains. ``assets`` (opened to check the node before serving) hands over its
    config and is closed."""
    from visdm.compute import AssetWorker
    from visdm.session import connect_deployed, open_store

    assets.close()
    account, config = assets.account, assets.config

    def run() -> None:
        worker = None
        while worker is None and not stop.is_set():
            try:
                conn = connect_deployed(cfg)
                worker = AssetWorker(conn.client, conn.deployment, open_store(cfg), account, config)
            except Exception as exc:  # the chain away, say: the node keeps trying
                _log.error("attestation cannot start yet, retrying: %s", exc)
                stop.wait(poll)
        if worker is None:
            return
        try:
            _follow((worker.poll,), stop, poll, lambda: conn.client.rpc_url, presence)
        finally:
            worker.close()

    thread = threading.Thread(target=run, name="visdm-attest", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def _account_lock(conn: Any, address: str) -> ServeLock:
    """Take the lock of one node per account on this machine and market, whichever data
    directory it serves from."""
    from visdm.compute._serve import ServeLock

    genesis = conn.client.rpc(lambda: conn.client.w3.eth.get_block(0))["hash"]
    market = conn.deployment.address_of("TrainingMarket")
    lock = ServeLock.for_account(bytes(genesis), market, address)
    lock.acquire()
    return lock


def _training_worker(
    cfg: Settings, conn: Any, store: Any, account: Any, config: TrainingConfig
) -> TrainingWorker:
    from visdm.compute import TrainingWorker
    from visdm.session import connect, open_store

    # each concurrent job gets a chain client and a store of its own
    return TrainingWorker(
        conn.client,
        conn.deployment,
        store,
        account,
        config,
        opener=lambda: (connect(cfg), open_store(cfg)),
    )


def _scoring_worker(
    cfg: Settings, conn: Any, store: Any, account: Any, allow_unsandboxed: bool
) -> ScoringWorker:
    from visdm.compute import ScoringConfig, ScoringWorker

    config = ScoringConfig(workdir=cfg.node_dir, allow_unsandboxed=allow_unsandboxed)
    return ScoringWorker(conn.client, conn.deployment, store, account, config)


def _report_once(counts: dict[str, int], cursor: int | None, *, as_json: bool) -> None:
    if as_json:
        emit({**counts, "cursor": cursor}, as_json=True)
        return
    checks = counts.get("verificationTransactions")
    console.print(
        f"handled {counts['assetEvents']} asset event(s), {counts['trainingJobs']} training "
        f"job(s) and {counts['scoringBatches']} scoring batch(es)"
        + ("" if checks is None else f", {checks} verification transaction(s)")
        + f"; cursor at block {cursor}"
    )


def _verify_worker(
    cfg: Settings, conn: Any, store: Any, account: Any, share: float, training: Any
) -> VerifyWorker:
    """The node's verifier: its journal and re-executions under ``verify/`` in the node dir."""
    from visdm.verify import VerifyConfig, VerifyWorker

    config = VerifyConfig(workdir=cfg.node_dir / "verify", share=share, training=training)
    return VerifyWorker(conn.client, conn.deployment, store, account, config)


class _ChainPresence:
    """Whether the chain was last seen away, shared by the node's loops so that the node says
    once that it went away, and once that it is back, whichever loop notices."""

    def __init__(self) -> None:
        self._away = False
        self._lock = threading.Lock()

    def went_away(self, exc: Exception) -> None:
        with self._lock:
            if not self._away:
                _log.warning("the chain went away, waiting for it: %s", exc)
            self._away = True

    def answered(self, where: Callable[[], str]) -> None:
        with self._lock:
            if self._away:
                _log.warning("the chain is back at %s: carrying on", where())
            self._away = False


def _follow(
    steps: Sequence[Callable[[], object]],
    stop: threading.Event,
    poll: float,
    where: Callable[[], str],
    presence: _ChainPresence,
) -> None:
    """Run ``steps`` every ``poll`` seconds until ``stop``: a failing step is logged and
    retried, never fatal. While the chain cannot be reached the node says so once (not every
    poll) and waits; the chain client finds it again, on its new port if it moved."""
    while not stop.is_set():
        for step in steps:
            try:
                step()
            except ChainNotRunningError as exc:
                presence.went_away(exc)
                break
            except Exception as exc:
                _log.error("poll failed, retrying: %s", exc)
            else:
                presence.answered(where)
        stop.wait(poll)


@app.command("status")
def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """What this node did with each asset (from its local state; no password needed)."""
    from visdm.compute import NodeState

    cfg = settings(ctx)
    path = cfg.node_dir / "state.sqlite3"
    cursor: int | None = None
    outcomes: list[object] = []
    if path.exists():
        state = NodeState(path)
        try:
            cursor, outcomes = state.cursor(), list(state.outcomes())
        finally:
            state.close()
    if as_json:
        emit({"cursor": cursor, "assets": outcomes}, as_json=True)
        return
    emit(outcomes, as_json=False, title=f"node state (cursor {cursor})")


@app.command("jobs")
def jobs(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """This node's training jobs and their states (from its journal; no password needed)."""
    from visdm.compute import JobJournal

    cfg = settings(ctx)
    path = cfg.node_dir / "jobs.sqlite3"
    if not path.exists():
        emit([], as_json=as_json, title="training jobs")
        return
    journal = JobJournal(path, read_only=True)
    try:
        rows = [
            {k: v for k, v in j.to_json().items() if k not in ("result", "submission")}
            for j in journal.jobs()
        ]
        emit(rows, as_json=as_json, title="training jobs")
    finally:
        journal.close()
