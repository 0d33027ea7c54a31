"""What a quote and a job's start share: the design check (a worker process: this process
never imports torch), the price, and a job's resource requirement with the budget's refusal.

The node's HTTP API (:mod:`.api`) prices and refuses quotes with these; the training worker
sizes each job with the same :func:`proposal_requirement` before it starts one, so a job the
node quoted is sized the same way it was refused or accepted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

from visdm.errors import VisdmError
from visdm.proposals import CheckedProposal

from ._budget import NodeBudget, Requirement, Scheduler, job_requirement

__all__ = [
    "QuoteError",
    "budget_refusal",
    "price_training",
    "proposal_requirement",
    "run_design_check",
]

_GFLOP = 10**9
_DESIGN_CHECK_TIMEOUT_S = 120.0
_REMEMBERED_DESIGNS = 256
#: design check answers by interpreter and request, oldest first
_REMEMBERED: dict[tuple[str, str], dict[str, Any]] = {}
_REMEMBERED_LOCK = threading.Lock()


class QuoteError(VisdmError):
    """A request the node refuses; ``status`` is the HTTP status that says why."""

    def __init__(
        self, status: int, kind: str, detail: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.retry_after = retry_after


def price_training(train_flops_per_sample: int, samples: int, epochs: int, price: int) -> int:
    """The quote in the token's smallest unit (integer arithmetic, rounded up)."""
    return -(-(train_flops_per_sample * samples * epochs * price) // _GFLOP)


def run_design_check(
    spec: Mapping[str, Any], limits: Mapping[str, Any], *, python: str = sys.executable
) -> dict[str, Any]:
    """The design check in a separate process (see :mod:`visdm.training.design_check`).

    Answers are remembered for the process (the last :data:`_REMEMBERED_DESIGNS`): the quote
    and the job's start ask about the same spec under the same limits, and each check is a
    process that imports torch."""
    request = json.dumps({"spec": spec, "limits": dict(limits)}, sort_keys=True)
    with _REMEMBERED_LOCK:
        known = _REMEMBERED.get((python, request))
    if known is not None:
        return dict(known)
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, the spec goes through stdin as JSON
            [python, "-m", "visdm.training.design_check"],
            input=request.encode(),
            capture_output=True,
            timeout=_DESIGN_CHECK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise QuoteError(503, "DesignCheckTimeout", "the design check timed out") from None
    try:
        answer: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        tail = done.stderr.decode(errors="replace")[-500:]
        raise QuoteError(
            500, "DesignCheckCrashed", f"the design check exited {done.returncode}: {tail}"
        ) from None
    with _REMEMBERED_LOCK:
        if len(_REMEMBERED) >= _REMEMBERED_DESIGNS:
            _REMEMBERED.pop(next(iter(_REMEMBERED)))
        _REMEMBERED[python, request] = dict(answer)
    return answer


def _refusal(cached: QuoteError) -> QuoteError:
    """A fresh exception for a cached refusal (one instance raised in many threads would share
    its traceback)."""
    return QuoteError(cached.status, cached.kind, str(cached))


def _encoded_sizes(checked: CheckedProposal, pixels: int) -> int:
    """Bytes of the selected images as the node decrypts them: each sample's ``byteSize`` from
    its asset's attested metadata, else one byte per pixel (an uncompressed image's size)."""
    sizes: dict[tuple[int, int], int] = {}
    for asset_id, public in checked.public.items():
        listed = (public.metadata or {}).get("samples")
        for entry in listed if isinstance(listed, list) else ():
            size = entry.get("byteSize") if isinstance(entry, dict) else None
            index = entry.get("index") if isinstance(entry, dict) else None
            if isinstance(size, int) and isinstance(index, int) and 0 <= size < 1 << 40:
                sizes[asset_id, index] = size
    return sum(sizes.get((s.asset_id, s.index), pixels) for s in checked.samples)


def proposal_requirement(
    checked: CheckedProposal,
    spec: Mapping[str, Any],
    design: Mapping[str, Any],
    *,
    samples: int,
    threads: int,
) -> Requirement:
    """What training ``samples`` of the proposal's selection needs (:func:`job_requirement`),
    from the design check's memory estimate (``bytes_per_sample``, ``step_bytes``)."""
    pixels = math.prod(int(d) for d in spec["input_shape"])
    return job_requirement(
        samples=samples,
        pixels_per_sample=pixels,
        bytes_per_sample=int(design.get("bytes_per_sample", 0)),
        step_bytes=int(design.get("step_bytes", 0)),
        input_bytes=_encoded_sizes(checked, pixels),
        validation_samples=int(checked.document.validation.samples),
        threads=threads,
    )


def budget_refusal(need: Requirement, budget: NodeBudget | None) -> str | None:
    """Why a job with this requirement can never run within ``budget`` (one line), else
    ``None`` (and always ``None`` without a budget)."""
    if budget is None:
        return None
    why = Scheduler(budget).refusal(need)
    return None if why is None else f"{why} ({budget.describe()}); ask for a smaller job"
