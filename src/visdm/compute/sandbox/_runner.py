"""Run one job in a bubblewrap sandbox and supervise it from the node (design 3.4 step 3, 5).

The job sees a fresh root: the system (``/usr`` and the ``/lib*``/``/bin`` links), the Python
installation, the venv and the project's source read-only; its input read-only at
``/sandbox/input``; its output read-write at ``/sandbox/output``; a private, sized tmpfs at
``/sandbox/tmp`` (its ``$TMPDIR``); its own ``/proc`` and a minimal ``/dev``. Everything else —
``/home``, ``/root``, ``/work``, the node's keystore and data directory — does not exist in
there, and the root itself is read-only. Every namespace is new (no network beyond an
unconfigured loopback, no view of the node's processes), the job runs as ``nobody`` with no
capabilities and cannot make further user namespaces. Limits are the kernel's (rlimits, set by
the worker before it imports the job); the wall clock is the node's, which kills the whole
process group — and with it the PID namespace.

Without a working ``bwrap`` the node refuses to run a job: decrypted samples must never meet code
without the wall. ``allow_unsandboxed=True`` is for development machines only and says so loudly.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Any, cast

from pydantic import TypeAdapter, ValidationError

from visdm.errors import EntryPointNotAllowedError, InvalidInputError, SandboxUnavailableError

from ._messages import (
    OutputFile,
    ProgressEvent,
    SandboxJob,
    SandboxResult,
    SandboxStatus,
    WorkerEnvelope,
    WorkerMessage,
    WorkerOutcome,
)

__all__ = ["SANDBOX_INPUT_DIR", "SANDBOX_OUTPUT_DIR", "run_in_sandbox"]

_log = logging.getLogger("visdm.sandbox")

#: where the job sees its directories inside the sandbox
SANDBOX_INPUT_DIR = Path("/sandbox/input")
SANDBOX_OUTPUT_DIR = Path("/sandbox/output")
_SANDBOX_JOB_FILE = "/sandbox/job.json"
#: the job's private, sized tmpfs ($TMPDIR and $HOME). Not at /tmp: the node's code may itself
#: live under /tmp (a CI checkout), and a tmpfs there would hide it from the sandbox.
_SANDBOX_TMP = "/sandbox/tmp"

_WORKER_MODULE = "visdm.compute.sandbox._worker"
#: namespaces, identity and privileges; shared by the probe and the real run
_ISOLATION_FLAGS = (
    "--unshare-all",  # user, ipc, pid, net, uts, cgroup: no network, no view of the node
    "--unshare-user",  # required, not "try": the uid below needs it
    "--uid",
    "65534",
    "--gid",
    "65534",
    "--disable-userns",  # no nested namespaces, which would hand capabilities back
    "--cap-drop",
    "ALL",
    "--die-with-parent",
    "--new-session",  # no TIOCSTI into the node's terminal
)
_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_LOG_TAIL_BYTES = 8192
_MAX_LINE_BYTES = 1024 * 1024
_POLL_S = 0.05
_DRAIN_S = 2.0
_PROBE_TIMEOUT_S = 30.0
_MESSAGES: TypeAdapter[ProgressEvent | WorkerOutcome] = TypeAdapter(WorkerMessage)

ProgressCallback = Callable[[ProgressEvent], None]


def run_in_sandbox(
    job: SandboxJob,
    *,
    allowed_entry_points: Collection[str],
    python: str = sys.executable,
    use_bwrap: bool = True,
    bwrap: str = "bwrap",
    allow_unsandboxed: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> SandboxResult:
    """Run ``job`` in a fresh sandbox and return how it ended.

    ``allowed_entry_points`` is the node's allow-list: a job naming anything else raises
    :class:`EntryPointNotAllowedError` before any process starts. ``python`` is the interpreter
    (with visdm installed) that runs the worker. ``on_progress`` is called in this thread for
    each progress line while the job runs; an exception from it stops the job and propagates.
    Setting ``cancel`` (another thread: the node is stopping) kills the job's processes within
    a fraction of a second and ends it :attr:`SandboxStatus.CANCELLED`.

    Raises :class:`SandboxUnavailableError` when ``bwrap`` is missing or cannot create namespaces
    (or ``use_bwrap=False``), unless ``allow_unsandboxed=True``: then the job runs as a plain
    subprocess with the same rlimits, its own session and a private temp dir, and a warning is
    logged on ``visdm.sandbox``. Job failures — an exception, a limit, a crash — never raise:
    they come back in :attr:`SandboxResult.status`.
    """
    allowed = frozenset(allowed_entry_points)
    if job.entry_point not in allowed:
        raise EntryPointNotAllowedError(
            f"job {job.job_id!r} names entry point {job.entry_point!r}, which is not on this "
            f"node's allow-list ({', '.join(sorted(allowed)) or 'empty'}); nothing was run"
        )
    input_dir, output_dir = _checked_dirs(job)
    bwrap_path = _usable_bwrap(bwrap, python) if use_bwrap else None
    if bwrap_path is None:
        why = "use_bwrap=False was passed" if not use_bwrap else _unusable_reason(bwrap, python)
        if not allow_unsandboxed:
            raise SandboxUnavailableError(
                f"cannot sandbox job {job.job_id!r}: {why}. Install bubblewrap (Debian: "
                "apt-get install bubblewrap) on a kernel that allows user namespaces; only on a "
                "development machine pass allow_unsandboxed=True"
            )
        _log.warning(
            "RUNNING JOB %r WITHOUT A SANDBOX (%s): it can reach the network and write "
            "anywhere this user can; allow_unsandboxed=True is for development only",
            job.job_id,
            why,
        )
    with tempfile.TemporaryDirectory(prefix="visdm-sandbox-") as control_text:
        control = Path(control_text)
        return _supervise(
            job,
            allowed=tuple(sorted(allowed)),
            python=python,
            bwrap_path=bwrap_path,
            input_dir=input_dir,
            output_dir=output_dir,
            control=control,
            on_progress=on_progress,
            cancel=cancel,
        )


# --- checks before anything runs --------------------------------------------------------------
def _checked_dirs(job: SandboxJob) -> tuple[Path, Path]:
    input_dir = job.input_dir.resolve()
    output_dir = job.output_dir.resolve()
    for name, path in (("input_dir", input_dir), ("output_dir", output_dir)):
        if not path.is_dir():
            raise InvalidInputError(f"job {job.job_id!r}: {name} {path} is not a directory")
    overlap = input_dir in (output_dir, *output_dir.parents) or output_dir in input_dir.parents
    if overlap:
        raise InvalidInputError(
            f"job {job.job_id!r}: input_dir {input_dir} and output_dir {output_dir} overlap; "
            "the input must stay read-only, so give them separate directories"
        )
    return input_dir, output_dir


@functools.lru_cache(maxsize=4)
def sandbox_status(bwrap: str = "bwrap", python: str = sys.executable) -> dict[str, str | bool]:
    """Whether jobs would run in bubblewrap here (probed once per process: an empty sandbox
    with the jobs' isolation flags is started), and why not when they would not."""
    path = shutil.which(bwrap)
    problem = "no bwrap executable" if path is None else _probe_bwrap(path, python)
    return {
        "sandbox": "bubblewrap",
        "usable": problem is None,
        "problem": "" if problem is None else problem.splitlines()[0][:200],
    }


def _usable_bwrap(bwrap: str, python: str) -> str | None:
    path = shutil.which(bwrap)
    if path is None or _probe_bwrap(path, python) is not None:
        return None
    return path


def _unusable_reason(bwrap: str, python: str) -> str:
    path = shutil.which(bwrap)
    if path is None:
        return f"no bwrap executable at {bwrap!r}"
    return f"{path} cannot create the sandbox's namespaces: {_probe_bwrap(path, python)}"


def _probe_bwrap(bwrap_path: str, python: str) -> str | None:
    """Start an empty sandbox with the same isolation flags; ``None`` if it works, else why."""
    argv = [bwrap_path, *_ISOLATION_FLAGS, "--ro-bind", "/", "/", "--", python, "-I", "-c", ""]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv,
            env=_scrubbed_env(home=_SANDBOX_TMP, tmp=_SANDBOX_TMP),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
    return None


# --- the sandbox's file system ----------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _interpreter_dirs(python: str) -> tuple[str, ...]:
    """Directories the interpreter needs: its prefixes, ``sys.path`` (venv, site-packages, an
    editable project's ``src``) and visdm's package directory, minus what ``/usr`` covers."""
    code = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.find_spec('visdm')\n"
        "locations = list(spec.submodule_search_locations or []) if spec else []\n"
        "print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,"
        " *sys.path, *locations]))\n"
    )
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [python, "-I", "-c", code],
        env=_scrubbed_env(home=_SANDBOX_TMP, tmp=_SANDBOX_TMP),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=_PROBE_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise SandboxUnavailableError(
            f"cannot ask {python} for its paths: {done.stderr.decode(errors='replace').strip()}"
        )
    found = {Path(python).absolute().parent}
    for entry in json.loads(done.stdout):
        if entry and Path(entry).is_absolute() and Path(entry).is_dir():
            found.add(Path(entry))
            found.add(Path(entry).resolve())
    kept: list[Path] = []
    for path in sorted(found, key=lambda p: len(p.parts)):
        covered = any(path == k or k in path.parents for k in kept)
        if path == Path("/") or path.parts[1:2] == ("usr",) or covered:
            continue
        kept.append(path)
    return tuple(str(p) for p in sorted(kept))


def _bwrap_argv(
    bwrap_path: str,
    python: str,
    *,
    job: SandboxJob,
    input_dir: Path,
    output_dir: Path,
    job_file: Path,
) -> list[str]:
    argv = [bwrap_path, *_ISOLATION_FLAGS, "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        host = Path("/", name)
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    for file in _SYSTEM_FILES:
        argv += ["--ro-bind-try", file, file]
    for directory in _interpreter_dirs(python):
        argv += ["--ro-bind", directory, directory]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(job.limits.tmp_bytes), "--tmpfs", _SANDBOX_TMP]
    argv += ["--ro-bind", str(input_dir), str(SANDBOX_INPUT_DIR)]
    argv += ["--bind", str(output_dir), str(SANDBOX_OUTPUT_DIR)]
    argv += ["--ro-bind", str(job_file), _SANDBOX_JOB_FILE]
    argv += ["--remount-ro", "/", "--chdir", _SANDBOX_TMP, "--"]
    return [*argv, python, "-I", "-B", "-m", _WORKER_MODULE, _SANDBOX_JOB_FILE]


def _scrubbed_env(*, home: str, tmp: str) -> dict[str, str]:
    """A fresh environment: nothing of the node's (proxies, keystore passwords, tokens).
    ``MALLOC_ARENA_MAX`` keeps glibc from reserving 64 MiB of address space per thread, which
    would otherwise eat the RLIMIT_AS budget without using memory."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "USER": "nobody",
        "LOGNAME": "nobody",
        "MALLOC_ARENA_MAX": "2",
    }


# --- supervision ------------------------------------------------------------------------------
class _Reader:
    """Splits the worker's message pipe into validated messages; bounded memory."""

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self._buffer = b""
        self._on_progress = on_progress
        self.outcome: WorkerOutcome | None = None
        self.protocol_error: str | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > _MAX_LINE_BYTES:
            self.protocol_error = f"a message line exceeded {_MAX_LINE_BYTES} bytes"
            self._buffer = b""
        for line in lines:
            if not line.strip():
                continue
            try:
                message = _MESSAGES.validate_json(line)
            except ValidationError as exc:
                self.protocol_error = f"malformed message from the worker: {exc}"
                continue
            if isinstance(message, WorkerOutcome):
                self.outcome = message
            elif self._on_progress is not None:
                self._on_progress(message)


def _supervise(
    job: SandboxJob,
    *,
    allowed: tuple[str, ...],
    python: str,
    bwrap_path: str | None,
    input_dir: Path,
    output_dir: Path,
    control: Path,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None = None,
) -> SandboxResult:
    read_fd, write_fd = os.pipe()
    try:
        job_file = control / "job.json"
        if bwrap_path is not None:
            inner = job.model_copy(
                update={"input_dir": SANDBOX_INPUT_DIR, "output_dir": SANDBOX_OUTPUT_DIR}
            )
            argv = _bwrap_argv(
                bwrap_path,
                python,
                job=job,
                input_dir=input_dir,
                output_dir=output_dir,
                job_file=job_file,
            )
            env = _scrubbed_env(home=_SANDBOX_TMP, tmp=_SANDBOX_TMP)
            cwd = control
        else:
            inner = job.model_copy(update={"input_dir": input_dir, "output_dir": output_dir})
            argv = [python, "-I", "-B", "-m", _WORKER_MODULE, str(job_file)]
            private_tmp = control / "tmp"
            private_tmp.mkdir()
            env = _scrubbed_env(home=str(private_tmp), tmp=str(private_tmp))
            cwd = private_tmp
        envelope = WorkerEnvelope(job=inner, allowed_entry_points=allowed, message_fd=write_fd)
        job_file.write_text(envelope.model_dump_json(), encoding="utf-8")
        job_file.chmod(0o644)
        started = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,  # one process group to kill at the deadline
        )
    finally:
        os.close(write_fd)
    reader = _Reader(on_progress)
    log = bytearray()
    with contextlib.ExitStack() as stack:
        stack.callback(os.close, read_fd)
        stack.enter_context(cast(IO[bytes], proc.stdout))
        stack.callback(_reap, proc)
        status, stopped = _watch(
            proc, read_fd, reader, log, deadline=started + job.limits.wall_s, cancel=cancel
        )
    wall_s = time.monotonic() - started
    files, total, rejected = _scan_output(output_dir)
    exit_code = os.waitstatus_to_exitcode(status)
    common: dict[str, Any] = {
        "job_id": job.job_id,
        "output_files": tuple(files),
        "output_bytes": total,
        "exit_code": exit_code,
        "wall_s": wall_s,
        "cpu_s": reader.outcome.cpu_s if reader.outcome else None,
        "sandboxed": bwrap_path is not None,
        "log_tail": bytes(log[-_LOG_TAIL_BYTES:]).decode(errors="replace"),
    }
    limits = job.limits
    outcome = reader.outcome
    if stopped == "cancelled":
        return SandboxResult(
            status=SandboxStatus.CANCELLED,
            error="the node stopped the job (it is shutting down); its processes were killed",
            **common,
        )
    if stopped == "timed_out":
        return SandboxResult(
            status=SandboxStatus.TIMED_OUT,
            error=f"wall-clock limit of {limits.wall_s} s reached; the job's processes were killed",
            **common,
        )
    if outcome is not None and exit_code == 0:
        status_ = SandboxStatus(outcome.status)
        error = outcome.error
        if status_ is SandboxStatus.SUCCEEDED and (rejected or total > limits.max_output_bytes):
            status_ = SandboxStatus.OUTPUT_REJECTED
            error = (
                f"output holds entries that are not plain files: {', '.join(rejected)}"
                if rejected
                else f"output holds {total} bytes, over the limit of {limits.max_output_bytes}"
            )
        return SandboxResult(
            status=status_,
            error=error,
            traceback=outcome.traceback,
            return_value=outcome.return_value,
            **common,
        )
    signal_number = _signal_of(exit_code, sandboxed=bwrap_path is not None)
    if signal_number == signal.SIGXCPU:
        return SandboxResult(
            status=SandboxStatus.CPU_TIME_EXCEEDED,
            error=f"CPU-time limit of {limits.cpu_s} s reached; the kernel stopped the job",
            **common,
        )
    how = (
        f"was killed by {signal.Signals(signal_number).name}"
        + (" (the hard CPU limit, or the kernel's OOM killer)" if signal_number == 9 else "")
        if signal_number is not None
        else f"exited with status {exit_code}"
    )
    detail = f" ({reader.protocol_error})" if reader.protocol_error else ""
    return SandboxResult(
        status=SandboxStatus.CRASHED,
        error=f"the worker {how} without reporting an outcome{detail}; an allocation past the "
        f"memory limit of {limits.memory_bytes} bytes in native code ends this way too",
        **common,
    )


def _watch(
    proc: subprocess.Popen[bytes],
    read_fd: int,
    reader: _Reader,
    log: bytearray,
    *,
    deadline: float,
    cancel: threading.Event | None = None,
) -> tuple[int, str | None]:
    """Pump both pipes until the process exits, the deadline passes or ``cancel`` is set;
    returns the wait status and why the node killed it (``"timed_out"``, ``"cancelled"``) or
    ``None``."""
    log_fd = cast(IO[bytes], proc.stdout).fileno()
    for fd in (read_fd, log_fd):
        os.set_blocking(fd, False)

    def pump(fd: int) -> bool:
        """Read what is there; ``False`` at end of file."""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            if fd == read_fd:
                reader.feed(chunk)
            else:
                log.extend(chunk)
                del log[: max(0, len(log) - _LOG_TAIL_BYTES)]

    stopped: str | None = None
    status: int | None = None
    drain_until = 0.0
    with selectors.DefaultSelector() as selector:
        selector.register(read_fd, selectors.EVENT_READ)
        selector.register(log_fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if status is None:
                pid, waited = os.waitpid(proc.pid, os.WNOHANG)
                cancelled = cancel is not None and cancel.is_set()
                if not pid and (now >= deadline or cancelled):
                    stopped = "cancelled" if cancelled else "timed_out"
                    _kill_group(proc.pid)
                    pid, waited = os.waitpid(proc.pid, 0)
                if pid:
                    status = waited
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    _kill_group(proc.pid)  # what the job left in its group (unsandboxed runs)
                    drain_until = now + _DRAIN_S
            # Once the worker is reaped, wait (briefly) for end of file on both pipes: only then
            # has every process that held them — the job's children too — gone.
            if status is not None and (not selector.get_map() or now >= drain_until):
                break
            for key, _ in selector.select(timeout=_POLL_S):
                if not pump(int(key.fd)):
                    selector.unregister(key.fd)
    return status, stopped


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """On the way out of an error (a callback raised): kill and wait, never leave a zombie."""
    if proc.returncode is None:
        _kill_group(proc.pid)
        proc.wait()


def _signal_of(exit_code: int, *, sandboxed: bool) -> int | None:
    if exit_code < 0:
        return -exit_code
    # bwrap reports a child killed by signal N as exit status 128 + N
    if sandboxed and 128 < exit_code < 128 + signal.NSIG:
        return exit_code - 128
    return None


def _scan_output(root: Path) -> tuple[list[OutputFile], int, list[str]]:
    """Regular files under ``root`` (never following links), their total size, and the paths of
    anything else (symlinks, FIFOs, devices) — a symlink could point the node at its own files."""
    files: list[OutputFile] = []
    rejected: list[str] = []
    total = 0
    for entry in _walk(root):
        info = entry.lstat()
        relative = entry.relative_to(root).as_posix()
        if stat.S_ISDIR(info.st_mode):
            continue
        if stat.S_ISREG(info.st_mode):
            files.append(OutputFile(path=relative, size=info.st_size))
            total += info.st_size
        else:
            rejected.append(relative)
    return sorted(files, key=lambda f: f.path), total, sorted(rejected)


def _walk(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        for name in (*dirnames, *filenames):
            yield Path(directory, name)
