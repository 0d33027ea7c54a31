"""The node's private RAM directories for decrypted job input: created 0700 under ``/dev/shm``
(so plaintext never reaches a disk), named by the node's key and data directory, removed after
each job, and swept at start-up when a killed predecessor left some behind."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["private_dir", "private_prefix", "sweep_private_dirs"]

log = logging.getLogger("visdm.node.training")


@contextlib.contextmanager
def private_dir(prefix: str) -> Iterator[Path]:
    """A 0700 directory in RAM when the machine has ``/dev/shm``; always removed."""
    shm = Path("/dev/shm")  # noqa: S108 - a private mkdtemp below it, not a fixed name
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    if base is None:
        log.warning("no writable /dev/shm: decrypted job input goes to the temp dir")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def private_prefix(kind: str, address: str, workdir: Path) -> str:
    """The name prefix of a worker's private RAM directories. It names the node's key and its
    working directory: a killed predecessor (same both) is swept, and another node on the
    machine under the same key (another region, another process) is left alone."""
    place = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:8]
    return f"visdm-{kind}-{address[2:10].lower()}-{place}-"


def sweep_private_dirs(prefix: str) -> None:
    """Remove decrypted inputs a killed predecessor of this node left in RAM or temp."""
    for base in (Path("/dev/shm"), Path(tempfile.gettempdir())):  # noqa: S108 - our own prefix
        if not base.is_dir():
            continue
        for stale in base.glob(f"{prefix}*"):
            log.warning("removing %s, left by an interrupted job", stale)
            shutil.rmtree(stale, ignore_errors=True)
