"""What a browser wallet does next for each web action, worked out from chain state alone.

An action that needs several signatures (approve, then pay; claim, then withdraw) is a loop
of steps: the page asks ``/wallet/prepare/{action}``, the wallet sends the transaction or
signs the typed data it gets, and the page asks again. Every planner here is a pure function
of what the chain (and the session's held quote) says *now*, so a reload, or a prompt the user
rejected, resumes at the right step, and a step that is already done is never asked again:
paying twice is impossible because a proposal that is training plans :class:`Done`.

The checks are the SDK's own (:mod:`visdm.market._next`'s ``require_*``); the routes that read
the chain and dry-run each transaction live in :mod:`.wallet_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visdm.chain.contracts import (
    AssetRecord,
    AssetStatus,
    ClaimRequest,
    ProposalRecord,
    ProposalStatus,
    Quote,
)
from visdm.errors import InvalidInputError
from visdm.market import _next
from visdm.market.release import ResultWindow, require_releasable
from visdm.market.tally import TallyBatch
from visdm.proposals import TrainingProposal, proposal_terms

__all__ = [
    "Call",
    "Done",
    "Sign",
    "Step",
    "plan_accept_counter",
    "plan_claim",
    "plan_delegate",
    "plan_funding",
    "plan_propose",
    "plan_quote",
    "plan_reclaim",
    "plan_release",
    "plan_tally",
    "plan_train",
    "plan_vote",
    "plan_withdraw_asset",
    "wallet_of",
]

#: a quote this close to its expiry is asked for again rather than sent to be refused
QUOTE_MARGIN_S = 120
_AFTER_START = (ProposalStatus.TRAINING, ProposalStatus.COMPLETED, ProposalStatus.WTP_MISSED)


@dataclass(frozen=True, slots=True)
class Call:
    """A transaction for the wallet to send: ``fn(*args)`` on the deployment's ``contract``."""

    contract: str
    fn: str
    args: tuple[Any, ...]
    label: str


@dataclass(frozen=True, slots=True)
class Sign:
    """Typed data for the wallet to sign (``what`` names it: the signature goes to
    ``/wallet/signed/{what}``)."""

    what: str
    label: str


@dataclass(frozen=True, slots=True)
class Done:
    """Nothing is left to do: the page goes to ``next``, showing ``message`` if any."""

    next: str
    message: str | None = None


Step = Call | Sign | Done


def _tokens(amount: int) -> str:
    return f"{amount / 10**18:,.6g}"


def wallet_of(session: Any) -> str:
    """The address of the wallet connected to ``session``, or a refusal that says to connect."""
    if session.wallet is None:
        raise InvalidInputError("no browser wallet is connected to this session: connect one")
    return str(session.wallet)


def plan_funding(
    *, need: int, balance: int, allowance: int, market: str, mintable: bool
) -> Call | None:
    """The token steps before the market takes ``need`` from the wallet: mint what it lacks
    from the dev chain's faucet (``mintable``: as the local path does, but the holder signs),
    then approve the market; ``None`` when both are in place."""
    if need <= 0:
        return None
    if mintable and balance < need:
        short = need - balance
        return Call("PaymentToken", "faucet", (short,), f"mint {_tokens(short)} dev tokens")
    if allowance < need:
        return Call(
            "PaymentToken",
            "approve",
            (market, need),
            f"let the market take {_tokens(need)} tokens",
        )
    return None


def plan_quote(record: ProposalRecord, now: int, sender: str, quote: Quote | None) -> Step:
    """Ask the node for a quote: the wallet signs the consumer's ``QuoteRequest``; with a
    fresh quote held, the quote page shows it."""
    _next.require_consumer(record, sender, "ask for its quote")
    pid = record.proposal_id
    if record.status in _AFTER_START:
        return Done(f"/proposals/{pid}", f"proposal {pid} is already {record.status.name.lower()}")
    if record.status != ProposalStatus.APPROVED:
        raise InvalidInputError(f"there is nothing to quote: {_next.next_step(record, now)}")
    if quote is None or quote.expiry <= now + QUOTE_MARGIN_S:
        return Sign("quote", "sign the request for the node's quote")
    return Done(f"/wallet/quote/{pid}")


def plan_train(
    record: ProposalRecord,
    now: int,
    sender: str,
    *,
    quote: Quote | None,
    signature: bytes,
    max_cost: int,
    balance: int,
    allowance: int,
    market: str,
    mintable: bool,
) -> Step:
    """Pay the training cost and start training, at most ``max_cost`` (the quote page's)."""
    pid = record.proposal_id
    if record.status in _AFTER_START:
        return Done(f"/proposals/{pid}", f"training of proposal {pid} has started")
    asked = plan_quote(record, now, sender, quote)
    if quote is None or isinstance(asked, Sign):
        return asked
    _next.require_cost_within(
        quote.training_cost, max_cost, what="the cost you accepted on the quote page,"
    )
    funding = plan_funding(
        need=quote.training_cost,
        balance=balance,
        allowance=allowance,
        market=market,
        mintable=mintable,
    )
    return funding or Call(
        "TrainingMarket",
        "startTraining",
        (pid, quote.as_tuple(), signature),
        f"pay {_tokens(quote.training_cost)} tokens and start training",
    )


def plan_accept_counter(
    record: ProposalRecord,
    now: int,
    sender: str,
    *,
    balance: int,
    allowance: int,
    market: str,
    mintable: bool,
) -> Step:
    """Top the escrow up to the clearing price and accept the counter offer."""
    _next.require_consumer(record, sender, "accept its counter offer")
    pid = record.proposal_id
    accepted = record.price == record.clearing_price > record.offer
    if accepted and record.status != ProposalStatus.COUNTERED:
        return Done(
            f"/proposals/{pid}", f"counter offer accepted at {_tokens(record.price)} tokens"
        )
    _next.require_counter_open(record, now)
    top_up = record.clearing_price - record.price
    funding = plan_funding(
        need=top_up, balance=balance, allowance=allowance, market=market, mintable=mintable
    )
    return funding or Call(
        "TrainingMarket",
        "acceptCounter",
        (pid,),
        f"escrow {_tokens(top_up)} tokens more and accept",
    )


def plan_reclaim(
    record: ProposalRecord, now: int, sender: str, *, credit: int, started: bool
) -> Step:
    """Reclaim the escrow after the other side let its deadline pass, then withdraw it."""
    pid = record.proposal_id
    _next.require_consumer(record, sender, "reclaim it")
    if record.status in (
        ProposalStatus.APPROVED,
        ProposalStatus.COUNTERED,
        ProposalStatus.TRAINING,
    ):
        _next.require_reclaimable(record, now, sender)
        return Call("TrainingMarket", "reclaim", (pid,), f"reclaim proposal {pid}'s escrow")
    if credit > 0:
        return Call("TrainingMarket", "withdraw", (), f"withdraw {_tokens(credit)} tokens")
    if not started:  # the refusal the local path gives, with what is left to do
        _next.require_reclaimable(record, now, sender)
    return Done(f"/proposals/{pid}", "reclaimed and withdrawn")


def plan_release(record: ProposalRecord, window: ResultWindow | None, now: int) -> Step:
    """Release a result after its challenge window (anyone may)."""
    pid = record.proposal_id
    if window is not None and window.released:
        return Done(f"/proposals/{pid}", f"proposal {pid}'s result is released")
    require_releasable(record, window, now)
    return Call("ResultCourt", "release", (pid,), f"release proposal {pid}'s result")


def plan_claim(
    pending: list[tuple[int, list[ClaimRequest]]],
    notes: list[str],
    *,
    credit: int,
    started: bool,
    release: tuple[int, ...] = (),
) -> Step:
    """Claim every payout due in one ``claimMany``, then withdraw the whole credit; results
    whose challenge window is over (``release``) are released first, one step each."""
    if release:
        pid = release[0]
        return Call("ResultCourt", "release", (pid,), f"release proposal {pid}'s result")
    if pending:
        requests = tuple(r.as_tuple() for _, rs in pending for r in rs)
        total = sum(r.amount for _, rs in pending for r in rs)
        ids = ", ".join(str(pid) for pid, _ in pending)
        return Call(
            "TrainingMarket",
            "claimMany",
            (list(requests),),
            f"claim {_tokens(total)} tokens from proposal {ids}",
        )
    if credit > 0:
        return Call("TrainingMarket", "withdraw", (), f"withdraw {_tokens(credit)} tokens")
    if started:
        return Done("/provider", "payouts claimed and withdrawn")
    why = "; ".join(notes[:5]) or "no completed proposal pays your assets"
    return Done("/provider", f"nothing to claim now: {why}")


def plan_withdraw_asset(asset: AssetRecord, sender: str) -> Step:
    """Withdraw an asset from new proposals (only its owner)."""
    aid = asset.asset_id
    if asset.status == AssetStatus.NONE:
        raise InvalidInputError(f"asset {aid} does not exist on this market")
    if asset.owner.lower() != sender.lower():
        raise InvalidInputError(
            f"asset {aid} is {asset.owner}'s, not {sender}'s: only its owner can withdraw it"
        )
    if asset.status == AssetStatus.WITHDRAWN:
        return Done("/provider", f"asset {aid} is withdrawn")
    return Call("AssetRegistry", "withdrawAsset", (aid,), f"withdraw asset {aid}")


def plan_vote(record: ProposalRecord, now: int, ask: int, current: int | None) -> Step:
    """Vote ``ask`` (done once the chain holds that vote)."""
    pid = record.proposal_id
    if current == ask:
        return Done(f"/proposals/{pid}")
    _next.require_voting_open(record, now)
    return Call("TrainingMarket", "vote", (pid, ask), f"vote on proposal {pid}")


def plan_delegate(current: str | None, to: str | None) -> Step:
    """Delegate to ``to`` (``None``: undelegate); done once the chain says so."""
    if (current or "").lower() == (to or "").lower():
        return Done("/provider")
    if to is None:
        return Call("DelegationRegistry", "undelegate", (), "remove the delegation")
    return Call("DelegationRegistry", "delegate", (to,), f"delegate to {to}")


def plan_propose(
    document: TrainingProposal,
    cid: str | None,
    proposed: int | None,
    *,
    now: int,
    min_voting_period: int,
    balance: int,
    allowance: int,
    market: str,
    mintable: bool,
) -> Step:
    """Propose the held ``document``: the wallet signs it (the server stores it under ``cid``),
    then mint, approve and ``propose``. ``proposed``: the proposal the chain already made from
    this document (its ``ProposalCreated`` names ``cid``), so it is never made twice."""
    if proposed is not None:
        return Done(
            f"/proposals/{proposed}",
            f"proposal {proposed} created: {sum(document.sample_counts)} samples, "
            f"{_tokens(document.offer)} tokens in escrow",
        )
    if document.voting_deadline < now + min_voting_period:
        raise InvalidInputError(
            f"the prepared proposal's voting deadline {document.voting_deadline} is less than "
            f"the market's minimum voting period ({min_voting_period} s) away now: propose "
            "again to prepare a new document; nothing was escrowed"
        )
    if cid is None:
        return Sign("proposal", "sign the proposal document")
    funding = plan_funding(
        need=document.offer, balance=balance, allowance=allowance, market=market, mintable=mintable
    )
    return funding or Call(
        "TrainingMarket",
        "propose",
        (proposal_terms(document, cid).as_tuple(),),
        f"propose and escrow {_tokens(document.offer)} tokens",
    )


def plan_tally(record: ProposalRecord, batch: TallyBatch | None) -> Step:
    """Send the tally's next batch (``None``: the proposal is past voting), one per step,
    after discarding a progress of the wallet's that claimed another price."""
    pid = record.proposal_id
    if record.status != ProposalStatus.VOTING or batch is None:
        return Done(
            f"/proposals/{pid}",
            f"proposal {pid} is {record.status.name.lower()}: its tally is done",
        )
    if batch.reset:
        return Call(
            "TrainingMarket",
            "resetTally",
            (pid,),
            "discard your unfinished tally at another price",
        )
    first, last = batch.start + 1, batch.start + len(batch.asset_ids)
    return Call(
        "TrainingMarket",
        "tally",
        (pid, batch.clearing_price, list(batch.asset_ids), list(batch.sample_counts)),
        f"tally assets {first}–{last}"
        + (" and record the outcome" if batch.last else " (more batches follow)"),
    )
