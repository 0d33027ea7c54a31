"""The step protocol of browser-wallet actions: ``POST /wallet/prepare/{action}`` reads the
chain, plans the next step (:mod:`.wallet_plans`) and answers one of

- ``{"kind": "tx", "tx": {...}, "label": ...}``: an unsigned transaction, dry-run from the
  wallet's address first (a revert comes back as its one-line reason before the wallet is
  asked); the page has the wallet send it and ``POST /wallet/sent`` waits for its receipt;
- ``{"kind": "typed", "typed": {...}, "signer": ..., "post": url, "label": ...}``: EIP-712
  typed data for ``eth_signTypedData_v4``; the page posts the signature to ``post``;
- ``{"kind": "done", "next": url}``: nothing is left; the page goes to ``next``.

and the page asks again, at most :data:`MAX_STEPS` times. Actions: ``vote``, ``delegate``,
``quote``, ``train``, ``accept-counter``, ``reclaim``, ``claim``, ``withdraw-asset``.

The only thing a session keeps between steps is the node's signed quote (after the wallet
signed the request for it); everything else is read from the chain at each step.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from visdm.chain.contracts import Quote
from visdm.errors import (
    ContractRevertError,
    InvalidInputError,
    SignatureError,
    TransactionFailedError,
)
from visdm.jsonsafe import one_line
from visdm.types import Address

from . import _forms
from ._app import acting, current_session, render, session_settings
from .wallet_plans import (
    Call,
    Done,
    Sign,
    Step,
    plan_accept_counter,
    plan_claim,
    plan_delegate,
    plan_quote,
    plan_reclaim,
    plan_train,
    plan_vote,
    plan_withdraw_asset,
)

__all__ = ["MAX_STEPS", "prepared", "router", "wallet_of"]

router = APIRouter()

#: the most steps one action takes (mint, approve, pay: three; the page stops after this many)
MAX_STEPS = 8
_GAS_HEADROOM = 2
_GAS_MARGIN = 50_000
#: the artifact of each deployed contract a wallet calls
_ARTIFACTS = {"PaymentToken": "DevToken"}
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def prepared(
    conn: Any, sender: str, contract_name: str, fn_name: str, args: list[Any]
) -> dict[str, Any]:
    """An unsigned call of ``fn_name`` on the deployment's ``contract_name`` from ``sender``,
    dry-run first so that a revert is reported before the wallet is asked."""
    address = conn.deployment.address_of(contract_name)
    contract = conn.client.contract(address, _ARTIFACTS.get(contract_name, contract_name))
    fn = contract.functions[fn_name](*args)
    conn.client.call(fn, action=fn_name, sender=sender)
    gas = conn.client.rpc(lambda: fn.estimate_gas({"from": to_checksum_address(sender)}))
    return {
        "from": to_checksum_address(sender),
        "to": str(address),
        "data": contract.encode_abi(fn_name, args=args),
        "chainId": hex(conn.client.chain_id),
        # unused gas is not charged: room for what an estimate misses (refunds are paid after
        # execution, so clearing a delegation needs more gas than it finally costs)
        "gas": hex(int(gas * _GAS_HEADROOM) + _GAS_MARGIN),
        "value": "0x0",
    }


def wallet_of(session: Any) -> str:
    """The address of the wallet connected to ``session``, or a refusal that says to connect."""
    if session.wallet is None:
        raise InvalidInputError("no browser wallet is connected to this session: connect one")
    return str(session.wallet)


@dataclass
class _Ctx:
    """One prepare request: who asks, with which form, at which step, over which chain."""

    request: Request
    session: Any
    form: Any
    sender: str
    step: int
    conn: Any = field(default=None)

    def connect(self) -> Any:
        if self.conn is None:
            from visdm.session import connect_deployed

            self.conn = connect_deployed(session_settings(self.request, self.session))
        return self.conn

    def market(self) -> Any:
        conn = self.connect()
        return conn.deployment.training_market(conn.client)

    def record(self) -> Any:
        market = self.market()
        pid = _forms.whole(self.form, "proposal", minimum=1)
        if pid > market.proposal_count():
            raise InvalidInputError(f"proposal {pid} does not exist on this market")
        return market.proposal(pid)

    def now(self) -> int:
        from visdm.market._next import chain_now

        return chain_now(self.connect().client)

    def funds(self) -> dict[str, Any]:
        """What :func:`.wallet_plans.plan_funding` needs to know about the wallet's tokens."""
        conn = self.connect()
        token = conn.deployment.payment_token(conn.client)
        market = self.market().address
        return {
            "balance": token.balance_of(self.sender),
            "allowance": token.allowance(self.sender, market),
            "market": to_checksum_address(market),
            "mintable": conn.client.is_dev_chain and not self.session.pending.get(_NO_MINT),
        }


_NO_MINT = "wallet_no_mint"


def _quote_key(pid: int) -> str:
    return f"wallet_quote:{pid}"


def held_quote(session: Any, pid: int) -> dict[str, Any] | None:
    """The node's signed quote the session holds for proposal ``pid`` (``None``: none)."""
    raw = session.pending.get(_quote_key(pid))
    return None if raw is None else dict(json.loads(raw))


def _quote_of(held: dict[str, Any] | None) -> tuple[Quote | None, bytes]:
    if held is None:
        return None, b""
    quote = Quote(
        int(held["proposalId"]), int(held["cost"]), int(held["maxDuration"]), int(held["expiry"])
    )
    return quote, bytes.fromhex(held["signature"])


# --- planners that read the chain ----------------------------------------------------------
def _vote(ctx: _Ctx) -> Step:
    from visdm.market import workflow

    choice = _forms.text(ctx.form, "vote").lower()
    if choice in ("accept", "reject"):
        ask = workflow.parse_ask(choice)
    elif choice == "ask":
        ask = _forms.tokens(ctx.form, "ask")
    else:
        raise InvalidInputError(f"the field 'vote' must be accept, reject or ask, got {choice!r}")
    record = ctx.record()
    current = ctx.market().vote_of(record.proposal_id, ctx.sender)
    return plan_vote(record, ctx.now(), ask, current)


def _delegate(ctx: _Ctx) -> Step:
    from visdm.governance import resolve_account

    to = _forms.optional_text(ctx.form, "to")
    settings = session_settings(ctx.request, ctx.session)
    target = None if to is None else resolve_account(settings, to, what="delegate")
    conn = ctx.connect()
    current = conn.deployment.delegation_registry(conn.client).delegate_of(ctx.sender)
    return plan_delegate(current, target)


def _quote(ctx: _Ctx) -> Step:
    record = ctx.record()
    quote, _ = _quote_of(held_quote(ctx.session, record.proposal_id))
    return plan_quote(record, ctx.now(), ctx.sender, quote)


def _train(ctx: _Ctx) -> Step:
    record = ctx.record()
    max_cost = _forms.whole(ctx.form, "max_cost_wei", minimum=0)
    quote, signature = _quote_of(held_quote(ctx.session, record.proposal_id))
    return plan_train(
        record,
        ctx.now(),
        ctx.sender,
        quote=quote,
        signature=signature,
        max_cost=max_cost,
        **ctx.funds(),
    )


def _accept_counter(ctx: _Ctx) -> Step:
    record = ctx.record()
    return plan_accept_counter(record, ctx.now(), ctx.sender, **ctx.funds())


def _reclaim(ctx: _Ctx) -> Step:
    record = ctx.record()
    credit = ctx.market().credit_of(ctx.sender)
    return plan_reclaim(record, ctx.now(), ctx.sender, credit=credit, started=ctx.step > 0)


def _claim(ctx: _Ctx) -> Step:
    from visdm.market import workflow

    receipts, pending = workflow.claimable(
        session_settings(ctx.request, ctx.session), ctx.sender, None
    )
    notes = [f"proposal {r.proposal_id}: {r.note}" for r in receipts]
    credit = ctx.market().credit_of(ctx.sender)
    return plan_claim(pending, notes, credit=credit, started=ctx.step > 0)


def _withdraw_asset(ctx: _Ctx) -> Step:
    asset_id = _forms.whole(ctx.form, "asset", minimum=1)
    conn = ctx.connect()
    return plan_withdraw_asset(
        conn.deployment.asset_registry(conn.client).asset(asset_id), ctx.sender
    )


_ACTIONS = {
    "vote": _vote,
    "delegate": _delegate,
    "quote": _quote,
    "train": _train,
    "accept-counter": _accept_counter,
    "reclaim": _reclaim,
    "claim": _claim,
    "withdraw-asset": _withdraw_asset,
}


def _quote_request(ctx: _Ctx) -> dict[str, Any]:
    """The ``QuoteRequest`` typed data for the wallet to sign; its ``issuedAt`` is kept so
    that the signature posted back is checked against exactly this request."""
    from visdm.market.quotes import QUOTE_REQUEST_TYPES, NodeRequest, market_domain

    record = ctx.record()
    request = NodeRequest(record.proposal_id, Address(ctx.sender), int(time.time()))
    ctx.session.pending[f"wallet_quote_request:{record.proposal_id}"] = str(request.issued_at)
    domain = market_domain(ctx.connect().client.chain_id, ctx.market().address)
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS, **QUOTE_REQUEST_TYPES},
        "primaryType": "QuoteRequest",
        "domain": domain.as_dict(),
        "message": request.as_message(),
    }


def _answer(ctx: _Ctx, step: Step) -> dict[str, Any]:
    if isinstance(step, Done):
        if step.message:
            ctx.session.flashes.append(one_line(step.message))
        return {"kind": "done", "next": step.next}
    if isinstance(step, Sign):
        typed = _quote_request(ctx)
        return {
            "kind": "typed",
            "typed": typed,
            "signer": ctx.sender,
            "post": f"/wallet/signed/{step.what}",
            "label": step.label,
        }
    conn = ctx.connect()
    conn.client.fund_from_dev_faucet(ctx.sender)  # gas, as the local path gets it
    tx = prepared(conn, ctx.sender, step.contract, step.fn, list(step.args))
    return {"kind": "tx", "tx": tx, "label": step.label}


def _prepare(ctx: _Ctx, action: str) -> dict[str, Any]:
    plan = _ACTIONS[action]
    step = plan(ctx)
    if isinstance(step, Call) and step.fn == "faucet":
        try:
            return _answer(ctx, step)
        except ContractRevertError:
            # not a DevToken, or above its faucet's limit: go on as the local path does, and
            # the transaction that needs the tokens says what is missing
            ctx.session.pending[_NO_MINT] = "1"
            step = plan(ctx)
    return _answer(ctx, step)


@router.post("/wallet/prepare/{action}")
async def prepare(request: Request, action: str) -> Response:
    """The next step of ``action`` for the connected wallet, from the chain's state now."""
    session, form = await acting(request)
    sender = wallet_of(session)
    if action not in _ACTIONS:
        raise InvalidInputError(
            f"there is no wallet action {action[:40]!r}: use one of {', '.join(_ACTIONS)}"
        )
    step = _forms.integer(form, "step", minimum=0, required=False) or 0
    if step >= MAX_STEPS:
        raise InvalidInputError(
            f"the action {action} took more than {MAX_STEPS} steps: reload the page to see "
            "where it stands"
        )
    ctx = _Ctx(request, session, form, sender, step)
    if step == 0:
        session.pending.pop(_NO_MINT, None)
    return JSONResponse(await run_in_threadpool(_prepare, ctx, action))


@router.post("/wallet/signed/quote")
async def signed_quote(request: Request) -> Response:
    """The wallet signed the consumer's ``QuoteRequest``: check it, ask the node, keep the
    node's signed quote for this session's next steps."""
    from visdm.market import workflow
    from visdm.market.quotes import NodeRequest, verify_quote_request

    session, form = await acting(request)
    sender = wallet_of(session)
    pid = _forms.whole(form, "proposal", minimum=1)
    issued = session.pending.pop(f"wallet_quote_request:{pid}", None)
    if issued is None:
        raise InvalidInputError(
            f"no quote request for proposal {pid} is open in this session: ask for the quote again"
        )
    signature = _signature(form)
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


def _signature(form: Any) -> bytes:
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
    quote = Quote(
        int(held["proposalId"]), int(held["cost"]), int(held["maxDuration"]), int(held["expiry"])
    )
    signature = bytes.fromhex(held["signature"])
    offer = QuoteOffer(quote, signature, held["signer"], dict(held["design"]), held["nodeUrl"])
    return render(request, "quote.html", title=f"Quote for proposal {pid}", pid=pid, offer=offer)


@router.post("/wallet/sent")
async def sent(request: Request) -> Response:
    """Wait for a transaction the wallet sent and report it."""
    session, form = await acting(request)
    tx_hash = _forms.text(form, "hash", what="transaction hash")
    if not (tx_hash.startswith("0x") and len(tx_hash) == 66):
        raise InvalidInputError(
            f"the field 'hash' must be a transaction hash, got {tx_hash[:70]!r}"
        )
    label = (_forms.optional_text(form, "label") or "the wallet's transaction")[:120]

    def wait() -> Any:
        from visdm.session import connect

        client = connect(session_settings(request, session))
        return client.rpc(
            lambda: client.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=client.tx_timeout_s)  # type: ignore[arg-type]
        )

    receipt = await run_in_threadpool(wait)
    if int(receipt["status"]) != 1:
        raise TransactionFailedError(
            f"the wallet's transaction {tx_hash} ({label}) reverted: nothing changed"
        )
    session.flashes.append(
        one_line(
            f"{label}: the wallet's transaction {tx_hash} was mined (gas {receipt['gasUsed']:,})"
        )
    )
    return JSONResponse({"hash": tx_hash, "gasUsed": int(receipt["gasUsed"])})
