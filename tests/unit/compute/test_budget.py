"""The node's budget and scheduler: which jobs start, in which order, and what never fits."""

from __future__ import annotations

import random

import pytest

from visdm.compute import _budget
from visdm.compute._budget import (
    JOB_OVERHEAD_BYTES,
    NodeBudget,
    Requirement,
    Scheduler,
    Waiting,
    budget_from_options,
    job_requirement,
    machine_cpus,
)
from visdm.errors import ConfigError

GiB = 1 << 30


def need(gib: float, threads: int = 1) -> Requirement:
    size = int(gib * GiB)
    return Requirement(threads=threads, sandbox_bytes=size, memory_bytes=size)


def test_jobs_start_in_deadline_order_while_they_fit() -> None:
    scheduler = Scheduler(NodeBudget(jobs=2, cpus=2, memory_bytes=8 * GiB))
    waiting = [Waiting(1, 300, need(3)), Waiting(2, 100, need(3)), Waiting(3, 200, need(3))]
    started = scheduler.select(waiting)
    assert [w.key for w in started] == [2, 3]  # earliest deadlines first, two jobs at once
    # the third waits while the budget is full, and starts once one ends
    assert scheduler.select(waiting) == []
    scheduler.release(2)
    left = [w for w in waiting if w.key == 1]
    assert [w.key for w in scheduler.select(left)] == [1]
    assert scheduler.free() == (0, 0, 2 * GiB)


def test_memory_not_job_slots_can_be_what_is_full() -> None:
    scheduler = Scheduler(NodeBudget(jobs=4, cpus=4, memory_bytes=8 * GiB))
    waiting = [Waiting(1, 1, need(5)), Waiting(2, 2, need(5)), Waiting(3, 3, need(2))]
    # 1 fits; 2 does not (3 GiB left) and is passed over once by 3, which fits
    assert [w.key for w in scheduler.select(waiting)] == [1, 3]


def test_a_large_job_at_the_head_reserves_the_machine_after_max_bypass() -> None:
    scheduler = Scheduler(NodeBudget(jobs=3, cpus=3, memory_bytes=6 * GiB), max_bypass=1)
    assert [w.key for w in scheduler.select([Waiting(9, 0, need(3))])] == [9]
    big = Waiting(1, 10, need(5))
    small = [Waiting(k, 10 + k, need(1)) for k in range(2, 6)]
    # the big one cannot fit while 9 runs; one small job may pass it, then it reserves
    assert [w.key for w in scheduler.select([big, *small])] == [2]
    assert scheduler.select([big, *small[1:]]) == []
    scheduler.release(9)
    scheduler.release(2)
    assert [w.key for w in scheduler.select([big, *small[1:]])] == [1, 3]


def test_strict_order_when_nothing_may_pass() -> None:
    scheduler = Scheduler(NodeBudget(jobs=2, cpus=2, memory_bytes=4 * GiB), max_bypass=0)
    scheduler.select([Waiting(1, 0, need(3))])
    assert scheduler.select([Waiting(2, 1, need(2)), Waiting(3, 2, need(1))]) == []


def test_a_job_over_the_whole_budget_never_starts_and_says_why() -> None:
    scheduler = Scheduler(NodeBudget(jobs=2, cpus=2, memory_bytes=4 * GiB))
    huge = need(6)
    why = scheduler.refusal(huge)
    assert why is not None
    assert "6.00 GiB" in why and "4.00 GiB" in why and "\n" not in why
    assert scheduler.refusal(need(1, threads=3)) is not None
    assert scheduler.refusal(need(4)) is None
    # passed over without blocking the jobs behind it
    assert [w.key for w in scheduler.select([Waiting(1, 0, huge), Waiting(2, 1, need(1))])] == [2]


def test_grants_never_exceed_the_budget_randomised() -> None:
    rng = random.Random(20261202)
    for _ in range(200):
        budget = NodeBudget(
            jobs=rng.randint(1, 6), cpus=rng.randint(1, 8), memory_bytes=rng.randint(2, 32) * GiB
        )
        scheduler = Scheduler(budget, max_bypass=rng.randint(0, 3))
        waiting = {
            k: Waiting(k, rng.randint(0, 50), need(rng.uniform(0.5, 12), rng.randint(1, 3)))
            for k in range(rng.randint(1, 12))
        }
        for _ in range(30):
            for w in scheduler.select(waiting.values()):
                assert w.key in waiting
                del waiting[w.key]
            running = scheduler.running()
            assert len(running) <= budget.jobs
            assert sum(g.threads for g in running.values()) <= budget.cpus
            assert sum(g.memory_bytes for g in running.values()) <= budget.memory_bytes
            if running and rng.random() < 0.6:
                scheduler.release(rng.choice(sorted(running)))
        # what remains either never fits or waits behind what runs
        if not scheduler.running():
            assert all(scheduler.refusal(w.need) is not None for w in waiting.values())


def test_requirement_grows_with_the_job_and_covers_the_sandboxes_own_floor() -> None:
    small = job_requirement(
        samples=100, pixels_per_sample=784, bytes_per_sample=4000, step_bytes=0,
        input_bytes=100 * 300, validation_samples=50, threads=1,
    )  # fmt: skip
    assert small.sandbox_bytes >= JOB_OVERHEAD_BYTES
    assert small.memory_bytes > small.sandbox_bytes  # the decrypted input in RAM counts too
    big = job_requirement(
        samples=1_000_000, pixels_per_sample=3 * 224 * 224, bytes_per_sample=5 * 3 * 224 * 224,
        step_bytes=256 << 20, input_bytes=10**11, validation_samples=1000, threads=2,
    )  # fmt: skip
    # the sandboxed job refuses below 1 GiB + 6 bytes per decoded pixel byte
    assert big.sandbox_bytes >= (1 << 30) + 6 * 3 * 224 * 224 * 1_001_000
    assert big.threads == 2


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"jobs": 0}, "--jobs 0"),
        ({"memory_gib": -1.0}, "--memory -1.0"),
        ({"memory_gib": float("nan")}, "--memory nan"),
        ({"memory_gib": 0.5}, "--memory 0.50 GiB"),
        ({"cpus": 0}, "--cpus 0"),
        ({"cpus": machine_cpus() + 1}, f"--cpus {machine_cpus() + 1}"),
    ],
)
def test_bad_budget_options_are_refused_in_one_line(options: dict[str, float], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        budget_from_options(**options)  # type: ignore[arg-type]
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_default_budget_comes_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    # a small machine still runs one job at a time by default
    monkeypatch.setattr(_budget, "available_memory", lambda: 1 << 30)
    assert budget_from_options() == NodeBudget(
        jobs=1, cpus=machine_cpus(), memory_bytes=JOB_OVERHEAD_BYTES
    )
    budget = budget_from_options(memory_gib=8)
    assert budget.cpus == machine_cpus()
    assert budget.memory_bytes == 8 * GiB
    assert 1 <= budget.jobs <= budget.cpus
    assert budget_from_options(jobs=3, cpus=1, memory_gib=8).threads_per_job == 1
