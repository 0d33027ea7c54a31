"""The step protocol of browser-wallet actions: ``POST /wallet/prepare/{action}`` reads the
chain, plans the next step (:mod:`.wallet_plans`) and answers one of

- ``{"kind": "tx", "tx": {...}, "label": ...}``: an unsigned transaction, dry-run from the
  wallet's address first (a revert comes back as its one-line reason before the wallet is
  asked); the page has the wallet send it and ``POST /wallet/sent`` waits for its receipt;
- ``{"kind": "typed", "typed": {...}, "signer": ..., "post": url, "label": ...}``: EIP-712
  typed data for ``eth_signTypedData_v4``; the page posts the signature to ``post``;
- ``{"kind": "done", "next": url}``: nothing is left; the page goes to ``next``.

and the page asks again, at most :data:`MAX_STEPS` times. Actions: ``propose``, ``vote``,
``delegate``, ``tally``, ``quote``, ``train``, ``accept-counter``, ``reclaim``, ``claim``,
``release``, ``withdraw-asset``.

What a session keeps between steps: the node's signed quote (:mod:`.wallet_quote`) after the
wallet signed the request for it, and the proposal document being proposed
(:mod:`.wallet_propose`); everything else is read from the chain at each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from visdm.errors import (
    ContractRevertError,
    InvalidInputError,
    TransactionFailedError,
)
from visdm.jsonsafe import one_line

from . import _forms
from ._app import acting, session_settings
from .wallet_plans import (
    Call,
    Done,
    Sign,
    Step,
    plan_accept_counter,
    plan_claim,
    plan_delegate,
    plan_propose,
    plan_quote,
    plan_reclaim,
    plan_release,
    plan_tally,
    plan_train,
    plan_vote,
    plan_withdraw_asset,
    wallet_of,
)
from .wallet_propose import form_fingerprint, held_proposal, made_from, prepare_held
from .wallet_propose import router as _propose_router
from .wallet_quote import held_quote, quote_of, quote_request
from .wallet_quote import router as _quote_router

__all__ = ["MAX_STEPS", "prepared", "router"]

router = APIRouter()
router.include_router(_quote_router)
router.include_router(_propose_router)

#: the most steps one action takes (mint, approve, pay: three; the page stops after this many)
MAX_STEPS = 8
_GAS_HEADROOM = 2
_GAS_MARGIN = 50_000
#: the artifact of each deployed contract a wallet calls
_ARTIFACTS = {"PaymentToken": "DevToken"}


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
    quote, _ = quote_of(held_quote(ctx.session, record.proposal_id))
    return plan_quote(record, ctx.now(), ctx.sender, quote)


def _train(ctx: _Ctx) -> Step:
    record = ctx.record()
    max_cost = _forms.whole(ctx.form, "max_cost_wei", minimum=0)
    quote, signature = quote_of(held_quote(ctx.session, record.proposal_id))
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
    market = ctx.market()
    credit = market.credit_of(ctx.sender)
    # claimable lists a held result only once its window is over: released first
    due = tuple(pid for pid, _ in pending if market.proposal(pid).deadline)
    return plan_claim(pending, notes, credit=credit, started=ctx.step > 0, release=due)


def _release(ctx: _Ctx) -> Step:
    from visdm.market.release import result_window

    record = ctx.record()
    return plan_release(record, result_window(ctx.connect(), record), ctx.now())


def _withdraw_asset(ctx: _Ctx) -> Step:
    asset_id = _forms.whole(ctx.form, "asset", minimum=1)
    conn = ctx.connect()
    return plan_withdraw_asset(
        conn.deployment.asset_registry(conn.client).asset(asset_id), ctx.sender
    )


def _propose(ctx: _Ctx) -> Step:
    held = held_proposal(ctx.session)
    if held is not None and (
        held.form != form_fingerprint(ctx.form) or held.document.consumer != ctx.sender
    ):
        held = None  # another form's document, or another wallet's: a new prepare replaces it
    if held is None and ctx.step > 0:
        raise InvalidInputError(
            "this session no longer holds the proposal document being proposed (another "
            "propose form replaced it): propose again"
        )
    market = ctx.market()
    now, least = ctx.now(), market.parameters().min_voting_period
    proposed = None if held is None or held.cid is None else made_from(market, ctx.sender, held.cid)
    # a reload resumes the held document, unless it can no longer be proposed in time
    stale = held is not None and held.document.voting_deadline < now + least
    if held is None or (ctx.step == 0 and proposed is None and stale):
        settings = session_settings(ctx.request, ctx.session)
        held = prepare_held(ctx.session, settings, ctx.form, ctx.sender)
    step = plan_propose(
        held.document, held.cid, proposed, now=now, min_voting_period=least, **ctx.funds()
    )
    if isinstance(step, Done) and ctx.step > 0:
        ctx.session.flashes.extend(one_line(f"note: {n}") for n in held.notes)
    return step


def _tally(ctx: _Ctx) -> Step:
    from visdm.chain.contracts import ProposalStatus
    from visdm.market import workflow

    record = ctx.record()
    batch = None
    if record.status == ProposalStatus.VOTING:
        settings = session_settings(ctx.request, ctx.session)
        _, batch = workflow.next_tally(settings, record.proposal_id, ctx.sender)
    return plan_tally(record, batch)


_ACTIONS = {
    "propose": _propose,
    "vote": _vote,
    "delegate": _delegate,
    "tally": _tally,
    "quote": _quote,
    "train": _train,
    "accept-counter": _accept_counter,
    "reclaim": _reclaim,
    "claim": _claim,
    "release": _release,
    "withdraw-asset": _withdraw_asset,
}


def _answer(ctx: _Ctx, step: Step) -> dict[str, Any]:
    if isinstance(step, Done):
        if step.message:
            ctx.session.flashes.append(one_line(step.message))
        return {"kind": "done", "next": step.next}
    if isinstance(step, Sign):
        typed = _typed(ctx, step)
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


def _typed(ctx: _Ctx, step: Sign) -> dict[str, Any]:
    """The typed data of a :class:`Sign` step, for ``eth_signTypedData_v4``."""
    if step.what == "proposal":
        from visdm.proposals import proposal_typed_data

        held = held_proposal(ctx.session)
        if held is None:  # prepared in this very request: cannot be missing
            raise InvalidInputError("no proposal document is held in this session: propose again")
        return proposal_typed_data(held.document)
    record = ctx.record()
    chain_id = ctx.connect().client.chain_id
    return quote_request(
        ctx.session, chain_id, ctx.market().address, record.proposal_id, ctx.sender
    )


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
