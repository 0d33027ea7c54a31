"""One node process per account and data directory.

Two ``visdm node serve`` processes for the same account would both see each new job and both
act on it (two trainings, two result transactions, one of them reverted and paid for). So
``serve`` takes an exclusive ``flock`` on ``serve-<address>.lock`` in the node's directory and
holds it for the life of the process; a second one is refused with the PID of the holder. The
kernel drops the lock when the holder's descriptor closes, so a process killed by SIGKILL, or a
machine that rebooted, never leaves a stale lock behind (unlike a PID file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from visdm.errors import ConfigError

__all__ = ["hold_node_lock", "lock_path", "release_node_lock"]

#: descriptors of the locks this process holds, by lock file: kept open, so the locks stay
_HELD: dict[Path, int] = {}


def lock_path(node_dir: Path, address: str) -> Path:
    """The lock file of ``address``'s node process in ``node_dir``."""
    return node_dir / f"serve-{address.lower()}.lock"


def hold_node_lock(node_dir: Path, address: str) -> Path:
    """Lock ``address``'s node in ``node_dir`` for this process's life, or refuse in one line
    naming the process that holds it. Taking a lock this process already holds is a no-op."""
    path = lock_path(node_dir, address)
    if path in _HELD:
        return path
    node_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        who = f"PID {holder}" if holder else "another process"
        raise ConfigError(
            f"a node for {address} already runs on {node_dir} ({who} holds {path.name}): two "
            "would take the same jobs; stop that one first, or run this one with another --home"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise ConfigError(f"cannot lock {path} ({exc.strerror}): check the node directory") from exc
    # the holder's PID, for the message a second process prints; the lock is the flock itself
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[path] = fd
    return path


def release_node_lock(node_dir: Path, address: str) -> None:
    """Let go of a lock this process holds (process exit does the same)."""
    fd = _HELD.pop(lock_path(node_dir, address), None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
