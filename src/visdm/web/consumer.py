"""The consumer's pages: saved selections, propose (``propose``), the node's quote and design
verdict before paying, start training (``train``), accept a counter offer, reclaim, and the
model (``model get``): downloaded through the browser with its checked model card, or written
to a file on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.responses import Response as RawResponse

from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import one_line

from . import _forms
from ._app import (
    acting,
    current_session,
    redirect,
    render,
    session_settings,
    tokens_text,
    unlocked,
)

__all__ = ["propose_inputs", "router"]

router = APIRouter()


@router.get("/consumer")
def consumer_page(request: Request) -> Response:
    from visdm.governance import compute_nodes
    from visdm.index import list_saved_searches

    from ._reads import proposals
    from .spec_builder import specs_dir

    session = current_session(request)
    cfg = session_settings(request, session)
    me = None
    if session is not None:  # a wallet session's proposals are its address's too
        me = session.unlocked.address if session.unlocked else session.wallet
    errors: list[str] = []
    nodes: list[Any] = []
    mine: list[Any] = []
    try:
        nodes = [n for n in compute_nodes(cfg) if n.active]
        if me is not None:
            mine = [p for p in proposals(cfg) if str(p.consumer).lower() == str(me).lower()]
    except VisdmError as exc:
        errors.append(one_line(str(exc)))
    return render(
        request,
        "consumer.html",
        title="Consumer",
        me=me,
        # saved selections are this data directory's own files, not public: a session only
        selections=list_saved_searches(cfg) if session is not None else [],
        specs=sorted(str(p) for p in specs_dir(cfg).glob("*.json")) if session else [],
        nodes=nodes,
        mine=mine,
        errors=errors,
    )


def propose_inputs(form: Any, cfg: Any) -> tuple[dict[str, Any], str]:
    """The propose form as :func:`visdm.market.workflow.propose`'s keywords (all but ``node``)
    and the compute node as typed (an address or a name, resolved against the chain)."""
    from visdm.index import load_saved_search
    from visdm.proposals import SelectedAsset

    selection: list[SelectedAsset | int] = []
    for value in _forms.texts(form, "asset"):
        for part in value.split(","):
            if part.strip():
                if not part.strip().isdigit():
                    raise InvalidInputError(
                        f"the field 'asset' must hold asset ids, got {part.strip()[:40]!r}"
                    )
                selection.append(int(part))
    if (name := _forms.optional_text(form, "selection")) is not None:
        saved = load_saved_search(cfg, name)
        selection += [SelectedAsset(s.asset_id, tuple(s.sample_indexes)) for s in saved.selection]
    if not selection:
        raise InvalidInputError("choose the data: a saved selection or asset ids")
    inputs = {
        "selection": selection,
        "model_spec": Path(_forms.text(form, "spec", what="model spec")),
        "validation": Path(_forms.text(form, "validation", what="validation folder")),
        "offer": _forms.tokens(form, "offer"),
        "wtp_bps": int(_forms.whole(form, "wtp_bps", minimum=0) or 0),
        "voting_period_s": _forms.integer(form, "voting_period", minimum=1, required=False) or 3600,
        "min_share_bps": _forms.integer(form, "min_share_bps", minimum=0, required=False) or 0,
        "classes": _forms.csv_list(_forms.optional_text(form, "classes")),
    }
    return inputs, _forms.text(form, "node", what="compute node")


@router.post("/consumer/propose")
async def propose(request: Request) -> Response:
    """``propose``: curate, seal the validation set, sign, escrow the offer."""
    from visdm import governance
    from visdm.market import workflow

    session, form = await acting(request)
    cfg = session_settings(request, session)
    inputs, node_text = propose_inputs(form, cfg)
    account = unlocked(session)

    def run() -> Any:
        node = governance.resolve_node(cfg, node_text).address
        return workflow.propose(cfg, account, node=node, **inputs)

    created = await run_in_threadpool(run)
    pid = created.proposal_id
    return redirect(
        session,
        f"/proposals/{pid}",
        f"proposal {pid} created: {sum(created.document.sample_counts)} samples, "
        f"{tokens_text(created.document.offer)} tokens in escrow",
        *(f"note: {n}" for n in created.notes),
    )


def _pid(form: Any) -> int:
    return _forms.whole(form, "proposal", minimum=1)


@router.post("/consumer/quote")
async def quote(request: Request) -> Response:
    """The node's signed quote and design verdict, shown before anything is paid."""
    from visdm.market import workflow

    session, form = await acting(request)
    pid = _pid(form)
    offer = await run_in_threadpool(
        workflow.request_quote,
        session_settings(request, session),
        pid,
        consumer=unlocked(session),
    )
    return render(request, "quote.html", title=f"Quote for proposal {pid}", pid=pid, offer=offer)


@router.post("/consumer/train")
async def train(request: Request) -> Response:
    """``train --max-cost``: pay at most the cost the quote page showed."""
    from visdm.market import workflow

    session, form = await acting(request)
    pid = _pid(form)
    max_cost = _forms.whole(form, "max_cost_wei", minimum=0)
    offer, tx = await run_in_threadpool(
        lambda: workflow.start_training(
            session_settings(request, session), unlocked(session), pid, max_cost=max_cost
        )
    )
    return redirect(
        session,
        f"/proposals/{pid}",
        f"training started: {tokens_text(offer.quote.training_cost)} tokens in escrow for the "
        f"node (gas {tx.gas_used:,})",
    )


@router.post("/consumer/accept-counter")
async def accept_counter(request: Request) -> Response:
    from visdm.market import workflow

    session, form = await acting(request)
    pid = _pid(form)
    tx = await run_in_threadpool(
        workflow.accept_counter, session_settings(request, session), unlocked(session), pid
    )
    return redirect(session, f"/proposals/{pid}", f"counter offer accepted (gas {tx.gas_used:,})")


@router.post("/consumer/tally")
async def tally(request: Request) -> Response:
    """``tally`` (anyone may run it after the voting deadline)."""
    from visdm.market import workflow

    session, form = await acting(request)
    pid = _pid(form)
    receipt = await run_in_threadpool(
        workflow.tally, session_settings(request, session), unlocked(session), pid
    )
    out = receipt.outcome
    return redirect(
        session,
        f"/proposals/{pid}",
        f"tallied: {out.status.name.lower()} at {tokens_text(out.clearing_price)} tokens",
    )


@router.post("/consumer/reclaim")
async def reclaim(request: Request) -> Response:
    from visdm.market import workflow

    session, form = await acting(request)
    pid = _pid(form)
    cfg = session_settings(request, session)
    account = unlocked(session)

    def run() -> int:
        workflow.reclaim(cfg, account, pid)
        return workflow.withdraw(cfg, account)[0]

    amount = await run_in_threadpool(run)
    return redirect(session, f"/proposals/{pid}", f"reclaimed: {tokens_text(amount)} tokens back")


@router.post("/release")
async def release(request: Request) -> Response:
    """Release a result after its challenge window: anyone may, consumer or not."""
    from visdm.market import workflow

    session, form = await acting(request)
    pid = _pid(form)
    cfg = session_settings(request, session)
    account = unlocked(session)
    await run_in_threadpool(workflow.release, cfg, account, pid)
    return redirect(session, f"/proposals/{pid}", f"proposal {pid}'s result released")


@router.post("/consumer/model")
async def model(request: Request) -> Response:
    """``model get``: fetch, verify and decrypt the model into a file on this machine, with
    its model card checked against the chain and written beside it."""
    from visdm.market import workflow
    from visdm.market.model_card import checked_model_card

    session, form = await acting(request)
    pid = _pid(form)
    out = Path(_forms.text(form, "out", what="model file"))
    cfg = session_settings(request, session)
    account = unlocked(session)

    def run() -> dict[str, Any]:
        card_path = out.with_name(f"{out.stem}-card.json")
        if card_path.exists():
            raise InvalidInputError(
                f"{card_path} exists: the model card goes there; choose another file name"
            )
        card = checked_model_card(cfg, pid)  # a wrong card refuses before anything is written
        got = workflow.get_model(cfg, account, pid, out)
        if card is not None:  # beside the model, whole or not at all
            partial = card_path.with_name(f".{card_path.name}.partial")
            partial.write_text(json.dumps(card.to_document(), indent=2, sort_keys=True) + "\n")
            os.replace(partial, card_path)
        return got

    got = await run_in_threadpool(run)
    return redirect(
        session,
        f"/proposals/{pid}",
        f"model written to {out} ({', '.join(f'{k}: {v}' for k, v in list(got.items())[:4])})",
    )


def _attachment(data: bytes, filename: str, media_type: str) -> Response:
    return RawResponse(
        data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/consumer/model/download")
async def model_download(request: Request) -> Response:
    """The decrypted model as a download, with the checks of ``model get`` (node signature,
    committed hash, the spec's shapes); only the proposal's consumer, unlocked in this
    session, can open it. A wrong model card refuses it too, as ``model get`` does."""
    from visdm.market import workflow
    from visdm.market.model_card import checked_model_card

    session, form = await acting(request)
    pid = _pid(form)
    cfg = session_settings(request, session)
    account = unlocked(session)

    def run() -> bytes:
        checked_model_card(cfg, pid)
        return workflow.model_bytes(cfg, account, pid)[0]

    data = await run_in_threadpool(run)
    return _attachment(data, f"proposal-{pid}-model.safetensors", "application/octet-stream")


@router.post("/consumer/model/card")
async def model_card(request: Request) -> Response:
    """The proposal's model card, checked against the chain, as a download (its consumer's)."""
    from visdm.market.model_card import checked_model_card

    session, form = await acting(request)
    pid = _pid(form)
    cfg = session_settings(request, session)
    account = unlocked(session)

    def run() -> Any:
        from visdm.market._next import require_model_ready
        from visdm.session import connect_deployed

        conn = connect_deployed(cfg)
        market = conn.deployment.training_market(conn.client)
        if pid > market.proposal_count():
            raise InvalidInputError(f"proposal {pid} does not exist on this market")
        require_model_ready(market.proposal(pid), account.address)
        return checked_model_card(cfg, pid)

    card = await run_in_threadpool(run)
    if card is None:
        raise InvalidInputError(f"proposal {pid}'s result carries no model card")
    text = json.dumps(card.to_document(), indent=2, sort_keys=True) + "\n"
    return _attachment(text.encode(), f"proposal-{pid}-model-card.json", "application/json")
