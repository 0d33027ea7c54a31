"""Adding an asset in the background, so that the page can show its progress.

``asset add`` validates, encrypts and stores every file before it registers the asset on chain;
for a large folder that takes minutes. The web app runs the same SDK call
(:func:`visdm.assets.add_asset`) in a thread, records its stage and sample count from the
SDK's own callbacks, and the page polls the job (htmx, every second) until it has a result or
a refusal, each shown as ``asset add`` would show it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visdm.accounts import UnlockedAccount
from visdm.config import Settings
from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import one_line

__all__ = ["AddJob", "start_add"]

#: jobs a session keeps (the oldest finished ones are dropped first)
MAX_JOBS = 16


@dataclass
class AddJob:
    """One ``add_asset`` call and what it has reported so far."""

    job_id: str
    directory: str
    stage: str = "validate"
    done: int = 0
    total: int | None = None
    finished: bool = False
    added: Any = None
    refusal: str | None = None
    rejected: list[dict[str, str]] = field(default_factory=list)
    label_problems: list[dict[str, Any]] = field(default_factory=list)


def _run(
    job: AddJob,
    settings: Settings,
    owner: UnlockedAccount,
    directory: Path,
    args: dict[str, Any],
    *,
    on_finished: Callable[[bool], None] | None,
) -> None:
    from visdm.assets import add_asset
    from visdm.ingest import IngestReport

    def on_stage(name: str, report: IngestReport | None) -> None:
        job.stage = name
        job.done = 0
        job.total = len(report.accepted) if report is not None else None

    def on_sample(done: int) -> None:
        job.done = done

    try:
        job.added = add_asset(
            settings, owner, directory, on_stage=on_stage, on_sample=on_sample, **args
        )
    except InvalidInputError as exc:
        job.refusal = one_line(str(exc))
        report = getattr(exc, "report", None)
        if isinstance(report, IngestReport):
            job.rejected = [{"file": r.name, "reason": r.reason} for r in report.rejected]
            job.label_problems = [
                {"file": report.labels_file.name, "line": p.line, "reason": p.reason}
                for p in report.label_problems
            ]
    except VisdmError as exc:
        job.refusal = one_line(str(exc))
    except OSError as exc:
        from visdm.cli import os_error_message

        job.refusal = one_line(os_error_message(exc))
    finally:
        job.finished = True
        if on_finished is not None:
            on_finished(job.added is not None)


def start_add(
    jobs: dict[str, AddJob],
    settings: Settings,
    owner: UnlockedAccount,
    directory: Path,
    args: dict[str, Any],
    *,
    on_finished: Callable[[bool], None] | None = None,
) -> AddJob:
    """Start ``add_asset`` in a thread and return its job (kept in ``jobs``); ``on_finished``
    is told, in that thread, whether the asset was added."""
    finished = [k for k, j in jobs.items() if j.finished]
    while len(jobs) >= MAX_JOBS and finished:
        del jobs[finished.pop(0)]
    if len(jobs) >= MAX_JOBS:
        raise InvalidInputError(
            f"{MAX_JOBS} assets are being added in this session already: wait for one to finish"
        )
    job = AddJob(job_id=secrets.token_urlsafe(12), directory=str(directory))
    jobs[job.job_id] = job
    threading.Thread(
        target=_run,
        args=(job, settings, owner, directory, args),
        kwargs={"on_finished": on_finished},
        name="visdm-add",
        daemon=True,
    ).start()
    return job
