"""The compute node's sandbox for training jobs (design 3.4 step 3, section 5).

Decrypted samples meet training code only inside a bubblewrap sandbox: no network, a read-only
system, a private ``/tmp``, kernel limits on memory, CPU time and file size, and a wall clock
after which the node kills every process of the job. A node calls::

    job = SandboxJob(job_id="p42", entry_point="visdm.training:run_job",
                     input_dir=decrypted_dir, output_dir=out_dir,
                     limits=SandboxLimits(memory_bytes=8 << 30, cpu_s=7200, wall_s=3600))
    result = run_in_sandbox(job, allowed_entry_points={"visdm.training:run_job"},
                            on_progress=lambda event: print(event.message))
    if result.ok: ...

The entry point is ``function(job, progress) -> dict | None``; inside the sandbox ``job``'s
directories are :data:`SANDBOX_INPUT_DIR` and :data:`SANDBOX_OUTPUT_DIR`. A job's failure
never raises: it is a :class:`SandboxResult` with a :class:`SandboxStatus` — among them
``INPUT_REJECTED`` when the entry point raised :class:`InputRejectedError` to say that its
input, not the node, is at fault. What does raise is asking for something the node must not
do: code off the allow-list (:class:`~visdm.errors.EntryPointNotAllowedError`) or a run
without a working sandbox (:class:`~visdm.errors.SandboxUnavailableError`, unless
``allow_unsandboxed=True``).
"""

from ._messages import (
    InputRejectedError,
    OutputFile,
    ProgressEvent,
    ProgressReporter,
    SandboxJob,
    SandboxLimits,
    SandboxResult,
    SandboxStatus,
)
from ._runner import (
    SANDBOX_INPUT_DIR,
    SANDBOX_OUTPUT_DIR,
    run_in_sandbox,
    sandbox_status,
)

__all__ = [
    "SANDBOX_INPUT_DIR",
    "SANDBOX_OUTPUT_DIR",
    "InputRejectedError",
    "OutputFile",
    "ProgressEvent",
    "ProgressReporter",
    "SandboxJob",
    "SandboxLimits",
    "SandboxResult",
    "SandboxStatus",
    "run_in_sandbox",
    "sandbox_status",
]
