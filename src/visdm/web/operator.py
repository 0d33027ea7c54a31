"""Node operators and governance: every admitted node with its public job queue, limits and
price (the node API's public ``/health``, ``/limits`` and ``/jobs``), and governance's actions
(``governance add-region``, ``admit-node``, ``suspend-node``, ``reinstate-node``)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import load_untrusted_object, one_line

from . import _forms
from ._app import acting, redirect, render, session_settings, state, unlocked

__all__ = ["router"]

router = APIRouter()

_NODE_TIMEOUT_S = 3.0
_MAX_ANSWER = 1 << 20


def _node_api(endpoint: str) -> dict[str, Any]:
    """What a node's public API says of itself; an unreachable node is a line, not an error."""
    out: dict[str, Any] = {"health": None, "limits": None, "jobs": [], "error": None}
    if not endpoint:
        out["error"] = "no API endpoint registered"
        return out
    base = endpoint.rstrip("/")
    try:
        for key in ("health", "limits"):
            response = httpx.get(f"{base}/{key}", timeout=_NODE_TIMEOUT_S)
            if response.status_code == 200:
                out[key] = load_untrusted_object(
                    response.content, what=f"node {base}'s {key}", max_bytes=_MAX_ANSWER
                )
        response = httpx.get(f"{base}/jobs", timeout=_NODE_TIMEOUT_S)
        if response.status_code == 200 and len(response.content) <= _MAX_ANSWER:
            jobs = response.json()
            out["jobs"] = [j for j in jobs if isinstance(j, dict)] if isinstance(jobs, list) else []
    except (httpx.HTTPError, VisdmError, ValueError) as exc:
        out["error"] = f"node API unreachable: {one_line(str(exc))[:200]}"
    return out


@router.get("/node")
def node_page(request: Request) -> Response:
    from visdm.governance import compute_nodes

    from ._reads import node_books

    nodes: list[dict[str, Any]] = []
    error = None
    try:
        cfg = session_settings(request)
        records = compute_nodes(cfg)
        books = node_books(cfg, [str(r.address) for r in records], url=state(request).index_url)
        for record in records:
            book = books[str(record.address)]
            nodes.append({"record": record, **book, **_node_api(record.endpoint)})
    except VisdmError as exc:
        error = one_line(str(exc))
    return render(request, "node.html", title="Compute nodes", nodes=nodes, error=error)


@router.get("/governance")
def governance_page(request: Request) -> Response:
    from ._reads import market_view

    market, error = None, None
    try:
        market = market_view(session_settings(request))
    except VisdmError as exc:
        error = one_line(str(exc))
    return render(request, "governance.html", title="Governance", market=market, error=error)


@router.post("/governance/region")
async def add_region(request: Request) -> Response:
    from visdm import governance

    session, form = await acting(request)
    name = _forms.text(form, "name", what="region")
    regions, tx = await run_in_threadpool(
        governance.add_region,
        session_settings(request, session),
        unlocked(session).local_account,
        name,
    )
    return redirect(session, "/governance", f"regions: {', '.join(regions)} (gas {tx.gas_used:,})")


@router.post("/governance/admit")
async def admit(request: Request) -> Response:
    from visdm import governance

    session, form = await acting(request)
    node = _forms.text(form, "node", what="node")
    record, tx = await run_in_threadpool(
        lambda: governance.admit_node(
            session_settings(request, session),
            unlocked(session).local_account,
            node,
            region=_forms.text(form, "region", what="region"),
            endpoint=_forms.text(form, "endpoint", what="endpoint"),
            encryption_key=_forms.text(form, "encryption_key", what="encryption key"),
            signer=_forms.optional_text(form, "signer"),
        )
    )
    return redirect(session, "/governance", f"node {record.address} admitted (gas {tx.gas_used:,})")


@router.post("/governance/suspend")
async def suspend(request: Request) -> Response:
    from visdm import governance

    session, form = await acting(request)
    node = _forms.text(form, "node", what="node")
    action = _forms.text(form, "action")
    if action not in ("suspend", "reinstate"):
        raise InvalidInputError(
            f"the field 'action' must be suspend or reinstate, got {action[:20]!r}"
        )
    record, tx = await run_in_threadpool(
        lambda: governance.set_node_suspended(
            session_settings(request, session),
            unlocked(session).local_account,
            node,
            suspended=action == "suspend",
        )
    )
    state_ = "suspended" if record.suspended else "active"
    sent = f"gas {tx.gas_used:,}" if tx is not None else "it already was"
    return redirect(session, "/governance", f"node {record.address} is {state_} ({sent})")
