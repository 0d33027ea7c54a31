"""The sandbox's pieces that need no bubblewrap: messages, the pipe reader, the output scan,
the argv the node hands to bwrap, and the worker's own allow-list check."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import visdm
from visdm.compute.sandbox import ProgressEvent, SandboxJob, SandboxLimits, _runner, _worker
from visdm.compute.sandbox._messages import WorkerEnvelope, WorkerOutcome
from visdm.errors import InvalidInputError

pytestmark = pytest.mark.unit

ECHO = "visdm.compute.sandbox._testjobs:echo"


def job_in(tmp_path: Path, **fields: object) -> SandboxJob:
    for name in ("in", "out"):
        (tmp_path / name).mkdir(exist_ok=True)
    values: dict[str, object] = {
        "job_id": "j1",
        "entry_point": ECHO,
        "input_dir": tmp_path / "in",
        "output_dir": tmp_path / "out",
        **fields,
    }
    return SandboxJob.model_validate(values)


@pytest.mark.parametrize(
    "entry_point",
    ["visdm.training", "visdm.training:", "os:system; rm -rf /", "a:b:c", "__import__('os'):x"],
)
def test_entry_point_must_name_a_module_function(tmp_path: Path, entry_point: str) -> None:
    with pytest.raises(ValidationError, match=r"package\.module:function"):
        job_in(tmp_path, entry_point=entry_point)


@pytest.mark.parametrize("job_id", ["", "../x", "a/b", "x" * 129])
def test_job_id_is_a_safe_name(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(ValidationError):
        job_in(tmp_path, job_id=job_id)


def test_limits_are_bounded() -> None:
    with pytest.raises(ValidationError):
        SandboxLimits(memory_bytes=1024)
    with pytest.raises(ValidationError):
        SandboxLimits(cpu_s=0)
    with pytest.raises(ValidationError):
        SandboxLimits(wall_s=-1)


def test_job_round_trips_through_json(tmp_path: Path) -> None:
    job = job_in(tmp_path, params={"spec": {"arch": "cnn", "eps": 1.5}})
    assert SandboxJob.model_validate_json(job.model_dump_json()) == job


def test_reader_splits_lines_and_keeps_last_outcome() -> None:
    events: list[ProgressEvent] = []
    reader = _runner._Reader(events.append)
    first = ProgressEvent(message="a", fraction=0.5).model_dump_json()
    outcome = WorkerOutcome(status="succeeded", return_value={"x": 1}).model_dump_json()
    reader.feed(first[:5].encode())
    assert events == []
    reader.feed((first[5:] + "\n" + outcome + "\n").encode())
    assert events == [ProgressEvent(message="a", fraction=0.5)]
    assert reader.outcome == WorkerOutcome(status="succeeded", return_value={"x": 1})
    assert reader.protocol_error is None


def test_reader_flags_malformed_and_overlong_lines() -> None:
    reader = _runner._Reader(None)
    reader.feed(b'{"kind": "outcome", "status": "pwned"}\n')
    assert reader.outcome is None
    assert reader.protocol_error is not None
    reader = _runner._Reader(None)
    reader.feed(b"x" * (2 * 1024 * 1024))
    assert reader.protocol_error is not None
    assert "exceeded" in reader.protocol_error


def test_output_scan_lists_files_and_rejects_links_and_fifos(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.bin").write_bytes(b"12345")
    (tmp_path / "metrics.json").write_bytes(b"{}")
    (tmp_path / "link").symlink_to("/etc/passwd")
    (tmp_path / "dirlink").symlink_to("/etc")
    os.mkfifo(tmp_path / "fifo")
    files, total, rejected = _runner._scan_output(tmp_path)
    assert [(f.path, f.size) for f in files] == [("metrics.json", 2), ("sub/model.bin", 5)]
    assert total == 7
    assert rejected == ["dirlink", "fifo", "link"]


def test_signal_of_reads_bwrap_and_popen_conventions() -> None:
    assert _runner._signal_of(-signal.SIGXCPU, sandboxed=False) == signal.SIGXCPU
    assert _runner._signal_of(128 + signal.SIGXCPU, sandboxed=True) == signal.SIGXCPU
    assert _runner._signal_of(128 + signal.SIGXCPU, sandboxed=False) is None
    assert _runner._signal_of(3, sandboxed=True) is None


def test_overlapping_or_missing_dirs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "in" / "out").mkdir(parents=True)
    nested = SandboxJob(
        job_id="j", entry_point=ECHO, input_dir=tmp_path / "in", output_dir=tmp_path / "in" / "out"
    )
    with pytest.raises(InvalidInputError, match="overlap"):
        _runner._checked_dirs(nested)
    same = nested.model_copy(update={"output_dir": tmp_path / "in"})
    with pytest.raises(InvalidInputError, match="overlap"):
        _runner._checked_dirs(same)
    missing = nested.model_copy(update={"output_dir": tmp_path / "nope"})
    with pytest.raises(InvalidInputError, match="not a directory"):
        _runner._checked_dirs(missing)


def test_bwrap_argv_isolates_and_binds_only_what_is_needed(tmp_path: Path) -> None:
    job = job_in(tmp_path)
    argv = _runner._bwrap_argv(
        "/usr/bin/bwrap",
        sys.executable,
        job=job,
        input_dir=tmp_path / "in",
        output_dir=tmp_path / "out",
        job_file=tmp_path / "job.json",
    )
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    triples = {tuple(argv[i : i + 3]) for i in range(len(argv) - 2)}
    assert ("--ro-bind", str(tmp_path / "in"), "/sandbox/input") in triples
    assert ("--bind", str(tmp_path / "out"), "/sandbox/output") in triples
    assert ("--remount-ro", "/", "--chdir") in triples
    writable = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--dev-bind")]
    assert writable == [str(tmp_path / "out")]
    sources = [argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--ro-bind-try")]
    repo = Path(visdm.__file__).resolve().parents[2]
    assert "/" not in sources
    assert str(repo) not in sources  # the project's src and venv, never the whole checkout
    assert not any(s in ("/home", "/root", "/work") for s in sources)
    assert argv[argv.index("--") + 1 :][1:] == [
        "-I",
        "-B",
        "-m",
        "visdm.compute.sandbox._worker",
        "/sandbox/job.json",
    ]


def test_worker_refuses_entry_point_off_its_allow_list(tmp_path: Path) -> None:
    envelope = WorkerEnvelope(
        job=job_in(tmp_path, entry_point="visdm.compute.sandbox._testjobs:raise_error"),
        allowed_entry_points=(ECHO,),
        message_fd=3,
    )
    with open(os.devnull, "w", encoding="utf-8") as sink:
        outcome = _worker._run(envelope, _worker._Channel(sink))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "is not allowed" in outcome.error
