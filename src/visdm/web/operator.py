"""Node operators and governance: every admitted node with its public job queue, limits and
price (the node API's public ``/health``, ``/limits`` and ``/jobs``), and governance's actions
(``governance add-region``, ``admit-node``, ``suspend-node``, ``reinstate-node``,
``set-parameters``, and the scoring fee of ``scoring fee``)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import load_untrusted_object, one_line

from . import _forms
from ._app import acting, current_session, redirect, render, session_settings, state, unlocked

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
    from visdm import governance

    from ._reads import market_view

    market, error, can_govern, fee_bps = None, None, False, None
    rows: list[dict[str, str]] = []
    session = current_session(request)
    try:
        cfg = session_settings(request)
        market = market_view(cfg)
        rows = _parameter_rows(market.parameters)
        fee_bps = governance.scoring_fee_bps(cfg)
        if session is not None and session.unlocked is not None:
            can_govern = governance.holds_governance(cfg, session.unlocked.address)
    except VisdmError as exc:
        error = one_line(str(exc))
    return render(
        request,
        "governance.html",
        title="Governance",
        market=market,
        parameter_rows=rows,
        scoring_fee_bps=fee_bps,
        can_govern=can_govern,
        error=error,
    )


def _parameter_rows(parameters: dict[str, Any]) -> list[dict[str, str]]:
    """Each market parameter: its name, its value as shown, and as the form takes it."""
    from visdm import governance

    rows = []
    for name in governance.PARAMETER_NAMES:
        value = parameters[name]
        entry = governance.parameter_text(name, value)
        shown = f"{value} s ({entry})" if name in governance.PERIOD_PARAMETERS else entry
        rows.append({"name": name, "shown": shown, "entry": entry})
    return rows


@router.post("/governance/parameters")
async def set_parameters(request: Request) -> Response:
    from visdm import governance

    session, form = await acting(request)
    # a blank field keeps its value: only the fields filled in are changes
    changes = {
        name: value
        for name in governance.PARAMETER_NAMES
        if (value := _forms.optional_text(form, name)) is not None
    }
    done = await run_in_threadpool(
        governance.set_market_parameters,
        session_settings(request, session),
        unlocked(session).local_account,
        changes,
    )
    shown = ", ".join(
        f"{name} {governance.parameter_text(name, old)} → {governance.parameter_text(name, new)}"
        for name, (old, new) in done.changed.items()
    )
    return redirect(
        session, "/governance", f"market parameters changed: {shown} (gas {done.tx.gas_used:,})"
    )


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


@router.post("/governance/scoring-fee")
async def set_scoring_fee(request: Request) -> Response:
    from visdm import governance

    session, form = await acting(request)
    fee = _forms.text(form, "scoring_fee_bps", what="scoring fee")
    before, after, tx = await run_in_threadpool(
        governance.set_scoring_fee,
        session_settings(request, session),
        unlocked(session).local_account,
        fee,
    )
    return redirect(
        session, "/governance", f"scoring fee {before} → {after} bps (gas {tx.gas_used:,})"
    )
