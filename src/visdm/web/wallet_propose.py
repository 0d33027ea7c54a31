"""The consumer's proposal for a browser wallet.

``POST /wallet/prepare/propose`` (:mod:`.wallet_steps`) prepares the document on the server
from the propose form, with every check of ``visdm propose`` (the validation set sealed to the
node and stored, a dry run of ``propose``), and holds the unsigned document in the session; the
wallet signs its EIP-712 typed data; ``POST /wallet/signed/proposal`` checks that the signature
recovers to the wallet, stores the signed document and keeps its CID; then mint, approve and
``propose`` are the wallet's transactions. Which proposal the chain made from the document is
read from ``ProposalCreated`` (it carries the CID), so a reload resumes and one document is never
proposed twice.

The session holds one document (at most :data:`MAX_HELD_BYTES`), for the form it was prepared
from: a changed form prepares a new one, which replaces it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from visdm.errors import InvalidInputError
from visdm.proposals import TrainingProposal

from ._app import acting, session_settings
from .wallet_plans import wallet_of
from .wallet_quote import signature_field

__all__ = [
    "MAX_HELD_BYTES",
    "WALLET_DEADLINE_SLACK_S",
    "HeldProposal",
    "form_fingerprint",
    "held_proposal",
    "hold",
    "made_from",
    "prepare_held",
    "router",
]

router = APIRouter()

#: the largest document a session holds between steps (a selection of ~200k samples)
MAX_HELD_BYTES = 1 << 20
#: seconds between preparing the document and ``propose`` being mined: a person confirms a
#: signature and two or three transactions in the wallet
WALLET_DEADLINE_SLACK_S = 300
_HELD_KEY = "wallet_proposal"
#: form fields that are not the proposal's (the protocol's own)
_NOT_THE_PROPOSAL = frozenset({"csrf", "step", "signature"})


@dataclass(frozen=True, slots=True)
class HeldProposal:
    """The unsigned document a session holds, the form it came from and, once the wallet's
    signature was checked and the signed document stored, its CID."""

    form: str
    document: TrainingProposal
    notes: tuple[str, ...] = ()
    cid: str | None = None


def form_fingerprint(form: Any) -> str:
    """What identifies a propose form's content: a reload sends the same fingerprint."""
    fields = sorted(
        (key, value.strip())
        for key, value in form.multi_items()
        if key not in _NOT_THE_PROPOSAL and isinstance(value, str)
    )
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def held_proposal(session: Any) -> HeldProposal | None:
    """The proposal document the session holds (``None``: none)."""
    from visdm.proposals import parse_proposal

    raw = session.pending.get(_HELD_KEY)
    if raw is None:
        return None
    held = json.loads(raw)
    document = parse_proposal(held["document"].encode(), max_bytes=MAX_HELD_BYTES).proposal
    return HeldProposal(held["form"], document, tuple(held["notes"]), held.get("cid"))


def hold(session: Any, held: HeldProposal) -> HeldProposal:
    """Keep ``held`` in the session, replacing any other document."""
    from visdm.proposals import write_proposal

    document = write_proposal(held.document)
    if len(document) > MAX_HELD_BYTES:
        raise InvalidInputError(
            f"the proposal document is {len(document):,} bytes, more than a web session holds "
            f"({MAX_HELD_BYTES:,}): select fewer samples, or propose with `visdm propose`; "
            "nothing was escrowed"
        )
    session.pending[_HELD_KEY] = json.dumps(
        {
            "form": held.form,
            "document": document.decode(),
            "notes": list(held.notes),
            "cid": held.cid,
        }
    )
    return held


def prepare_held(session: Any, settings: Any, form: Any, sender: str) -> HeldProposal:
    """Prepare ``sender``'s document from the propose ``form`` and hold it in the session."""
    from visdm import governance
    from visdm.market import workflow

    from .consumer import propose_inputs

    inputs, node_text = propose_inputs(form, settings)
    node = governance.resolve_node(settings, node_text).address
    prepared = workflow.prepare_propose(
        settings, sender, node=node, deadline_slack_s=WALLET_DEADLINE_SLACK_S, **inputs
    )
    return hold(session, HeldProposal(form_fingerprint(form), prepared.document, prepared.notes))


def made_from(market: Any, consumer: str, cid: str) -> int | None:
    """The proposal ``consumer`` made from the document stored under ``cid`` (``None``: none
    yet), from the chain's ``ProposalCreated`` events."""
    for event in market.logs("ProposalCreated", where={"consumer": consumer}):
        if event["args"]["proposalCid"] == cid:
            return int(event["args"]["proposalId"])
    return None


@router.post("/wallet/signed/proposal")
async def signed_proposal(request: Request) -> Response:
    """The wallet signed the held document: check that the signature recovers to the wallet
    and store the signed document; ``propose`` follows as the wallet's transactions."""
    from visdm.proposals import (
        PreparedProposal,
        attach_proposal_signature,
        store_signed_proposal,
    )

    session, form = await acting(request)
    sender = wallet_of(session)
    held = held_proposal(session)
    if held is None:
        raise InvalidInputError(
            "no proposal document is waiting for a signature in this session: propose again"
        )
    if held.document.consumer.lower() != sender.lower():
        raise InvalidInputError(
            f"the proposal document held here was prepared for {held.document.consumer}, not "
            f"for the connected wallet {sender}: propose again; nothing was stored"
        )
    if held.form != form_fingerprint(form):
        raise InvalidInputError(
            "the propose form changed since its document was prepared: propose again to "
            "prepare and sign the new one; nothing was stored"
        )
    signature = signature_field(form)
    settings = session_settings(request, session)

    def store() -> str:
        from visdm.session import open_store

        signed = attach_proposal_signature(held.document, signature)
        prepared = PreparedProposal(held.document, held.notes)
        return store_signed_proposal(open_store(settings), prepared, signed).proposal_cid

    cid = await run_in_threadpool(store)
    hold(session, replace(held, cid=cid))
    return JSONResponse({"cid": cid})
