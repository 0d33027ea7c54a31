"""The node's quote for a browser wallet: the wallet signs the consumer's EIP-712
``QuoteRequest`` (typed data prepared here), ``POST /wallet/signed/quote`` checks that it
recovers to the session's wallet before the node is asked, and the session keeps the node's
signed quote for the payment's next steps (:mod:`.wallet_steps`) and for the quote page."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from visdm.chain.contracts import Quote
from visdm.errors import InvalidInputError, SignatureError
from visdm.types import Address

from . import _forms
from ._app import acting, current_session, render, session_settings
from .wallet_plans import wallet_of

__all__ = ["held_quote", "quote_of", "quote_request", "router", "signature_field"]

router = APIRouter()

_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def _quote_key(pid: int) -> str:
    return f"wallet_quote:{pid}"


def held_quote(session: Any, pid: int) -> dict[str, Any] | None:
    """The node's signed quote the session holds for proposal ``pid`` (``None``: none)."""
    raw = session.pending.get(_quote_key(pid))
    return None if raw is None else dict(json.loads(raw))


def quote_of(held: dict[str, Any] | None) -> tuple[Quote | None, bytes]:
    """The quote and the node's signature of a held quote (``None`` and no bytes: none)."""
    if held is None:
        return None, b""
    return _quote(held), bytes.fromhex(held["signature"])


def _quote(held: dict[str, Any]) -> Quote:
    return Quote(
        int(held["proposalId"]), int(held["cost"]), int(held["maxDuration"]), int(held["expiry"])
    )


def quote_request(
    session: Any, chain_id: int, market: str, pid: int, sender: str
) -> dict[str, Any]:
    """The ``QuoteRequest`` typed data for the wallet to sign; its ``issuedAt`` is kept so
    that the signature posted back is checked against exactly this request."""
    from visdm.market.quotes import QUOTE_REQUEST_TYPES, NodeRequest, market_domain

    request = NodeRequest(pid, Address(sender), int(time.time()))
    session.pending[_request_key(pid)] = str(request.issued_at)
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS, **QUOTE_REQUEST_TYPES},
        "primaryType": "QuoteRequest",
        "domain": market_domain(chain_id, market).as_dict(),
        "message": request.as_message(),
    }


def _request_key(pid: int) -> str:
    return f"wallet_quote_request:{pid}"


@router.post("/wallet/signed/quote")
async def signed_quote(request: Request) -> Response:
    """The wallet signed the consumer's ``QuoteRequest``: check it, ask the node, keep the
    node's signed quote for this session's next steps."""
    from visdm.market import workflow
    from visdm.market.quotes import NodeRequest, verify_quote_request

    session, form = await acting(request)
    sender = wallet_of(session)
    pid = _forms.whole(form, "proposal", minimum=1)
    issued = session.pending.pop(_request_key(pid), None)
    if issued is None:
        raise InvalidInputError(
            f"no quote request for proposal {pid} is open in this session: ask for the quote again"
        )
    signature = signature_field(form)
    node_request = NodeRequest(pid, Address(sender), int(issued))
    settings = session_settings(request, session)

    def ask() -> Any:
        from visdm.session import connect_deployed

        conn = connect_deployed(settings)
        market = conn.deployment.training_market(conn.client)
        # refused here, before the node is asked, when another key signed
        verify_quote_request(signature, conn.client.chain_id, market.address, node_request)
        return workflow.fetch_quote(settings, node_request, signature)

    offer = await run_in_threadpool(ask)
    session.pending[_quote_key(pid)] = json.dumps(
        {
            "proposalId": offer.quote.proposal_id,
            "cost": str(offer.quote.training_cost),
            "maxDuration": offer.quote.max_duration,
            "expiry": offer.quote.expiry,
            "signature": offer.signature.hex(),
            "signer": offer.signer,
            "design": offer.design,
            "nodeUrl": offer.node_url,
        }
    )
    return JSONResponse({"quoted": str(offer.quote.training_cost)})


def signature_field(form: Any) -> bytes:
    """The form's 65-byte hex ``signature`` (a wallet's ``eth_signTypedData_v4`` answer)."""
    text = _forms.text(form, "signature", what="signature")
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 65:
        raise SignatureError(
            f"the field 'signature' must be a 65-byte hex signature, got {text[:40]!r}: sign again"
        )
    return raw


@router.get("/wallet/quote/{pid}")
def quote_page(request: Request, pid: int) -> Response:
    """The quote the wallet's request got, with the node's design check, before paying."""
    from visdm.market.workflow import QuoteOffer

    session = current_session(request)
    held = None if session is None else held_quote(session, pid)
    if held is None:
        raise InvalidInputError(
            f"this session holds no quote for proposal {pid}: ask for it on the proposal's page"
        )
    signature = bytes.fromhex(held["signature"])
    offer = QuoteOffer(
        _quote(held), signature, held["signer"], dict(held["design"]), held["nodeUrl"]
    )
    return render(request, "quote.html", title=f"Quote for proposal {pid}", pid=pid, offer=offer)
