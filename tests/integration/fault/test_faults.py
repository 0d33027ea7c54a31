"""Faults at seeded random points of real rounds: the serving node SIGKILLed and restarted,
anvil SIGKILLed and restarted from its state file, the store gone for a while, JSON-RPC
refused, lost, failed and delayed between the node and the chain. After recovery every
proposal reaches a final state and the market's books balance (:mod:`visdm.market.books`)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.fault._proxy import FaultyRpcProxy
from tests.integration.fault._world import FINAL, ProposalLostError, World
from tests.integration.fault.conftest import SEED
from visdm.chain.contracts import ProposalStatus
from visdm.index import open_database, parse_index_url, sync_index
from visdm.market.books import BooksReport, index_differences

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = ("proposed", "tallied", "started")


def assert_books(world: World) -> BooksReport:
    report = world.books()
    report.raise_if_unbalanced()
    assert report.pending == 0, [p for p in report.proposals if not p.final]
    assert all(p.status in FINAL for p in report.proposals)
    assert report.escrowed == report.paid + report.refunded + report.held
    return report


def results_of(world: World, pid: int) -> int:
    conn = world.client()
    from visdm.session import connect_deployed

    market = connect_deployed(world.settings).deployment.training_market(conn)
    return len(market.logs("ResultSubmitted", where={"proposalId": pid}))


def test_node_sigkill_at_a_seeded_step_then_restart(world: World) -> None:
    rng = random.Random(SEED)
    strike, pause = rng.choice(STEPS), rng.uniform(0.0, 1.5)
    struck: list[str] = []

    def hook(step: str, pid: int) -> None:
        if step == strike and not struck:
            time.sleep(pause)
            assert world.stop_node(signal.SIGKILL) == -signal.SIGKILL
            struck.append(step)
            world.start_node()

    log = world.run_round("c0", hook=hook)
    assert struck == [strike], (strike, log.steps)
    assert log.status is ProposalStatus.COMPLETED, log.steps
    assert results_of(world, log.proposal_id) == 1  # posted once, after the restart
    assert_books(world)


def test_anvil_sigkill_at_a_seeded_step_then_restart_from_state(world: World) -> None:
    rng = random.Random(SEED + 1)
    strike, pause = rng.choice(STEPS), rng.uniform(0.0, 3.0)
    struck: list[str] = []

    def hook(step: str, pid: int) -> None:
        if step == strike and not struck:
            time.sleep(pause)
            world.kill_chain()
            struck.append(step)
            world.start_chain()

    try:
        log = world.run_round("c0", hook=hook)
    except ProposalLostError:
        # the kill came before anvil dumped the proposal: the consumer proposes again
        log = world.run_round("c0")
    assert struck == [strike], (strike, log.steps)
    assert log.status is ProposalStatus.COMPLETED, log.steps
    assert results_of(world, log.proposal_id) == 1
    # the kill may also have taken claims and withdrawals of earlier rounds: they are redone
    assert set(world.drive_all().values()) <= FINAL
    assert_books(world)


def test_store_away_while_rpc_is_refused_lost_failed_and_delayed(
    world: World, proxy: FaultyRpcProxy
) -> None:
    """One round with both kinds of outage (they share it to keep the suite's CPU time
    down): the node's JSON-RPC gets a fault on 5 % of requests throughout, and the store is
    gone for a seeded while just as training starts. The node may give the job up (a fault
    while it loads the proposal document uses up one of its attempts; docs/load-and-faults.md
    says so): then the consumer is refunded in full, which the books check."""
    rng = random.Random(SEED + 2)
    outage = rng.uniform(1.0, 3.0)
    store = world.settings.store_dir
    aside = store.with_name(store.name + ".away")

    def hook(step: str, pid: int) -> None:
        if step == "started":
            shutil.move(store, aside)  # the node finds no blobs while the job starts
            time.sleep(outage)
            shutil.move(aside, store)

    proxy.rate = 0.05
    try:
        log = world.run_round("c0", hook=hook)
    finally:
        proxy.rate = 0.0
        if aside.exists():
            shutil.move(aside, store)
    assert sum(proxy.counts.values()) > 0, "no fault was injected"
    assert log.status in {ProposalStatus.COMPLETED, ProposalStatus.CANCELLED}, log.steps
    assert results_of(world, log.proposal_id) == (log.status is ProposalStatus.COMPLETED)
    line = next(p for p in assert_books(world).proposals if p.proposal_id == log.proposal_id)
    if log.status is ProposalStatus.CANCELLED:  # abandoned: price and training cost refunded
        assert line.refunded == line.escrowed and line.paid == 0


def test_index_sync_sigkilled_then_rerun_equals_a_fresh_sync(world: World) -> None:
    """``visdm market sync`` SIGKILLed at a seeded moment (starting, reading the chain,
    fetching documents, writing): the next sync brings the same index as one rebuilt from
    block 0 — each block range commits whole or not at all."""
    market = world.reads().deployment.training_market(world.reads().client)
    if market.proposal_count() == 0:  # run on its own: give the index a round to hold
        world.run_round("c0")
    rng = random.Random(SEED + 3)
    # a whole sync of this world takes about 0.65 s after it opens its database here
    kill_after = rng.uniform(0.1, 0.5)
    path = world.home / "killed-index.sqlite3"
    url = f"sqlite:///{path}"
    env = {**os.environ, "VISDM_HOME": str(world.home), "VISDM_RPC_URL": world.rpc_url}
    argv = [sys.executable, "-m", "visdm", "market", "sync", "--index-url", url]
    with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        # strike once the sync has its database open: it is reading, fetching or writing
        while not path.exists() and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    sync_index(world.settings, url=url)
    fresh = f"sqlite:///{world.home / 'fresh-index.sqlite3'}"
    sync_index(world.settings, url=fresh, rebuild=True)
    with open_database(parse_index_url(url)) as synced, open_database(parse_index_url(fresh)) as f:
        assert synced.scalar("SELECT COUNT(*) FROM proposals") == market.proposal_count()
        assert index_differences(synced, f) == []
