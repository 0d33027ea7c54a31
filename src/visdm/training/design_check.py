"""``python -m visdm.training.design_check``: the design check as a worker process.

The node's HTTP API never imports torch (a quote must not cost the API process ~1 GiB and
seconds of start-up, and a crafted spec must not be able to take the API down). It writes one
JSON object to this process's stdin — ``{"spec": {...}, "limits": {...}}``, optionally with
``"samples": n`` to check the memory of training ``n`` samples — and reads one JSON object back:
``{"ok": true, "params": …, "forward_flops_per_sample": …, "train_flops_per_sample": …,
"frontend_flops_per_sample": …, "bytes_per_sample": …, "step_bytes": …, "embedding_dim": …}``
or ``{"ok": false, "error": "DesignLimitError", "message": "…"}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from visdm.errors import InvalidInputError
from visdm.jsonsafe import load_untrusted_json


def check(request: Any) -> dict[str, Any]:
    """Run :func:`check_design` on a decoded request; errors become ``ok: false`` answers."""
    from visdm.training import NodeLimits, check_design

    try:
        if not isinstance(request, dict) or not isinstance(request.get("limits", {}), dict):
            raise InvalidInputError("the request must be {'spec': {...}, 'limits': {...}}")
        try:
            limits = NodeLimits(**request.get("limits", {}))
        except TypeError as exc:
            raise InvalidInputError(f"limits: {exc}") from None
        spec = request.get("spec")
        if not isinstance(spec, dict):
            raise InvalidInputError("the request's spec must be a JSON object")
        samples = request.get("samples")
        if samples is not None and (
            isinstance(samples, bool) or not isinstance(samples, int) or samples < 0
        ):
            raise InvalidInputError(
                f"the request's samples must be a non-negative integer, got {samples!r:.40}"
            )
        report = check_design(spec, limits, samples=samples)
    except InvalidInputError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    return {
        "ok": True,
        "params": report.params,
        "forward_flops_per_sample": report.forward_flops_per_sample,
        "train_flops_per_sample": report.train_flops_per_sample,
        "frontend_flops_per_sample": report.frontend_flops_per_sample,
        "bytes_per_sample": report.bytes_per_sample,
        "step_bytes": report.step_bytes,
        "embedding_dim": report.embedding_dim,
        "epochs": report.spec.epochs,
    }


def main() -> None:
    most = 1 << 20
    try:  # the spec inside is a consumer's: parsed with the guard of every untrusted input
        request = load_untrusted_json(
            sys.stdin.buffer.read(most + 1),
            what="the design check's request",
            max_bytes=most,
            hint='send {"spec": {...}, "limits": {...}}',
        )
    except InvalidInputError as exc:
        answer: dict[str, Any] = {"ok": False, "error": "InvalidInputError", "message": str(exc)}
    else:
        answer = check(request)
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
