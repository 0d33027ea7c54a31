"""Pages anyone may read, with no session and no wallet: the market, search, proposals.

Prices, metadata, votes and results are public on the chain and in the index, so hiding them
behind a wallet would only hide them from the people deciding whether to take part.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from markupsafe import Markup

from visdm.errors import VisdmError
from visdm.jsonsafe import one_line

from . import _forms
from ._app import (
    acting,
    current_session,
    redirect,
    render,
    session_settings,
    state,
)
from ._auth import COOKIE
from ._svg import bars_svg, histogram_svg

__all__ = ["TERMINAL", "RefusedError", "router"]

router = APIRouter()

#: proposal states after which nothing changes any more (the live view closes its stream)
TERMINAL = frozenset({"completed", "wtp_missed", "failed", "rejected", "cancelled"})
_SYNC_EVERY_S = 2.0
#: after the chain did not answer, pages stop asking it for this long (a button still can)
_SYNC_BACKOFF_S = 30.0
_sync_lock = threading.Lock()
_next_sync: dict[int, float] = {}


class RefusedError(VisdmError, RuntimeError):
    """An SDK call behind a page failed; its one-line message is shown as it is."""


def _try(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """``fn(...)`` and no error, or ``None`` and the one-line error: one part of a page that
    cannot be read (the chain is down, no index yet) does not take the rest with it."""
    try:
        return fn(*args, **kwargs), None
    except VisdmError as exc:
        return None, one_line(str(exc))


def sync_now(request: Request, *, force: bool = False) -> str | None:
    """Follow the chain into the index (at most every two seconds); the error, if any."""
    from visdm.index import sync_index

    web = state(request)
    key = id(web)
    with _sync_lock:
        if not force and time.monotonic() < _next_sync.get(key, 0.0):
            return None
        _, error = _try(sync_index, web.settings, url=web.index_url)
        _next_sync[key] = time.monotonic() + (_SYNC_BACKOFF_S if error else _SYNC_EVERY_S)
    return error


# --- session start and end ---------------------------------------------------------------------
@router.get("/login")
def login(request: Request, token: str = "") -> Response:
    """Start a session with the launch token and drop the token from the address bar."""
    session = state(request).sessions.start(token)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, session.sid, httponly=True, samesite="strict", path="/")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session, _ = await acting(request)
    state(request).sessions.end(session.sid)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- the market --------------------------------------------------------------------------------
@router.get("/")
def overview(request: Request) -> Response:
    from ._reads import market_view

    market, error = _try(market_view, session_settings(request))
    return render(request, "overview.html", title="Market", market=market, error=error)


@router.post("/sync")
async def sync(request: Request) -> Response:
    session, form = await acting(request)
    error = await run_in_threadpool(sync_now, request, force=True)
    if error:
        raise RefusedError(error)
    back = _forms.optional_text(form, "next") or "/search"
    return redirect(session, back if back.startswith("/") else "/search", "index synced")


# --- search ------------------------------------------------------------------------------------
@router.get("/search")
def search_page(request: Request) -> Response:
    from visdm.index import search_index

    from ._facets import facets

    web = state(request)
    cfg = session_settings(request)
    query = request.query_params
    sync_error = sync_now(request)
    filters = _forms.filters_from(query)
    limit = _forms.integer(query, "limit", minimum=1, required=False) or 50
    offset = _forms.integer(query, "offset", minimum=0, required=False) or 0
    rank = _forms.optional_text(query, "rank") or "index"
    # the page of matches and the facets are two scans of the index: run them side by side
    # (SQLite releases the GIL while it scans)
    with ThreadPoolExecutor(2) as pool:
        page = pool.submit(
            _try,
            search_index,
            cfg,
            filters,
            url=web.index_url,
            limit=min(limit, 500),
            offset=offset,
            rank=rank,
        )
        counted = pool.submit(_try, facets, cfg, filters, url=web.index_url)
        result, error = page.result()
        summary, facet_error = counted.result()
    error = error or facet_error
    charts: list[Markup] = []
    if summary is not None:
        charts = [histogram_svg(h) for h in summary.histograms]
    pairs = _forms.query_pairs(query, _forms.FILTER_FIELDS)
    base = urlencode([*pairs, ("rank", rank), ("limit", str(limit))])
    return render(
        request,
        "search.html",
        title="Search",
        result=result,
        facets=summary,
        charts=charts,
        error=error,
        sync_error=sync_error,
        chosen={name: set(_forms.texts(query, name)) for name in _forms.FILTER_FIELDS},
        values={
            name: _forms.optional_text(query, name) or ""
            for name in _forms.FILTER_FIELDS
            if name not in ("label", "format", "exclude_flag", "region", "purpose")
        },
        pairs=pairs,
        base=base,
        rank=rank,
        limit=limit,
        offset=offset,
    )


@router.post("/search/save")
async def save_search(request: Request) -> Response:
    """Save every match of the search as a named selection (``market search --save``)."""
    from visdm.index import search_index

    session, form = await acting(request)
    name = _forms.text(form, "name", what="selection name")
    filters = _forms.filters_from(form)
    result = await run_in_threadpool(
        search_index,
        session_settings(request, session),
        filters,
        url=state(request).index_url,
        limit=1,
        save=name,
    )
    return redirect(
        session,
        "/consumer",
        f"saved {result.saved_samples} samples as the selection {name!r}",
    )


# --- proposals ---------------------------------------------------------------------------------
@router.get("/proposals")
def proposals_page(request: Request) -> Response:
    from ._app import tokens_text
    from ._reads import proposals

    rows, error = _try(proposals, session_settings(request))
    history = [  # oldest first: how prices moved, the offer where no price was agreed
        (f"#{p.proposal_id} {p.status.name.lower()}", float(tokens_text(p.price or p.offer)))
        for p in reversed(rows or [])
    ]
    chart = bars_svg(
        history[-30:], title="price per proposal (offer where none agreed)", unit="tokens"
    )
    return render(
        request, "proposals.html", title="Proposals", proposals=rows, error=error, chart=chart
    )


def _status(request: Request, pid: int) -> dict[str, Any]:
    from visdm.market import workflow

    session = current_session(request)
    viewer = session.unlocked if session is not None else None
    return workflow.proposal_status(session_settings(request), pid, viewer=viewer)


def _status_charts(view: dict[str, Any], request: Request | None = None) -> dict[str, Markup]:
    from ._app import tokens_text
    from ._reads import delegation_graph
    from ._svg import delegation_svg

    result = view.get("result") or {}
    payouts = [
        (str(r["provider"])[:10] + "…", float(tokens_text(r["amountWei"])))
        for r in result.get("payouts") or []
    ]
    votes = [
        (str(v["voter"])[:10] + "…", float(tokens_text(v["askWei"])) if v.get("askWei") else 0.0)
        for v in view.get("votes") or []
        if v.get("askWei") not in (None, "")
    ]
    charts = {
        "payouts": bars_svg(payouts, title="payout per provider", unit="tokens"),
        "asks": bars_svg(votes, title="asks per voter", unit="tokens"),
        "delegation": Markup(""),
    }
    if request is not None:
        web = state(request)
        graph, error = _try(
            delegation_graph, web.settings, int(view["proposalId"]), url=web.index_url
        )
        if graph is not None:
            charts["delegation"] = delegation_svg(graph.weights, graph.edges, graph.votes)
        elif error:
            charts["delegation"] = Markup('<p class="note">{}</p>').format(
                f"delegation graph unavailable: {error}"
            )
    return charts


def settled(view: dict[str, Any]) -> bool:
    """Whether a proposal's status can no longer change: a result a court still holds in its
    window can yet be overturned (cancelled)."""
    held = view.get("court") is not None and not view["court"]["released"]
    return view["status"] in TERMINAL and not held


@router.get("/proposals/{pid}")
def proposal_page(request: Request, pid: int) -> Response:
    sync_now(request)  # the delegation graph and votes come from the index
    view = _status(request, pid)
    return render(
        request,
        "proposal.html",
        title=f"Proposal {pid}",
        pid=pid,
        view=view,
        charts=_status_charts(view, request),
        terminal=settled(view),
    )


@router.get("/proposals/{pid}/status")
def proposal_fragment(request: Request, pid: int) -> Response:
    view = _status(request, pid)
    return render(request, "_status.html", pid=pid, view=view, charts=_status_charts(view, request))


@router.get("/proposals/{pid}/events")
async def proposal_events(request: Request, pid: int, max_events: int = 0) -> Response:
    """Server-sent events: the rendered status each time it changes, until it can no longer
    change (or after ``max_events``)."""
    await run_in_threadpool(_status, request, pid)  # a bad id fails here, before streaming
    web = state(request)

    async def stream() -> AsyncIterator[str]:
        sent, last = 0, ""
        while True:
            try:
                await run_in_threadpool(sync_now, request)
                view = await run_in_threadpool(_status, request, pid)
            except VisdmError as exc:
                yield f"event: problem\ndata: {json.dumps(one_line(str(exc)))}\n\n"
                await asyncio.sleep(web.poll_s)
                continue
            key = json.dumps(view, sort_keys=True, default=str)
            if key != last:
                last = key
                html = web.templates.get_template("_status.html").render(
                    pid=pid, view=view, charts=_status_charts(view, request)
                )
                data = "\n".join(f"data: {line}" for line in html.splitlines())
                yield f"event: status\n{data}\n\n"
                sent += 1
            if settled(view) or (max_events and sent >= max_events):
                yield "event: end\ndata: {}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(web.poll_s)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
