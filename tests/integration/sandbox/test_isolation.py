"""The sandbox against the real bubblewrap: what a job can and cannot do, and how it ends.

Each escape attempt is made by one probe job (``_testjobs.escape_probe``) run once per module;
every test then checks one property of that run. The same probe run *without* the sandbox is the
control that shows each probe can succeed, so a failure inside the sandbox is the sandbox's doing.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import visdm
from visdm.compute.sandbox import (
    SANDBOX_INPUT_DIR,
    ProgressEvent,
    SandboxJob,
    SandboxLimits,
    SandboxResult,
    SandboxStatus,
    run_in_sandbox,
    sandbox_status,
)
from visdm.errors import EntryPointNotAllowedError, SandboxUnavailableError

pytestmark = pytest.mark.integration

JOBS = "visdm.compute.sandbox._testjobs"
ALL_TEST_JOBS = frozenset(
    f"{JOBS}:{name}"
    for name in (
        "allocate",
        "burn_cpu",
        "echo",
        "escape_probe",
        "exit_hard",
        "raise_error",
        "sleep_with_children",
        "write_symlink",
    )
)
REPO = Path(visdm.__file__).resolve().parents[2]
NETWORK_UNREACHABLE = "OSError: [Errno 101] Network is unreachable"
#: the sandbox has a loopback of its own, with nothing listening on it
LOOPBACK_REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"


def make_job(root: Path, function: str, **fields: Any) -> SandboxJob:
    (root / "in").mkdir(exist_ok=True)
    (root / "out").mkdir(exist_ok=True)
    return SandboxJob(
        job_id=f"test-{function}",
        entry_point=f"{JOBS}:{function}",
        input_dir=root / "in",
        output_dir=root / "out",
        **fields,
    )


def run(job: SandboxJob, **kwargs: Any) -> SandboxResult:
    return run_in_sandbox(job, allowed_entry_points=ALL_TEST_JOBS, **kwargs)


def _listen() -> Iterator[socket.socket]:
    """A TCP listener on the node's loopback, proven reachable from the node itself."""
    server = socket.create_server(("127.0.0.1", 0))
    with socket.create_connection(server.getsockname(), timeout=2):
        conn, _ = server.accept()
        conn.close()
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    """The listener the sandboxed probe aims at."""
    yield from _listen()


@pytest.fixture(scope="module")
def control_listener() -> Iterator[socket.socket]:
    """The listener the unsandboxed control probe aims at."""
    yield from _listen()


@pytest.fixture(scope="module")
def escape_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("escape")
    (root / "secret.txt").write_text("node-only", encoding="utf-8")
    return root


def escape_paths(root: Path) -> dict[str, Path]:
    """Where the probe tries to write (inside-sandbox path → where it would land on the host)."""
    return {
        f"{SANDBOX_INPUT_DIR}/evil.txt": root / "in" / "evil.txt",
        f"{REPO}/evil.txt": REPO / "evil.txt",
        f"{REPO}/src/visdm/evil.txt": REPO / "src" / "visdm" / "evil.txt",
        "/etc/visdm-evil.txt": Path("/etc/visdm-evil.txt"),
        f"{root}/outside.txt": root / "outside.txt",
        "/sandbox/evil.txt": Path("/sandbox/evil.txt"),
    }


@pytest.fixture(scope="module")
def escape(listener: socket.socket, escape_dir: Path) -> SandboxResult:
    job = make_job(
        escape_dir,
        "escape_probe",
        params={
            "tcp_port": listener.getsockname()[1],
            "write_paths": list(escape_paths(escape_dir)),
            "read_paths": [str(escape_dir / "secret.txt"), f"{REPO}/.git", "/etc/passwd", "/home"],
        },
    )
    return run(job)


@pytest.fixture(scope="module")
def control(
    control_listener: socket.socket, tmp_path_factory: pytest.TempPathFactory
) -> SandboxResult:
    """The probe without the sandbox, writing only inside its own temporary directory."""
    root = tmp_path_factory.mktemp("control")
    job = make_job(
        root,
        "escape_probe",
        params={
            "tcp_port": control_listener.getsockname()[1],
            "write_paths": [f"{root}/outside.txt"],
        },
    )
    return run(job, use_bwrap=False, allow_unsandboxed=True)


# --- network ----------------------------------------------------------------------------------
def test_probe_reaches_loopback_listener_without_sandbox(
    control: SandboxResult, control_listener: socket.socket
) -> None:
    assert control.status is SandboxStatus.SUCCEEDED, control.error
    assert control.sandboxed is False
    assert control.return_value is not None
    assert control.return_value["tcp_loopback"] == "ok"
    conn, _ = control_listener.accept()
    conn.close()


def test_sandboxed_job_cannot_connect_to_node_loopback(
    escape: SandboxResult, listener: socket.socket
) -> None:
    assert escape.status is SandboxStatus.SUCCEEDED, escape.error
    assert escape.return_value is not None
    assert escape.return_value["tcp_loopback"] == LOOPBACK_REFUSED
    with pytest.raises(BlockingIOError):  # and nothing knocked on the node's listener
        listener.accept()


def test_sandboxed_job_has_no_route_and_no_resolver(escape: SandboxResult) -> None:
    assert escape.return_value is not None
    assert escape.return_value["tcp_public"] == NETWORK_UNREACHABLE
    assert str(escape.return_value["dns"]).startswith("gaierror")


# --- file system ------------------------------------------------------------------------------
def test_sandboxed_job_cannot_write_outside_output(escape: SandboxResult, escape_dir: Path) -> None:
    assert escape.return_value is not None
    for inside, host in escape_paths(escape_dir).items():
        outcome = str(escape.return_value[f"write:{inside}"])
        assert outcome != "ok", inside
        assert "Read-only file system" in outcome or "No such file" in outcome, outcome
        assert not host.exists(), host


def test_write_outside_output_is_possible_without_sandbox(control: SandboxResult) -> None:
    assert control.return_value is not None
    [(key, outcome)] = [(k, v) for k, v in control.return_value.items() if k.startswith("write:")]
    assert outcome == "ok"
    assert Path(key.removeprefix("write:")).exists()


def test_sandboxed_job_writes_its_output_and_tmp(escape: SandboxResult, escape_dir: Path) -> None:
    assert escape.return_value is not None
    assert escape.return_value["write_output"] == "ok"
    assert escape.return_value["write_tmp"] == "ok"
    assert (escape_dir / "out" / "ok.txt").read_text(encoding="utf-8") == "escaped"
    assert [f.path for f in escape.output_files] == ["ok.txt"]


def test_sandboxed_job_sees_no_node_files(escape: SandboxResult, escape_dir: Path) -> None:
    assert escape.return_value is not None
    for path in (escape_dir / "secret.txt", REPO / ".git", Path("/etc/passwd"), Path("/home")):
        assert path.exists(), f"{path} should exist on the node for this check to mean anything"
        assert escape.return_value[f"exists:{path}"] is False, path


def test_sandboxed_job_runs_as_nobody(escape: SandboxResult) -> None:
    assert escape.return_value is not None
    assert escape.return_value["uid"] == 65534


# --- limits -----------------------------------------------------------------------------------
def test_job_over_memory_limit_fails_cleanly(tmp_path: Path) -> None:
    limits = SandboxLimits(memory_bytes=1024 << 20, wall_s=60)
    job = make_job(tmp_path, "allocate", limits=limits, params={"chunk_mib": 64, "total_mib": 4096})
    result = run(job)
    assert result.status is SandboxStatus.MEMORY_EXCEEDED
    assert result.error is not None
    assert "MemoryError" in result.error
    assert "1073741824" in result.error


def test_job_over_cpu_limit_is_stopped(tmp_path: Path) -> None:
    job = make_job(tmp_path, "burn_cpu", limits=SandboxLimits(cpu_s=3, wall_s=60))
    result = run(job)
    assert result.status is SandboxStatus.CPU_TIME_EXCEEDED, result.error
    assert result.wall_s < 30


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline.split(b"\0"):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running or sleeping; a zombie (dead, waiting for a parent to reap it) does not count —
    in a container whose PID 1 never reaps, the sandbox's dead processes stay zombies."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_job_over_wall_clock_is_killed_with_all_its_processes(tmp_path: Path) -> None:
    """One child stays in the job's process group, one escapes to its own session: the PID
    namespace takes both down with the job."""
    token = f"visdm-sandbox-test-{uuid.uuid4().hex}"
    seen: list[int] = []

    def on_progress(event: ProgressEvent) -> None:
        for _ in range(40):  # give the children's exec a moment to show in /proc
            seen[:] = _processes_with(token)
            if len(seen) == 2:
                return
            time.sleep(0.05)

    job = make_job(
        tmp_path, "sleep_with_children", limits=SandboxLimits(wall_s=5), params={"token": token}
    )
    result = run(job, on_progress=on_progress)
    assert result.status is SandboxStatus.TIMED_OUT
    assert len(seen) == 2, "both children were running before the deadline"
    assert _processes_with(token) == []
    assert [pid for pid in seen if _alive(pid)] == []


def test_file_over_output_limit_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("more than four bytes", encoding="utf-8")
    job = make_job(tmp_path, "echo", limits=SandboxLimits(max_output_bytes=4))
    result = run(job)
    assert result.status is SandboxStatus.FAILED
    assert result.error is not None
    assert "File too large" in result.error


# --- how jobs end -----------------------------------------------------------------------------
def test_job_reports_progress_and_returns_its_value(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / "in" / name).write_text(name, encoding="utf-8")
    events: list[ProgressEvent] = []
    job = make_job(tmp_path, "echo", params={"spec": {"arch": "resnet8"}})
    result = run(job, on_progress=events.append)
    assert result.status is SandboxStatus.SUCCEEDED, result.error
    assert result.sandboxed is True
    assert [(e.message, e.fraction) for e in events] == [
        ("copied a.txt", 0.5),
        ("copied b.txt", 1.0),
    ]
    assert result.return_value == {
        "files": ["a.txt", "b.txt"],
        "params": {"spec": {"arch": "resnet8"}},
    }
    assert [(f.path, f.size) for f in result.output_files] == [("a.txt", 5), ("b.txt", 5)]
    assert (tmp_path / "out" / "a.txt").read_text(encoding="utf-8") == "A.TXT"
    assert result.cpu_s is not None
    assert result.cpu_s > 0


def test_raising_job_yields_failed_result_with_message(tmp_path: Path) -> None:
    result = run(make_job(tmp_path, "raise_error"))
    assert result.status is SandboxStatus.FAILED
    assert result.error == "ValueError: bad batch in job test-raise_error"
    assert result.traceback is not None
    assert "raise_error" in result.traceback


def test_job_dying_without_outcome_yields_crashed_result(tmp_path: Path) -> None:
    result = run(make_job(tmp_path, "exit_hard"))
    assert result.status is SandboxStatus.CRASHED
    assert result.exit_code == 3
    assert result.error is not None
    assert "exited with status 3" in result.error


def test_symlink_in_output_is_rejected(tmp_path: Path) -> None:
    result = run(make_job(tmp_path, "write_symlink"))
    assert result.status is SandboxStatus.OUTPUT_REJECTED
    assert result.error is not None
    assert "model.bin" in result.error
    assert result.output_files == ()


# --- refusals ---------------------------------------------------------------------------------
def test_entry_point_off_allow_list_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visdm.compute.sandbox import _runner

    started: list[object] = []
    monkeypatch.setattr(_runner.subprocess, "Popen", lambda *a, **k: started.append(a))
    monkeypatch.setattr(_runner.subprocess, "run", lambda *a, **k: started.append(a))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x", encoding="utf-8")
    job = make_job(tmp_path, "echo")
    with pytest.raises(EntryPointNotAllowedError, match="not on this node's allow-list"):
        run_in_sandbox(job, allowed_entry_points={f"{JOBS}:raise_error"})
    assert started == []
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_bwrap_is_refused(tmp_path: Path) -> None:
    job = make_job(tmp_path, "echo")
    with pytest.raises(SandboxUnavailableError, match="no bwrap executable"):
        run(job, bwrap=str(tmp_path / "no-such-bwrap"))
    assert list((tmp_path / "out").iterdir()) == []


def test_bwrap_without_namespaces_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailableError, match="No permissions to create new namespace"):
        run(make_job(tmp_path, "echo"), bwrap=str(fake))


def test_use_bwrap_false_needs_explicit_permission(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailableError, match="allow_unsandboxed=True"):
        run(make_job(tmp_path, "echo"), use_bwrap=False)


def test_unsandboxed_run_warns_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x", encoding="utf-8")
    job = make_job(tmp_path, "echo")
    with caplog.at_level(logging.WARNING, logger="visdm.sandbox"):
        result = run(job, bwrap=str(tmp_path / "no-such-bwrap"), allow_unsandboxed=True)
    assert result.status is SandboxStatus.SUCCEEDED, result.error
    assert result.sandboxed is False
    [record] = [r for r in caplog.records if r.name == "visdm.sandbox"]
    assert record.levelno == logging.WARNING
    assert "WITHOUT A SANDBOX" in record.getMessage()
    assert "no bwrap executable" in record.getMessage()


def test_the_status_a_node_reports_is_what_its_probe_finds(tmp_path: Path) -> None:
    """``GET /health`` reports the sandbox from the same probe jobs use: usable here (these
    tests run jobs in it), and not with a bwrap that is not there."""
    assert sandbox_status() == {"sandbox": "bubblewrap", "usable": True, "problem": ""}
    missing = sandbox_status(bwrap=str(tmp_path / "no-bwrap"))
    assert missing == {"sandbox": "bubblewrap", "usable": False, "problem": "no bwrap executable"}
