"""Worker bootstrap, run inside the sandbox: ``python -m visdm.compute.sandbox._worker JOB.json``.

Order matters: read the envelope, check the entry point against the allow-list again, lower the
kernel limits (soft *and* hard, so the job cannot raise them back: inside bwrap it holds no
capabilities), and only then import the job's module — so that even the job's import-time code
runs under the limits. Whatever happens in the job, the worker reports one
:class:`~visdm.compute.sandbox._messages.WorkerOutcome` line; if it cannot (a signal, a hard
crash), the node notices the missing line and reports a crash itself.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from pydantic import JsonValue, TypeAdapter, ValidationError

from ._messages import InputRejectedError, ProgressEvent, WorkerEnvelope, WorkerOutcome

__all__ = ["apply_limits", "main"]

_TRACEBACK_CHARS = 8192
_ERROR_CHARS = 2048
_CPU_GRACE_S = 1
#: what torch, OpenMP and the BLAS libraries read their thread count from when imported
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_RETURN_ADAPTER: TypeAdapter[dict[str, JsonValue] | None] = TypeAdapter(dict[str, JsonValue] | None)


def apply_limits(*, memory_bytes: int, cpu_s: int, file_bytes: int) -> None:
    """Lower RLIMIT_AS, RLIMIT_CPU (hard = soft + 1 s, the SIGKILL backstop), RLIMIT_FSIZE, and
    turn off core dumps (a core would spill decrypted samples to disk)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + _CPU_GRACE_S))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class _Channel:
    """Writes one JSON line per message to the node's pipe; the job gets it as its reporter."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def send(self, message: ProgressEvent | WorkerOutcome) -> None:
        self._stream.write(message.model_dump_json() + "\n")
        self._stream.flush()

    def __call__(self, message: str, /, *, fraction: float | None = None) -> None:
        self.send(ProgressEvent(message=message[:4096], fraction=fraction))


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _resolve(entry_point: str) -> Any:
    module_name, _, attr = entry_point.partition(":")
    module = importlib.import_module(module_name)
    function = getattr(module, attr, None)
    if not callable(function):
        raise TypeError(f"entry point {entry_point!r} is not a callable in {module_name}")
    return function


def _describe(exc: BaseException) -> tuple[str, str]:
    text = "".join(traceback.format_exception(exc))
    return f"{type(exc).__name__}: {exc}", text[-_TRACEBACK_CHARS:]


def _run(envelope: WorkerEnvelope, channel: _Channel) -> WorkerOutcome:
    job = envelope.job
    if job.entry_point not in envelope.allowed_entry_points:
        return WorkerOutcome(
            status="failed", error=f"entry point {job.entry_point!r} is not allowed"
        )
    limits = job.limits
    apply_limits(
        memory_bytes=limits.memory_bytes, cpu_s=limits.cpu_s, file_bytes=limits.max_output_bytes
    )
    if limits.threads is not None:  # before the job's imports: the libraries read it then
        for name in _THREAD_VARIABLES:
            os.environ[name] = str(limits.threads)
    try:
        function = _resolve(job.entry_point)
        value = function(job, channel)
        return_value = _RETURN_ADAPTER.validate_python(value)
    except MemoryError as exc:
        error, text = _describe(exc)
        return WorkerOutcome(
            status="memory_exceeded",
            error=f"{error} (memory limit {limits.memory_bytes} bytes)",
            traceback=text,
        )
    except InputRejectedError as exc:
        return WorkerOutcome(status="input_rejected", error=str(exc)[:_ERROR_CHARS])
    except ValidationError as exc:
        return WorkerOutcome(
            status="failed", error=f"entry point returned a value that is not a JSON object: {exc}"
        )
    except BaseException as exc:  # the job's SystemExit or KeyboardInterrupt is a failure too
        error, text = _describe(exc)
        return WorkerOutcome(status="failed", error=error, traceback=text)
    return WorkerOutcome(status="succeeded", return_value=return_value)


def main(argv: list[str] | None = None) -> int:
    """Run the job described by the envelope file ``argv[0]``; exit 0 once an outcome is sent."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m visdm.compute.sandbox._worker JOB.json", file=sys.stderr)
        return 2
    envelope = WorkerEnvelope.model_validate(json.loads(Path(args[0]).read_bytes()))
    with os.fdopen(envelope.message_fd, "w", encoding="utf-8") as stream:
        channel = _Channel(stream)
        outcome = _run(envelope, channel).model_copy(update={"cpu_s": _cpu_seconds()})
        try:
            channel.send(outcome)
        except MemoryError:  # the outcome itself did not fit: send the short version
            channel.send(WorkerOutcome(status=outcome.status, error=(outcome.error or "")[:512]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
