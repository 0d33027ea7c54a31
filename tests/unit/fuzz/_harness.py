"""What every fuzz test asserts, and how hard it tries.

**The oracle** (:func:`outcome`): a parser of untrusted input either succeeds or raises one of
the errors it documents — a :class:`~visdm.errors.VisdmError` subclass (the index's internal
``DocumentError`` for its documents) whose message is one non-empty line. Any other exception,
a crash (which takes the test process down) or a hang fails the test. A hang is caught by a
watchdog: :data:`HANG_S` of wall time for one input, far beyond what any parser here needs, so
it only ever fires on a loop that does not end.

**Profiles**: by default (CI) each test runs a few dozen examples, derandomised, so the whole
suite takes well under a minute; ``VISDM_HYPOTHESIS_PROFILE=heavy`` (the variable the market's
property tests read) multiplies the examples by :data:`HEAVY_FACTOR` and draws fresh ones on
every run. For coverage-guided runs the same targets run under Atheris:
``python -m tests.unit.fuzz.atheris_main TARGET`` (see that module).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

from visdm.errors import VisdmError

HEAVY = os.environ.get("VISDM_HYPOTHESIS_PROFILE") == "heavy"
HEAVY_FACTOR = 25
#: wall time one input may take before the parser is taken to hang
HANG_S = 60

T = TypeVar("T")


def fuzz(examples: int) -> settings:
    """Hypothesis settings for a fuzz test of ``examples`` inputs in CI."""
    return settings(
        max_examples=examples * HEAVY_FACTOR if HEAVY else examples,
        deadline=None,  # a slow input is not a failure; a hang is (the watchdog)
        derandomize=not HEAVY,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


class HangError(AssertionError):
    """A parser ran past :data:`HANG_S` on one input."""


@contextmanager
def watchdog(seconds: float = HANG_S) -> Iterator[None]:
    """Raise :class:`HangError` in the main thread if the block runs past ``seconds``; restores
    whatever alarm was set before (pytest-timeout's, for one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(_signum: int, _frame: FrameType | None) -> None:
        raise HangError(f"one input ran past {seconds} s: the parser hangs")

    previous = signal.signal(signal.SIGALRM, fire)
    earlier = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if earlier[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *earlier)


def assert_one_line(error: BaseException) -> str:
    """The error's message, after checking that it is one non-empty line."""
    message = str(error)
    assert message.strip(), f"{type(error).__name__} with an empty message"
    assert len(message.splitlines()) == 1, f"{type(error).__name__} spans lines: {message!r}"
    return message


def outcome(
    call: Callable[[], T], *, errors: tuple[type[BaseException], ...] = (VisdmError,)
) -> T | BaseException:
    """Run ``call`` under the watchdog: its result, or the documented error it raised (checked
    to be one line). Anything else propagates and fails the test."""
    with watchdog():
        try:
            return call()
        except errors as exc:
            assert_one_line(exc)
            return exc


def refused(result: Any) -> bool:
    return isinstance(result, BaseException)
