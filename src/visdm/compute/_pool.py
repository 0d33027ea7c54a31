"""The training worker's jobs run at once within the node's budget (:mod:`._budget`).

:class:`TrainingPool` sizes each pending job (:func:`._quoting.proposal_requirement`: the design
check's memory estimate for the job's selection), asks the :class:`~._budget.Scheduler` which
start now, claims each in the journal (one conditional update: a job never runs twice) and runs
it in a thread of its own with a chain client, a store handle and a journal connection of its
own (web3 providers and SQLite connections stay in their thread; nonces are shared by the
process). The job's sandbox gets its grant as hard limits: ``RLIMIT_AS`` the address space it
was granted, its thread share as the thread count of its numeric libraries.

A job over the whole budget (quoted before the node restarted with a smaller one) is abandoned
on chain with the reason, so its consumer is refunded at once. A job that cannot be sized
(its document or spec is unusable) gets the smallest requirement: the worker then fails it
the usual way, before any sandbox starts.

Stopping (:meth:`TrainingPool.stop`) abandons nothing on chain: each running sandbox is killed,
its job goes back to the queue without spending an attempt, and the threads are joined, so no
sandbox process outlives the node. A SIGKILL of the node leaves jobs claimed by a run that no
longer exists; the next run claims them again and re-runs them from the journal as before.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from visdm.chain.client import ChainClient
from visdm.errors import (
    ChainNotRunningError,
    ChainTimeoutError,
    InvalidModelSpecError,
    SandboxUnavailableError,
    StorageUnavailableError,
    VisdmError,
)
from visdm.jsonsafe import load_untrusted_json
from visdm.proposals import load_checked_proposal
from visdm.training._spec import MAX_SPEC_BYTES

from ._budget import NodeBudget, Requirement, Scheduler, Waiting, job_requirement
from ._jobs import Job, JobJournal
from ._quoting import budget_refusal, proposal_requirement, run_design_check

if TYPE_CHECKING:
    from ._training import TrainingWorker

__all__ = ["TrainingPool"]

log = logging.getLogger("visdm.node.training")

#: how long :meth:`TrainingPool.stop` waits for a job thread after its sandbox was killed
#: (what is left after the sandbox is short: journaling, or a transaction already under way)
_STOP_JOIN_S = 120.0
_NOTHING = Requirement(threads=0, sandbox_bytes=0, memory_bytes=0)
_AWAY = (ChainNotRunningError, ChainTimeoutError, StorageUnavailableError)
#: the node's own machinery away: the job was queued again, said in one line
_OUTAGES = (*_AWAY, SandboxUnavailableError)


class TrainingPool:
    """Runs ``owner``'s pending jobs concurrently within ``budget``; ``spawn`` makes each job
    thread's own worker for a grant (default: :func:`job_worker`)."""

    def __init__(
        self,
        owner: TrainingWorker,
        budget: NodeBudget,
        spawn: Callable[[Requirement, threading.Event], TrainingWorker] | None = None,
    ) -> None:
        self.owner = owner
        self.budget = budget
        self.scheduler = Scheduler(budget)
        self.runner = uuid.uuid4().hex  # this run's name in the journal's claims
        self.cancel = threading.Event()
        self._spawn = spawn or (lambda grant, cancel: job_worker(owner, grant, cancel))
        self._ended = threading.Condition()
        self._threads: dict[int, threading.Thread] = {}
        self._needs: dict[int, Requirement] = {}
        self._lock = threading.Lock()
        self.finished = 0

    # --- dispatching -----------------------------------------------------------------------
    def poll(self, *, should_stop: Callable[[], bool] | None = None, wait: bool = True) -> int:
        """Start the owner's pending jobs that fit; with ``wait``, go on starting them as
        running ones end until each pending job has run once (returns how many ran), else
        return how many started now."""
        journal = self.owner.journal
        if not wait:
            return len(self.dispatch(journal.pending()))
        handled: set[int] = set()
        while not (should_stop is not None and should_stop()):
            fresh = [j for j in journal.pending() if j.proposal_id not in handled]
            handled |= set(self.dispatch(fresh))
            if not self.running():
                break  # nothing runs, so nothing that waits can start in this poll
            self.wait_any()
        self.wait()
        return len(handled)

    def wait_any(self, timeout_s: float = 1.0) -> None:
        """Until a running job ends (or ``timeout_s``)."""
        with self._ended:
            self._ended.wait(timeout=timeout_s)

    def dispatch(self, jobs: Sequence[Job]) -> list[int]:
        """Start the pending ``jobs`` that fit now; returns the proposal ids started."""
        self._reap()
        waiting: list[Waiting] = []
        for job in jobs:
            if self.running(job.proposal_id) or self.cancel.is_set():
                continue
            # a journaled result only needs sending: no sandbox, nothing to size
            need = _NOTHING if job.submission is not None else self._need(job.proposal_id)
            why = budget_refusal(need, self.budget)
            if why is not None:
                self.owner.refuse_over_budget(job.proposal_id, why)
                continue
            waiting.append(Waiting(job.proposal_id, job.deadline, need))
        started: list[int] = []
        for chosen in self.scheduler.select(waiting):
            pid = chosen.key
            with self.owner.journal.transaction():
                claimed = self.owner.journal.claim(pid, self.runner)
            if not claimed:  # final meanwhile, or this run holds it already
                self.scheduler.release(pid)
                continue
            thread = threading.Thread(
                target=self._run, args=(pid, chosen.need), name=f"visdm-job-{pid}", daemon=True
            )
            with self._lock:
                self._threads[pid] = thread
            log.info("proposal %d: starting with %s", pid, chosen.need.describe())
            thread.start()
            started.append(pid)
        return started

    def running(self, proposal_id: int | None = None) -> bool:
        """Whether that job (or any job) runs in a thread now."""
        with self._lock:
            alive = {p for p, t in self._threads.items() if t.is_alive()}
        return bool(alive) if proposal_id is None else proposal_id in alive

    def wait(self, should_stop: Callable[[], bool] | None = None) -> None:
        """Until every running job has ended (or ``should_stop()``)."""
        while self.running() and not (should_stop is not None and should_stop()):
            with self._lock:
                threads = list(self._threads.values())
            for thread in threads:
                thread.join(timeout=0.2)
        self._reap()

    def stop(self, timeout_s: float = _STOP_JOIN_S) -> None:
        """Kill every running sandbox and join the job threads; their jobs are queued again
        without spending an attempt."""
        self.cancel.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=timeout_s)
            if thread.is_alive():
                log.error("%s did not end within %.0f s of the stop", thread.name, timeout_s)
        self._reap()

    def _reap(self) -> None:
        with self._lock:
            for pid in [p for p, t in self._threads.items() if not t.is_alive()]:
                del self._threads[pid]
                self._needs.pop(pid, None)

    # --- one job -----------------------------------------------------------------------------
    def _run(self, proposal_id: int, grant: Requirement) -> None:
        worker = None
        try:
            worker = self._spawn(grant, self.cancel)
            worker.process(proposal_id)
        except _OUTAGES as exc:
            log.warning("proposal %d: queued again, waiting: %s", proposal_id, exc)
        except Exception:  # a job's failure is journaled by process(); this is a bug's trace
            log.exception("proposal %d: the job's thread failed", proposal_id)
        finally:
            try:
                if worker is not None:
                    worker.close()
                # a connection of this thread's own, even when the worker never opened
                journal = JobJournal(self.owner.journal.path)
                try:
                    with journal.transaction():
                        journal.release(proposal_id, self.runner)
                finally:
                    journal.close()
            finally:
                self.scheduler.release(proposal_id)
                with self._lock:
                    self.finished += 1
                with self._ended:
                    self._ended.notify_all()

    def _need(self, proposal_id: int) -> Requirement:
        """The job's requirement, worked out once per run (a design check is a process)."""
        with self._lock:
            known = self._needs.get(proposal_id)
        if known is not None:
            return known
        owner = self.owner
        threads = self.budget.threads_per_job
        try:
            checked = load_checked_proposal(
                owner.market, owner.deployment, owner.client, owner.store, proposal_id
            )
            spec = load_untrusted_json(
                checked.document.model_spec_json,
                what="the proposal's model spec",
                max_bytes=MAX_SPEC_BYTES,
                error=InvalidModelSpecError,
                hint="the consumer's document is at fault",
            )
            # remembered from the quote when this process gave it (run_design_check)
            design = run_design_check(spec, owner.limits(), python=owner.config.python)
            if not design.get("ok"):
                raise InvalidModelSpecError(str(design.get("message", "the spec was refused")))
            need = proposal_requirement(
                checked, spec, design, samples=len(checked.samples), threads=threads
            )
        except _AWAY:
            raise
        except VisdmError as exc:
            # the job fails on its own before any sandbox starts: the smallest grant will do
            log.warning("proposal %d: cannot size the job (%s): it runs to fail", proposal_id, exc)
            need = job_requirement(
                samples=0,
                pixels_per_sample=0,
                bytes_per_sample=0,
                step_bytes=0,
                input_bytes=0,
                validation_samples=0,
                threads=threads,
            )
        with self._lock:
            self._needs[proposal_id] = need
        return need


def job_worker(
    owner: TrainingWorker, grant: Requirement, cancel: threading.Event
) -> TrainingWorker:
    """A worker for one concurrent job: a chain client, store and journal connection of its own
    (``owner``'s opener's, else a client for the same endpoint and ``owner``'s store), its
    sandbox limited to ``grant``, stopped by ``cancel``."""
    from ._training import TrainingWorker

    if owner.opener is not None:
        client, store = owner.opener()
    else:
        client = ChainClient(
            owner.client.rpc_url,
            tx_timeout_s=owner.client.tx_timeout_s,
            expected_chain_id=owner.client.chain_id,
        )
        store = owner.store
    sandbox = owner.config.sandbox.model_copy(
        update={"memory_bytes": grant.sandbox_bytes, "threads": grant.threads}
    )
    config = replace(owner.config, sandbox=sandbox, budget=None)
    worker = TrainingWorker(client, owner.deployment, store, owner.account, config, sweep=False)
    worker.cancel = cancel
    return worker
