"""The compute node's resource budget and the scheduler that runs training jobs within it.

The operator gives the node a budget — at most ``jobs`` jobs at once, ``cpus`` threads and
``memory_bytes`` of memory in all (:class:`NodeBudget`; ``visdm node serve --jobs --cpus
--memory``). Before a job starts, the node works out what it needs (:func:`job_requirement`):

* threads: the budget's share per job (``cpus // jobs``, at least one). Training itself runs
  on one thread whatever the grant (its result must be bit-identical when a verifier
  re-executes it, :mod:`visdm.training._train`); the grant bounds the job's other torch work
  (evaluation, embeddings, valuation) through ``OMP_NUM_THREADS`` in its sandbox;
* memory: the sandbox's address space — :data:`JOB_OVERHEAD_BYTES` (the interpreter, torch,
  the model, valuation), the model spec's own estimate for the job's samples
  (:meth:`visdm.training.DesignReport.memory_bytes`: ``bytes_per_sample × samples +
  step_bytes``), the encoded images as read, and the floor the sandboxed job itself checks
  before it decodes — plus the decrypted input the node writes to RAM (``/dev/shm``) for it.

The address-space part becomes the sandbox's ``RLIMIT_AS`` and the thread share its thread
count, so a job whose real size exceeds its estimate fails alone (out of memory in its own
sandbox) instead of taking the machine; the budget is a bound on address space, which is at
least what the jobs can touch.

:class:`Scheduler` decides which waiting jobs start: in deadline order (then proposal id),
each that fits in what the running jobs leave free starts. A job that does not fit now lets
smaller jobs behind it start, but only ``max_bypass`` of them (default: ``jobs``); after that
it reserves the machine — nothing behind it starts until it has — so a large job at the head
waits at most for the jobs already running plus ``max_bypass`` others, never for ever. A job
that exceeds the whole budget can never start: :meth:`Scheduler.refusal` says why, and the node
refuses to quote it (or abandons it on chain when it was quoted under a larger budget).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from visdm.errors import ConfigError

__all__ = [
    "DEFAULT_MEMORY_SHARE",
    "JOB_OVERHEAD_BYTES",
    "NodeBudget",
    "Requirement",
    "Scheduler",
    "Waiting",
    "available_memory",
    "budget_from_options",
    "job_requirement",
    "machine_cpus",
]

_MiB = 1 << 20
_GiB = 1 << 30
#: the sandbox address space a training job takes besides its data. Measured with the real
#: sandbox: a 120-sample Fashion-MNIST MLP job with valuation ends ``memory_exceeded`` under a
#: 1.75 GiB RLIMIT_AS and succeeds under 1.85 GiB, and a 6,000-sample one under 2.0 GiB
#: (torch, Opacus, scikit-learn and the worker reserve far more address space than they touch:
#: the same job's peak RSS is about 0.4 GiB). ``docs/load-and-faults.md`` has the commands.
JOB_OVERHEAD_BYTES = 2 * _GiB
#: the floor the sandboxed job checks before decoding (``visdm.training._job._check_memory``):
#: this much plus :data:`_PIXEL_COPIES` bytes per decoded pixel byte
_JOB_FLOOR_BYTES = _GiB
_PIXEL_COPIES = 6
#: the default budget's share of the memory available when the node starts
DEFAULT_MEMORY_SHARE = 0.75


def machine_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), else the machine's physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True, slots=True)
class NodeBudget:
    """What the node's jobs may use together: ``jobs`` at once, ``cpus`` threads and
    ``memory_bytes`` of memory."""

    jobs: int
    cpus: int
    memory_bytes: int

    def __post_init__(self) -> None:
        for name in ("jobs", "cpus", "memory_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"NodeBudget.{name} must be a positive integer, got {value!r}")

    @property
    def threads_per_job(self) -> int:
        """Each job's share of the CPUs: ``cpus // jobs``, at least one."""
        return max(1, self.cpus // self.jobs)

    def describe(self) -> str:
        return (
            f"{self.jobs} job(s) at once, {self.cpus} CPU(s), "
            f"{self.memory_bytes / _GiB:.1f} GiB of memory"
        )


def budget_from_options(
    *, jobs: int | None = None, cpus: int | None = None, memory_gib: float | None = None
) -> NodeBudget:
    """The budget from ``visdm node serve``'s options; each left out comes from the machine:
    ``cpus`` the CPUs this process may use, ``memory_gib`` :data:`DEFAULT_MEMORY_SHARE` of the
    memory available but at least one job's :data:`JOB_OVERHEAD_BYTES` (address space, most of
    which a job never touches: a small machine still runs one job at a time), ``jobs`` as
    many as the CPUs and the memory hold (one CPU and :data:`JOB_OVERHEAD_BYTES` each, at
    least one). Raises :class:`ConfigError` naming the
    option for a value the machine cannot give."""
    have = machine_cpus()
    if cpus is not None and not 1 <= cpus <= have:
        raise ConfigError(
            f"--cpus {cpus} is not possible here: give 1 to {have} (the CPUs this process may "
            "use on this machine)"
        )
    if memory_gib is not None and not (math.isfinite(memory_gib) and memory_gib > 0):
        raise ConfigError(f"--memory {memory_gib} is not a positive number of GiB: give e.g. 8")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs} is not possible: give at least 1 job at once")
    cpus = have if cpus is None else cpus
    memory = (
        max(int(available_memory() * DEFAULT_MEMORY_SHARE), JOB_OVERHEAD_BYTES)
        if memory_gib is None
        else int(memory_gib * _GiB)
    )
    if memory < JOB_OVERHEAD_BYTES:
        raise ConfigError(
            f"--memory {memory / _GiB:.2f} GiB is less than one training job needs "
            f"({JOB_OVERHEAD_BYTES / _GiB:.0f} GiB): give more"
        )
    if jobs is None:
        jobs = max(1, min(cpus, memory // JOB_OVERHEAD_BYTES))
    return NodeBudget(jobs=jobs, cpus=cpus, memory_bytes=memory)


@dataclass(frozen=True, slots=True)
class Requirement:
    """What one job needs: ``threads``, ``sandbox_bytes`` of address space for its sandbox
    (its ``RLIMIT_AS``) and ``memory_bytes`` in all (the sandbox and its input in RAM)."""

    threads: int
    sandbox_bytes: int
    memory_bytes: int

    def describe(self) -> str:
        return f"{self.threads} thread(s) and {self.memory_bytes / _GiB:.2f} GiB of memory"


def _round_up(value: int, unit: int = _MiB) -> int:
    return -(-value // unit) * unit


def job_requirement(
    *,
    samples: int,
    pixels_per_sample: int,
    bytes_per_sample: int,
    step_bytes: int,
    input_bytes: int,
    validation_samples: int,
    threads: int,
) -> Requirement:
    """What a training job needs (see the module docstring). ``bytes_per_sample`` and
    ``step_bytes`` are the design check's memory estimate; ``input_bytes`` the encoded images
    the node decrypts for it; the validation set counts as ``validation_samples`` decoded
    images, as it is sent."""
    validation_bytes = validation_samples * pixels_per_sample
    design = (samples + validation_samples) * bytes_per_sample + step_bytes
    estimate = JOB_OVERHEAD_BYTES + design + input_bytes + validation_bytes
    floor = _JOB_FLOOR_BYTES + _PIXEL_COPIES * pixels_per_sample * (samples + validation_samples)
    sandbox = _round_up(max(estimate, floor))
    return Requirement(
        threads=threads,
        sandbox_bytes=sandbox,
        memory_bytes=sandbox + _round_up(input_bytes + validation_bytes),
    )


@dataclass(frozen=True, slots=True)
class Waiting:
    """A job waiting to start: its key (the proposal id), deadline and requirement."""

    key: int
    deadline: int
    need: Requirement


class Scheduler:
    """Grants the budget to jobs (see the module docstring for the rule). Thread-safe: jobs
    are released from the threads that ran them."""

    def __init__(self, budget: NodeBudget, *, max_bypass: int | None = None) -> None:
        self.budget = budget
        self.max_bypass = budget.jobs if max_bypass is None else max_bypass
        self._running: dict[int, Requirement] = {}
        self._bypassed: dict[int, int] = {}
        self._lock = threading.Lock()

    def refusal(self, need: Requirement) -> str | None:
        """Why a job with this requirement can never run under the budget, else ``None``."""
        over = []
        if need.threads > self.budget.cpus:
            over.append(f"{need.threads} thread(s) of the node's {self.budget.cpus} CPU(s)")
        if need.memory_bytes > self.budget.memory_bytes:
            over.append(
                f"{need.memory_bytes / _GiB:.2f} GiB of memory, over the node's budget of "
                f"{self.budget.memory_bytes / _GiB:.2f} GiB"
            )
        if not over:
            return None
        return "the job needs " + " and ".join(over) + ": it can never run on this node"

    def running(self) -> dict[int, Requirement]:
        with self._lock:
            return dict(self._running)

    def free(self) -> tuple[int, int, int]:
        """Jobs, threads and bytes of memory not granted now."""
        with self._lock:
            return self._free()

    def _free(self) -> tuple[int, int, int]:
        grants = self._running.values()
        return (
            self.budget.jobs - len(self._running),
            self.budget.cpus - sum(g.threads for g in grants),
            self.budget.memory_bytes - sum(g.memory_bytes for g in grants),
        )

    def _fits(self, need: Requirement) -> bool:
        jobs, threads, memory = self._free()
        return jobs >= 1 and need.threads <= threads and need.memory_bytes <= memory

    def select(self, waiting: Iterable[Waiting]) -> list[Waiting]:
        """Grant the budget to the jobs that start now, in the order they start; the caller
        starts them and :meth:`release` each when it ends. Jobs already running, and jobs that
        can never fit (:meth:`refusal`), are passed over."""
        queue = sorted(waiting, key=lambda w: (w.deadline, w.key))
        started: list[Waiting] = []
        with self._lock:
            blocked: list[int] = []  # jobs ahead that did not fit, in order
            for job in queue:
                if job.key in self._running or self.refusal(job.need) is not None:
                    continue
                if any(self._bypassed.get(k, 0) >= self.max_bypass for k in blocked):
                    break  # a job ahead has been passed over enough: it reserves the machine
                if not self._fits(job.need):
                    blocked.append(job.key)
                    continue
                self._running[job.key] = job.need
                self._bypassed.pop(job.key, None)
                for key in blocked:
                    self._bypassed[key] = self._bypassed.get(key, 0) + 1
                started.append(job)
            # forget what is no longer waiting
            waiting_keys = {w.key for w in queue}
            for key in [k for k in self._bypassed if k not in waiting_keys]:
                del self._bypassed[key]
        return started

    def release(self, key: int) -> None:
        """The job ``key`` ended: its grant is free again."""
        with self._lock:
            self._running.pop(key, None)
