"""Training jobs run at once within the node's budget, on anvil with the real sandbox and real
PyTorch: two jobs train at the same time and a third waits while the budget is full, then
runs; each sandbox is limited to its grant; a job over the whole budget is refused at quote
time (over HTTP, as the consumer's client sees it) and, when it arrives anyway, abandoned on
chain so that its consumer is refunded; a node stopping mid-job kills the sandbox and queues
the job again without spending an attempt, its claim released for the next run; a job that
lies about its size fails alone, within its grant."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.compute.roundkit import MLP_SPEC, Round
from tests.integration.compute.test_node_api import serve
from visdm.chain.contracts import ProposalStatus, Quote
from visdm.compute import _training
from visdm.compute._budget import JOB_OVERHEAD_BYTES, NodeBudget, Requirement, Scheduler, Waiting
from visdm.compute._jobs import JobJournal
from visdm.compute.api import QuoteService
from visdm.compute.sandbox import (
    SandboxJob,
    SandboxLimits,
    SandboxResult,
    SandboxStatus,
    run_in_sandbox,
)
from visdm.market import workflow
from visdm.market.workflow import NodeUnreachableError

pytestmark = pytest.mark.integration

GiB = 1 << 30
#: one epoch: these tests are about the node's mechanics, not the model
SPEC = {**MLP_SPEC, "epochs": 1}
#: holds two of these small jobs (about 2.1 GiB each) and not three
TWO_JOBS = NodeBudget(jobs=3, cpus=2, memory_bytes=5 * GiB)
TOO_SMALL = NodeBudget(jobs=1, cpus=1, memory_bytes=GiB)
ALLOC = "visdm.compute.sandbox._testjobs:allocate"
ECHO = "visdm.compute.sandbox._testjobs:echo"


@pytest.fixture
def images_per_provider() -> int:
    return 20


def started(rnd: Round, quotes: QuoteService | None = None) -> int:
    """A proposal in training; ``quotes`` may be shared (it checks a spec's design once)."""
    pid = rnd.propose(wtp_bps=0, spec=SPEC)
    rnd.approve(pid)
    answer = (quotes or rnd.quotes()).quote(pid)
    q = answer["quote"]
    quote = Quote(pid, int(q["trainingCostWei"]), int(q["maxDuration"]), int(q["expiry"]))
    consumer = rnd.accounts["consumer"].local_account
    rnd.token.approve(consumer, rnd.market.address, quote.training_cost)
    rnd.market.start_training(consumer, pid, quote, bytes.fromhex(answer["signature"][2:]))
    return pid


class SandboxSpy:
    """Records when each real sandboxed run starts and ends, and the limits it was given."""

    def __init__(self, real: Callable[..., SandboxResult]) -> None:
        self.real = real
        self.runs: dict[str, tuple[float, float, SandboxJob]] = {}
        self.lock = threading.Lock()

    def __call__(self, job: SandboxJob, **kwargs: Any) -> SandboxResult:
        begin = time.monotonic()
        try:
            return self.real(job, **kwargs)
        finally:
            with self.lock:
                self.runs[job.job_id] = (begin, time.monotonic(), job)


@pytest.mark.slow
def test_two_jobs_train_at_once_and_a_third_waits_for_room(
    rnd: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    quotes = rnd.quotes()
    pids = [started(rnd, quotes) for _ in range(3)]
    spy = SandboxSpy(_training.run_in_sandbox)
    monkeypatch.setattr(_training, "run_in_sandbox", spy)
    worker = rnd.trainer(budget=TWO_JOBS)
    try:
        assert worker.poll() == 3
        jobs = [worker.journal.get(pid) for pid in pids]
    finally:
        worker.close()
    for job in jobs:
        assert job is not None
        assert (job.state, job.attempts) == ("submitted", 1), job.message
    for pid in pids:
        assert rnd.market.proposal(pid).status in (
            ProposalStatus.COMPLETED,
            ProposalStatus.WTP_MISSED,
        )
    (a0, a1, ja), (b0, b1, _), (c0, _, _) = (spy.runs[f"proposal-{p}"] for p in pids)
    # the first two (earliest deadlines) overlapped; the third started only once one had ended
    assert a0 < b1 and b0 < a1, spy.runs
    assert c0 >= min(a1, b1), spy.runs
    # each sandbox ran under its grant: address space and threads, within the budget together
    assert ja.limits.threads == 1
    assert JOB_OVERHEAD_BYTES <= ja.limits.memory_bytes < TWO_JOBS.memory_bytes // 2


def test_a_job_over_the_whole_budget_is_refused_and_abandoned_if_it_arrives(
    rnd: Round,
) -> None:
    pid = rnd.propose(wtp_bps=0, spec=SPEC)
    rnd.approve(pid)
    # the consumer's client prints the node's reason, naming the requirement and the budget
    with (
        serve(rnd, rnd.quotes(budget=TOO_SMALL)) as http,
        pytest.raises(NodeUnreachableError) as said,
    ):
        workflow.request_quote(
            rnd.settings,
            pid,
            consumer=rnd.accounts["consumer"],
            node_url_override=str(http.base_url).rstrip("/"),
        )
    line = str(said.value)
    assert "422 OverBudget" in line
    assert "GiB of memory, over the node's budget of 1.00 GiB" in line
    assert "\n" not in line
    # quoted by the node before it restarted with the smaller budget: abandoned with the
    # reason, and the consumer refunded at once
    rnd.start(pid)
    consumer = rnd.accounts["consumer"].address
    credit = rnd.market.credit_of(consumer)
    worker = rnd.trainer(budget=TOO_SMALL)
    try:
        worker.poll()
        job = worker.journal.get(pid)
    finally:
        worker.close()
    assert job is not None
    assert job.state == "abandoned"
    assert "can never run on this node" in job.message and "1.0 GiB" in job.message
    assert rnd.market.proposal(pid).status == ProposalStatus.CANCELLED
    assert rnd.market.credit_of(consumer) > credit


def test_stopping_the_node_kills_the_running_sandbox_and_queues_the_job_again(
    rnd: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = started(rnd)
    spy = SandboxSpy(_training.run_in_sandbox)
    monkeypatch.setattr(_training, "run_in_sandbox", spy)
    worker = rnd.trainer(budget=TWO_JOBS)
    pool = worker.pool
    assert pool is not None
    try:
        assert worker.poll(wait=False) == 1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the job is in its sandbox
            job = worker.journal.get(pid)
            if job is not None and job.state == "training":
                break
            time.sleep(0.1)
        pool.stop()
        assert not pool.running()
        job = worker.journal.get(pid)
    finally:
        worker.close()
    assert job is not None
    assert (job.state, job.attempts) == ("queued", 0), job.message
    assert "the node stopped" in job.message
    # the sandboxed run had ended (its process group killed and reaped) when stop() returned
    _, _, ran = spy.runs[f"proposal-{pid}"]
    assert ran.limits.memory_bytes < TWO_JOBS.memory_bytes
    # the claim is released: a later run of the node claims the job again
    assert worker_claim_free(rnd, pid)


def worker_claim_free(rnd: Round, pid: int) -> bool:
    journal = JobJournal(rnd.settings.node_dir / "jobs.sqlite3")
    try:
        return journal.runner(pid) is None and journal.claim(pid, "a later run")
    finally:
        journal.close()


@pytest.mark.attack
def test_a_job_that_lies_about_its_size_fails_alone_within_its_grant(tmp_path: Path) -> None:
    """A job granted 256 MiB that takes 1 GiB runs out of memory in its own sandbox while the
    job granted beside it completes; with the defence off (each sandbox given the whole
    budget), the liar takes its gigabyte."""
    budget = NodeBudget(jobs=2, cpus=2, memory_bytes=2 * GiB)
    scheduler = Scheduler(budget)
    small = Requirement(threads=1, sandbox_bytes=256 << 20, memory_bytes=256 << 20)
    granted = scheduler.select([Waiting(1, 0, small), Waiting(2, 1, small)])
    assert [w.key for w in granted] == [1, 2]

    def run(name: str, memory_bytes: int, entry: str, params: dict[str, Any]) -> SandboxResult:
        inp, out = tmp_path / name / "in", tmp_path / name / "out"
        inp.mkdir(parents=True)
        out.mkdir()
        (inp / "note.txt").write_text("honest")
        limits = SandboxLimits(memory_bytes=memory_bytes, threads=1, wall_s=60)
        job = SandboxJob(
            job_id=name, entry_point=entry, input_dir=inp, output_dir=out, limits=limits,
            params=params,
        )  # fmt: skip
        return run_in_sandbox(job, allowed_entry_points={entry})

    lie = {"chunk_mib": 64, "total_mib": 1024}
    results: dict[str, SandboxResult] = {}
    liar = threading.Thread(
        target=lambda: results.__setitem__("liar", run("liar", small.sandbox_bytes, ALLOC, lie))
    )
    liar.start()
    results["honest"] = run("honest", small.sandbox_bytes, ECHO, {})
    liar.join()
    assert results["liar"].status is SandboxStatus.MEMORY_EXCEEDED, results["liar"].error
    assert results["honest"].ok, results["honest"].error
    # the defence off: a sandbox limited only by the whole budget lets the lie through
    unlimited = run("liar-unlimited", budget.memory_bytes, ALLOC, lie)
    assert unlimited.ok and unlimited.return_value == {"held_mib": 1024}
