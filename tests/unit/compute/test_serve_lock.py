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


GENESIS = bytes.fromhex("ab" * 32)
MARKET = "0x" + "12" * 20
NODE = "0x" + "ab" * 20


@pytest.mark.attack
def test_one_account_serves_from_one_data_directory_on_a_machine(tmp_path: Path) -> None:
    """A second node process under the same key, from another data directory, would take the
    same jobs: the account's machine-wide lock refuses it (a second process plays the first
    node, holding the account lock a first ``node serve`` takes)."""
    base = tmp_path / "locks"
    path = ServeLock.for_account(GENESIS, MARKET, NODE, base=base).path
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
            same = "0x" + "AB" * 20  # the same account, checksummed or not
            with pytest.raises(ConfigError) as refused:
                ServeLock.for_account(GENESIS, MARKET, same, base=base).acquire()
            message = str(refused.value)
            assert f"(pid {proc.pid}) already runs as {same}" in message
            assert "from another data directory" in message and "\n" not in message
            # another account, another market or another chain is another lock
            for genesis, market, node in (
                (GENESIS, MARKET, "0x" + "56" * 20),
                (GENESIS, "0x" + "78" * 20, NODE),
                (bytes.fromhex("cd" * 32), MARKET, NODE),
            ):
                with ServeLock.for_account(genesis, market, node, base=base):
                    pass
        finally:
            proc.kill()
    # the lock ends with its process, however it ends
    with ServeLock.for_account(GENESIS, MARKET, NODE, base=base):
        pass
