"""Entry points for the sandbox's own tests — never put these on a production allow-list.

They live in the package, not under ``tests/``, so that the sandbox needs no view of the test
tree: the sandbox binds only the interpreter, its ``sys.path`` and visdm's package directory.
Each function is a small probe; the tests decide what its outcome proves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from ._messages import ProgressReporter, SandboxJob

__all__ = [
    "allocate",
    "burn_cpu",
    "echo",
    "escape_probe",
    "exit_hard",
    "raise_error",
    "sleep_with_children",
    "write_symlink",
]


def echo(job: SandboxJob, progress: ProgressReporter) -> dict[str, JsonValue]:
    """Copy every input file to the output (upper-cased), reporting progress per file."""
    names = sorted(p.name for p in job.input_dir.iterdir())
    for index, name in enumerate(names):
        data = (job.input_dir / name).read_text(encoding="utf-8")
        (job.output_dir / name).write_text(data.upper(), encoding="utf-8")
        progress(f"copied {name}", fraction=(index + 1) / len(names))
    return {"files": list(names), "params": job.params}


def _attempt(action: Any) -> str:
    """``"ok"`` if ``action()`` worked, else the exception's class and message."""
    try:
        action()
    except Exception as exc:  # a probe reports every failure, whatever it is
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def _connect(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=2):
        pass


def _write(path: str) -> None:
    Path(path).write_text("escaped", encoding="utf-8")


def escape_probe(job: SandboxJob, progress: ProgressReporter) -> dict[str, JsonValue]:
    """Try to reach the network and write outside the output directory.

    ``params``: ``tcp_port`` (a listener on the node's 127.0.0.1), ``write_paths`` (absolute
    paths to try to create), ``read_paths`` (paths whose existence to report).
    """
    port = int(str(job.params["tcp_port"]))
    attempts: dict[str, JsonValue] = {
        "tcp_loopback": _attempt(lambda: _connect("127.0.0.1", port)),
        "tcp_public": _attempt(lambda: _connect("1.1.1.1", 53)),
        "dns": _attempt(lambda: socket.getaddrinfo("pypi.org", 443)),
        "write_output": _attempt(lambda: _write(str(job.output_dir / "ok.txt"))),
        "write_tmp": _attempt(lambda: _write(str(Path(tempfile.gettempdir()) / "ok.txt"))),
    }
    writes = job.params.get("write_paths", [])
    reads = job.params.get("read_paths", [])
    for path in writes if isinstance(writes, list) else []:
        attempts[f"write:{path}"] = _attempt(lambda p=str(path): _write(p))
    for path in reads if isinstance(reads, list) else []:
        attempts[f"exists:{path}"] = os.path.lexists(str(path))
    attempts["uid"] = os.getuid()
    return attempts


def allocate(job: SandboxJob, progress: ProgressReporter) -> dict[str, JsonValue]:
    """Allocate ``params["chunk_mib"]`` MiB at a time (touched) up to ``params["total_mib"]``."""
    chunk = int(str(job.params["chunk_mib"])) * 1024 * 1024
    held = []
    for _ in range(int(str(job.params["total_mib"])) * 1024 * 1024 // chunk):
        held.append(bytearray(b"\x01") * chunk)
    return {"held_mib": len(held) * chunk // (1024 * 1024)}


def burn_cpu(job: SandboxJob, progress: ProgressReporter) -> None:
    """Spin forever; only the CPU limit (or the wall clock) ends this."""
    progress("spinning")
    x = 0
    while True:
        x = (x * 31 + 7) % 1_000_003


def sleep_with_children(job: SandboxJob, progress: ProgressReporter) -> None:
    """Start a child in the job's process group and one in a session of its own (as a job
    escaping the process group would), report both, and sleep forever."""
    token = str(job.params["token"])
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)", token]
    subprocess.Popen(sleeper, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed argv
    subprocess.Popen(  # noqa: S603 - fixed argv
        [*sleeper, "detached"], start_new_session=True, stdin=subprocess.DEVNULL
    )
    progress("children started")
    time.sleep(600)


def raise_error(job: SandboxJob, progress: ProgressReporter) -> None:
    """Fail the way a buggy training step would."""
    raise ValueError(f"bad batch in job {job.job_id}")


def exit_hard(job: SandboxJob, progress: ProgressReporter) -> None:
    """Leave without a word, as a segfault or ``os._exit`` in native code would."""
    os._exit(3)


def write_symlink(job: SandboxJob, progress: ProgressReporter) -> None:
    """Leave a symlink to a node file in the output, hoping the node will read it back."""
    (job.output_dir / "model.bin").symlink_to("/etc/passwd")
