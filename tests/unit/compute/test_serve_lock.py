"""The lock that keeps a second ``visdm node serve`` off a node directory, between two real
processes: the second is refused in one line naming the holder's PID, and the lock goes with
the holder however it ends — a clean exit or SIGKILL, which no handler can catch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from visdm.compute._serve import ServeLock
from visdm.errors import ConfigError

pytestmark = pytest.mark.unit

#: holds the lock, says so, and keeps it until its stdin closes (or it is killed)
_HOLDER = """
import sys
from pathlib import Path
from visdm.compute._serve import ServeLock

with ServeLock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process that holds ``tmp_path/node/serve.lock``; reaped by PID at the end."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "node" / "serve.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:  # closes the pipes and waits for the process on the way out
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "held"
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def _refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as refused:
        ServeLock(path).acquire()
    return str(refused.value)


def test_a_second_process_is_refused_naming_the_holder_and_takes_over_after_sigkill(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = tmp_path / "node" / "serve.lock"
    message = _refusal(path)
    assert f"(pid {holder.pid}) already runs" in message
    assert str(path.parent) in message and "\n" not in message
    # the refusal took nothing from the holder: a second try is refused the same way
    assert _refusal(path) == message
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    # the kernel dropped the lock with the killed process: no stale lock to clear by hand
    with ServeLock(path):
        assert path.read_text().strip() == str(os.getpid())
    assert path.read_text() == ""  # released: no PID left to name


def test_the_lock_is_released_when_the_holder_exits(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = tmp_path / "node" / "serve.lock"
    assert "already runs" in _refusal(path)
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    with ServeLock(path):
        pass
