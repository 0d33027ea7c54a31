"""The typed messages between a compute node and its sandboxed worker.

The node describes a job with :class:`SandboxJob` (which code, which directories, which limits);
the worker answers on one pipe with JSON lines, each a :class:`ProgressEvent` or, last, a
:class:`WorkerOutcome`; the node turns what it saw into a :class:`SandboxResult`. Everything is a
frozen pydantic model so that a message is validated on both sides of the sandbox wall — the
worker's lines are untrusted input to the node.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from visdm.errors import InvalidInputError

__all__ = [
    "ENTRY_POINT_PATTERN",
    "InputRejectedError",
    "OutputFile",
    "ProgressEvent",
    "ProgressReporter",
    "SandboxJob",
    "SandboxLimits",
    "SandboxResult",
    "SandboxStatus",
    "WorkerEnvelope",
    "WorkerMessage",
    "WorkerOutcome",
]

#: ``package.module:function`` — a module-level function, never an arbitrary expression
ENTRY_POINT_PATTERN = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")

_MiB = 1024 * 1024


class InputRejectedError(InvalidInputError):
    """Raised by an entry point when the job's *input* is unusable — not the node, not the
    code: the job ends :attr:`SandboxStatus.INPUT_REJECTED` with this message, so the node can
    tell whoever sent the input that it was at fault instead of retrying."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SandboxLimits(_Message):
    """What one job may consume. Each limit is enforced by the kernel, not by the job.

    ``memory_bytes`` caps the address space (``RLIMIT_AS``), ``cpu_s`` the CPU time
    (``RLIMIT_CPU``; SIGXCPU at the limit, SIGKILL a second later), ``wall_s`` the elapsed time
    (the node kills the whole process group), ``max_output_bytes`` the size of any one file the
    job writes (``RLIMIT_FSIZE``) and of everything in the output directory together (checked
    after the run), ``tmp_bytes`` the private ``/tmp`` (a sized tmpfs; bwrap only),
    ``threads`` the job's CPU share: the threads its numeric libraries start (torch, OpenMP,
    BLAS; ``None`` leaves their defaults).
    """

    memory_bytes: int = Field(default=4096 * _MiB, ge=64 * _MiB)
    cpu_s: int = Field(default=3600, ge=1)
    wall_s: float = Field(default=3600.0, gt=0)
    max_output_bytes: int = Field(default=1024 * _MiB, ge=0)
    tmp_bytes: int = Field(default=256 * _MiB, ge=_MiB)
    threads: int | None = Field(default=None, ge=1, le=4096)


class SandboxJob(_Message):
    """One unit of work for the sandbox.

    ``entry_point`` names a module-level function as ``"package.module:function"``; the node only
    runs it if it is on the allow-list passed to :func:`run_in_sandbox`. The function is called as
    ``function(job, progress)`` and may return a JSON object, which comes back in
    :attr:`SandboxResult.return_value`. ``input_dir`` is read-only inside the sandbox and
    ``output_dir`` the only writable place besides a private ``/tmp``; inside the sandbox the job
    sees them at fixed paths (``/sandbox/input``, ``/sandbox/output``). ``params`` carries
    declarative settings (a model spec), never code.
    """

    job_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    entry_point: str
    input_dir: Path
    output_dir: Path
    limits: SandboxLimits = SandboxLimits()
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("entry_point")
    @classmethod
    def _entry_point_shape(cls, value: str) -> str:
        if not ENTRY_POINT_PATTERN.match(value):
            raise ValueError(f"entry point {value!r} is not of the form 'package.module:function'")
        return value


class ProgressEvent(_Message):
    """A line of progress from the running job (``fraction`` in [0, 1] when known)."""

    kind: Literal["progress"] = "progress"
    message: str = Field(max_length=4096)
    fraction: float | None = Field(default=None, ge=0.0, le=1.0)


class WorkerOutcome(_Message):
    """The worker's last line: how the entry point ended, as the worker saw it."""

    kind: Literal["outcome"] = "outcome"
    status: Literal["succeeded", "failed", "memory_exceeded", "input_rejected"]
    error: str | None = None
    traceback: str | None = None
    return_value: dict[str, JsonValue] | None = None
    #: CPU seconds of the worker and its reaped children, as the worker measured them
    cpu_s: float | None = None


#: one JSON line on the worker's message pipe
WorkerMessage = Annotated[ProgressEvent | WorkerOutcome, Field(discriminator="kind")]


class WorkerEnvelope(_Message):
    """What the node hands the worker bootstrap: the job (with in-sandbox paths), the allow-list
    (checked again inside, so a mistake in the node alone cannot run other code) and the file
    descriptor of the message pipe."""

    job: SandboxJob
    allowed_entry_points: tuple[str, ...]
    message_fd: int = Field(ge=3)


class SandboxStatus(StrEnum):
    """How a sandboxed job ended."""

    SUCCEEDED = "succeeded"
    #: the entry point raised; :attr:`SandboxResult.error` has the exception
    FAILED = "failed"
    #: an allocation failed under ``memory_bytes``
    MEMORY_EXCEEDED = "memory_exceeded"
    #: the entry point refused its input (:class:`InputRejectedError`): the input's sender is
    #: at fault, and running the job again would end the same way
    INPUT_REJECTED = "input_rejected"
    #: the kernel stopped the job at ``cpu_s``
    CPU_TIME_EXCEEDED = "cpu_time_exceeded"
    #: the node killed the job's process group at ``wall_s``
    TIMED_OUT = "timed_out"
    #: the output directory holds more than ``max_output_bytes`` or something not a plain file
    OUTPUT_REJECTED = "output_rejected"
    #: the worker died without reporting (a signal, ``os._exit``, a broken message)
    CRASHED = "crashed"
    #: the node killed the job because it is stopping: nobody's fault, run it again later
    CANCELLED = "cancelled"


class OutputFile(_Message):
    """A regular file the job left in its output directory (``path`` relative to it)."""

    path: str
    size: int


class SandboxResult(_Message):
    """What the node knows once the job is over; never raised, always returned."""

    job_id: str
    status: SandboxStatus
    error: str | None = None
    traceback: str | None = None
    return_value: dict[str, JsonValue] | None = None
    output_files: tuple[OutputFile, ...] = ()
    output_bytes: int = 0
    #: exit status as :attr:`subprocess.Popen.returncode` reports it (negative: a signal)
    exit_code: int | None = None
    wall_s: float
    #: CPU seconds the worker reported (``None`` when it died without reporting)
    cpu_s: float | None = None
    sandboxed: bool
    #: the last few KiB of the job's stdout and stderr, for diagnosis
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is SandboxStatus.SUCCEEDED


class ProgressReporter(Protocol):
    """What an entry point receives to report progress: ``progress("epoch 2", fraction=0.4)``."""

    def __call__(self, message: str, /, *, fraction: float | None = None) -> None: ...
