"""Top-level workflow commands: ``visdm propose|vote|delegate|undelegate|tally|accept-counter|
train|reclaim|claim|withdraw|status`` and ``visdm model get``. Each is one call of
:mod:`visdm.market.workflow`.

Amounts are in tokens (``10``, ``2.5``; 18 decimals) or in the smallest unit with a ``wei``
suffix (``1000wei``).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from visdm.errors import InvalidInputError, VisdmError

from ._common import JsonOption, console, emit, err_console, settings, unlock_account
from ._json import transactions

if TYPE_CHECKING:
    from visdm.config import Settings
    from visdm.training._card import ModelCard

__all__ = ["model_app", "parse_amount", "register"]

_DECIMALS = 18
_MAX_UINT256 = 2**256 - 1

model_app = typer.Typer(help="Get the model a training round produced for you.")


def parse_amount(text: str, what: str = "amount") -> int:
    """``"10"`` → 10·10¹⁸, ``"0.5"`` → 5·10¹⁷, ``"1000wei"`` → 1000."""
    raw = text.strip().lower()
    exact = True
    try:
        if raw.endswith("wei"):
            value = int(raw.removesuffix("wei"))
        else:
            scaled = Decimal(raw) * (10**_DECIMALS)
            if not scaled.is_finite():
                raise ValueError(raw)
            exact = scaled == scaled.to_integral_value()
            value = int(scaled)
    except (InvalidOperation, ValueError, OverflowError):
        raise InvalidInputError(
            f"{what} {text!r} is not a token amount (e.g. 10, 2.5 or 1000wei)"
        ) from None
    if not exact:
        raise InvalidInputError(f"{what} {text!r} has more than {_DECIMALS} decimals")
    if not 0 <= value < _MAX_UINT256:  # 2^256-1 itself means "reject" in a vote
        raise InvalidInputError(f"{what} {text!r} is outside 0..2^256-2 token units")
    return value


def _tokens(value: int) -> str:
    """For people: ``2.5 tokens (2500000000000000000 wei)``; ``--json`` has only the wei."""
    return f"{Decimal(value) / (10**_DECIMALS):f} tokens ({value} wei)"


def propose(
    ctx: typer.Context,
    spec: Path = typer.Option(..., "--spec", help="Model spec (JSON)."),
    validation: Path = typer.Option(
        ..., "--validation", help="Validation images with labels.csv (sealed to the node)."
    ),
    offer: str = typer.Option(..., "--offer", help="Price offered for the data (tokens)."),
    wtp_bps: int = typer.Option(
        ..., "--wtp-bps", help="Minimum accuracy on your validation set, basis points."
    ),
    asset: list[int] = typer.Option([], "--asset", help="Asset id (all accepted samples)."),
    search: str | None = typer.Option(None, "--search", help="A search saved with --save."),
    classes: str | None = typer.Option(
        None, "--classes", help="Comma-separated class names (default: the validation labels)."
    ),
    node: str | None = typer.Option(
        None,
        "--node",
        help="Compute node: its address or account name here (default: the only active one).",
    ),
    voting_period: int = typer.Option(3600, "--voting-period", help="Seconds of voting."),
    min_share_bps: int = typer.Option(
        0,
        "--min-share-bps",
        help="Smallest share of the selected samples still worth training on once providers "
        "who reject have left the round, basis points (below it: refund).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Propose a training round: curate, seal the validation set, sign, escrow the offer.

    Before any money moves it checks the market's rules, every asset's licence, that the node
    holds every asset's key and would accept the spec, and how much of the validation folder
    can score the model; the notes it prints say what was checked and what was left out.
    """
    from visdm import governance
    from visdm.market import workflow
    from visdm.proposals import SelectedAsset

    cfg = settings(ctx)
    selection: list[SelectedAsset | int] = list(asset)
    if search:
        from visdm.index import load_saved_search

        saved = load_saved_search(cfg, search)
        selection += [SelectedAsset(s.asset_id, tuple(s.sample_indexes)) for s in saved.selection]
    if not selection:
        raise InvalidInputError("choose the data: --asset ID (repeatable) or --search NAME")
    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    if node is None:
        nodes = governance.compute_nodes(cfg)
        active = [n for n in nodes if n.active]
        if len(active) != 1:
            raise InvalidInputError(
                f"{len(active)} active compute nodes, so choose one with --node ADDRESS|NAME; "
                + governance.describe_nodes(nodes)
            )
        node = active[0].address
    else:
        node = governance.resolve_node(cfg, node).address
    account = unlock_account(cfg)
    created = workflow.propose(
        cfg,
        account,
        selection=selection,
        model_spec=spec,
        validation=validation,
        classes=names,
        offer=parse_amount(offer, "--offer"),
        wtp_bps=wtp_bps,
        node=node,
        voting_period_s=voting_period,
        min_share_bps=min_share_bps,
    )
    result: dict[str, object] = {
        "proposalId": created.proposal_id,
        "proposalCid": created.proposal_cid,
        "samples": sum(created.document.sample_counts),
        "assets": list(created.document.asset_ids),
        "votingDeadline": created.document.voting_deadline,
        "offerWei": created.document.offer,
        **transactions(*created.transactions),
    }
    if as_json:
        emit({**result, "notes": list(created.notes)}, as_json=True)
        return
    emit(result, as_json=False, title="proposal created")
    for note in created.notes:
        console.print(f"note: {note}", markup=False)


def vote(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    ask: str = typer.Argument(..., help="accept, reject, or your minimum price (tokens)."),
    as_json: bool = JsonOption,
) -> None:
    """Vote on a proposal with your ask (weight: your samples in its selection)."""
    from visdm.market import workflow

    lowered = ask.strip().lower()
    value = workflow.parse_ask(lowered) if lowered in ("accept", "reject") else parse_amount(ask)
    cfg = settings(ctx)
    voter = unlock_account(cfg)
    tx = workflow.vote(cfg, voter, proposal_id, value)
    try:
        warning = workflow.voting_weight(cfg, proposal_id, voter.address).warning(proposal_id)
    except VisdmError as exc:  # the vote stands; only the advice could not be worked out
        warning = f"could not work out this vote's weight: {exc}"
    if as_json:
        view = {"proposalId": proposal_id, **workflow.ask_view(value), "warning": warning or None}
        emit({**view, **transactions(tx)}, as_json=True)
        return
    console.print(f"voted {ask} on proposal {proposal_id} ({tx.gas_used:,} gas)")
    if warning:
        err_console.print(Text.assemble(("warning:", "yellow"), " ", warning))


def delegate(
    ctx: typer.Context,
    to: str = typer.Argument(..., help="Address or account name."),
    as_json: bool = JsonOption,
) -> None:
    """Delegate your votes (transitively; a direct vote always overrides)."""
    from visdm.governance import resolve_account
    from visdm.market import workflow

    cfg = settings(ctx)
    target = resolve_account(cfg, to, what="delegate")
    tx = workflow.delegate(cfg, unlock_account(cfg), target)
    if as_json:
        emit({"delegate": target, **transactions(tx)}, as_json=True)
        return
    console.print(f"delegated to {target} ({tx.gas_used:,} gas)")


def undelegate(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Take your delegation back."""
    from visdm.market import workflow

    cfg = settings(ctx)
    tx = workflow.undelegate(cfg, unlock_account(cfg))
    if as_json:
        emit({"delegate": None, **transactions(tx)}, as_json=True)
        return
    console.print(f"delegation removed ({tx.gas_used:,} gas)")


def tally(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    as_json: bool = JsonOption,
) -> None:
    """After the voting deadline: compute the clearing price and record it on chain."""
    from visdm.market import workflow

    cfg = settings(ctx)
    receipt = workflow.tally(cfg, unlock_account(cfg), proposal_id)
    out = receipt.outcome
    emit(
        {
            "proposalId": proposal_id,
            "outcome": out.status.name.lower(),
            "clearingPriceWei": out.clearing_price,
            "participatingWeight": out.participating_weight,
            "remainingWeight": out.remaining_weight,
            "totalWeight": out.total_weight,
            **transactions(*receipt.transactions),
        },
        as_json=as_json,
        title="tally",
    )


def accept_counter(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    as_json: bool = JsonOption,
) -> None:
    """Accept a counter offer: escrow the difference up to the clearing price."""
    from visdm.market import workflow

    cfg = settings(ctx)
    tx = workflow.accept_counter(cfg, unlock_account(cfg), proposal_id)
    if as_json:
        emit({"proposalId": proposal_id, **transactions(tx)}, as_json=True)
        return
    console.print(f"counter offer of proposal {proposal_id} accepted ({tx.gas_used:,} gas)")


def train(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="An approved proposal of yours."),
    node_url: str | None = typer.Option(
        None, "--node-url", help="Node API (default: the endpoint registered on chain)."
    ),
    max_cost: str | None = typer.Option(
        None, "--max-cost", help="Refuse a quote above this training cost (tokens)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Get the node's signed quote, escrow the training cost and start training."""
    from visdm.market import workflow

    cfg = settings(ctx)
    offer, tx = workflow.start_training(
        cfg,
        unlock_account(cfg),
        proposal_id,
        node_url_override=node_url,
        max_cost=None if max_cost is None else parse_amount(max_cost, "--max-cost"),
    )
    view: dict[str, object] = {
        "proposalId": proposal_id,
        "trainingCostWei": offer.quote.training_cost,
        "maxDuration": offer.quote.max_duration,
        "quoteExpiry": offer.quote.expiry,
        "signer": offer.signer,
        "nodeUrl": offer.node_url,
        "design": offer.design,
        **transactions(tx),
    }
    if not as_json:  # for people: the cost in tokens too, under a name without the unit
        view = {k if k != "trainingCostWei" else "trainingCost": v for k, v in view.items()}
        view["trainingCost"] = _tokens(offer.quote.training_cost)
    emit(view, as_json=as_json, title="training started")


def reclaim(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    as_json: bool = JsonOption,
) -> None:
    """Take back everything escrowed when the other side did not act in time."""
    from visdm.market import workflow

    cfg = settings(ctx)
    tx = workflow.reclaim(cfg, unlock_account(cfg), proposal_id)
    if as_json:
        emit({"proposalId": proposal_id, **transactions(tx)}, as_json=True)
        return
    console.print(
        f"proposal {proposal_id} reclaimed ({tx.gas_used:,} gas): the escrow is credited to "
        "you; `visdm withdraw` pays it out"
    )


def release(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    as_json: bool = JsonOption,
) -> None:
    """Release a result after its challenge window (anyone may): its claims open and the node
    is paid its training cost."""
    from visdm.market import workflow

    cfg = settings(ctx)
    tx = workflow.release(cfg, unlock_account(cfg), proposal_id)
    if as_json:
        emit({"proposalId": proposal_id, **transactions(tx)}, as_json=True)
        return
    console.print(
        f"proposal {proposal_id}'s result released ({tx.gas_used:,} gas): providers claim with "
        f"`visdm claim {proposal_id}`"
    )


def overturn_unproven(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    as_json: bool = JsonOption,
) -> None:
    """Overturn a result whose accuracy proof was rejected, expired or never committed by the
    end of its window (anyone may): the consumer is refunded and paid the node's bond."""
    from visdm.verify._claims import overturn_unproven as overturn

    cfg = settings(ctx)
    tx = overturn(cfg, unlock_account(cfg), proposal_id)
    if as_json:
        emit({"proposalId": proposal_id, **transactions(tx)}, as_json=True)
        return
    console.print(
        f"proposal {proposal_id}'s result overturned for its accuracy proof ({tx.gas_used:,} "
        "gas): the consumer is credited price and training cost and paid the node's bond"
    )


def claim(
    ctx: typer.Context,
    proposal_id: list[int] = typer.Argument(None, help="Proposal ids (default: all completed)."),
    as_json: bool = JsonOption,
) -> None:
    """Claim your assets' payouts (Merkle proofs from the node's published result) in one
    transaction, then withdraw your credit."""
    from visdm.market import workflow

    cfg = settings(ctx)
    account = unlock_account(cfg)
    receipts = workflow.claim(cfg, account, proposal_id or None, withdraw_credits=False)
    withdrawn, withdrawal = workflow.withdraw(cfg, account)
    if not as_json:
        rows = [
            {
                "proposal": r.proposal_id,
                "amount": _tokens(r.amount),
                "note": r.note,
                "tx": r.tx_hash,
            }
            for r in receipts
        ]
        emit(rows, as_json=False, title="claims")
        if withdrawn:
            console.print(f"withdrew {_tokens(withdrawn)}")
        return
    # one claimMany carries every claim: list each transaction once
    sent = {r.tx_hash: r for r in receipts if r.tx_hash is not None}
    mined = [
        {"txHash": h, "blockNumber": r.block_number, "gasUsed": r.gas_used} for h, r in sent.items()
    ]
    after = transactions(withdrawal)
    view = {
        "claims": [
            {
                "proposalId": r.proposal_id,
                "amountWei": r.amount,
                "note": r.note,
                "txHash": r.tx_hash,
            }
            for r in receipts
        ],
        "withdrawnWei": withdrawn,
        "transactions": mined + after["transactions"],
        "gasUsed": sum(r.gas_used for r in sent.values()) + after["gasUsed"],
    }
    emit(view, as_json=True)


def sweep(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    as_json: bool = JsonOption,
) -> None:
    """After the claim period, send what nobody claimed to the market treasury (anyone may)."""
    from visdm.market import workflow

    cfg = settings(ctx)
    tx = workflow.sweep_unclaimed(cfg, unlock_account(cfg), proposal_id)
    if as_json:
        emit({"proposalId": proposal_id, **transactions(tx)}, as_json=True)
        return
    console.print(f"proposal {proposal_id}: unclaimed payouts swept ({tx.gas_used:,} gas)")


def withdraw(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Withdraw your credits: payouts, refunds (consumers) and training fees (nodes)."""
    from visdm.market import workflow

    cfg = settings(ctx)
    amount, tx = workflow.withdraw(cfg, unlock_account(cfg))
    if as_json:
        emit({"withdrawnWei": amount, **transactions(tx)}, as_json=True)
        return
    console.print(f"withdrew {_tokens(amount)}")


def status(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    node_url: str | None = typer.Option(None, "--node-url", help="Node API for job progress."),
    wait: float | None = typer.Option(
        None, "--wait", help="Wait up to this many seconds for the training result."
    ),
    signed: bool = typer.Option(
        False,
        "--signed",
        help="Sign the job query as the current account (asks for its password): the "
        "proposal's consumer also sees the node's messages.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """One view of a proposal's life: votes, outcome, training progress, result, payouts."""
    import time

    from visdm.market import workflow

    cfg = settings(ctx)
    viewer = unlock_account(cfg) if signed else None
    view = workflow.proposal_status(cfg, proposal_id, viewer=viewer, node_url_override=node_url)
    if wait is not None:
        deadline = time.monotonic() + wait
        while view["status"] == "training" and time.monotonic() < deadline:
            if not as_json:
                job = view.get("job") or {}
                console.print(f"training: {job.get('state')} {job.get('message') or ''}".rstrip())
            time.sleep(2.0)
            view = workflow.proposal_status(
                cfg, proposal_id, viewer=viewer, node_url_override=node_url
            )
        if view["status"] == "training":
            raise InvalidInputError(f"proposal {proposal_id} is still training after {wait:g} s")
    if view.get("court") is not None:
        from visdm.verify._claims import proposal_claim

        # a court that names an accuracy check holds the result until the claim is accepted
        claim = proposal_claim(cfg, proposal_id)
        view["court"]["accuracyClaim"] = None if claim is None else claim.to_json()
    emit(view, as_json=as_json, title=f"proposal {proposal_id}")


@model_app.command("get")
def model_get(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="A completed proposal of yours."),
    out: Path = typer.Option(Path("model.safetensors"), "--out", help="The file to write."),
    force: bool = typer.Option(
        False, "--force", help="Overwrite --out and its model card if they exist."
    ),
    skip_card: bool = typer.Option(
        False,
        "--skip-card",
        help="Take the model even when its node published no model card or a wrong one "
        "(nothing is written beside it).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Download, verify (node signature, committed hash, spec) and decrypt your model; check
    its model card against the chain and write it beside the model (MODEL-card.json)."""
    from visdm.market import workflow

    cfg = settings(ctx)
    account = unlock_account(cfg)
    card_path = out.with_name(f"{out.stem}-card.json")
    card = None
    if not skip_card:
        if card_path.exists() and (card_path.is_dir() or not force):
            raise InvalidInputError(
                f"{card_path} exists: the model card goes there; pass --force to overwrite it, "
                "or choose another --out"
            )
        card = _model_card(cfg, proposal_id)  # a wrong card refuses before anything is written
    model = workflow.get_model(cfg, account, proposal_id, out, force=force)
    if card is not None:
        _write_card(card_path, card.to_document())
    if card is None:
        err_console.print("warning: no model card was checked or written (--skip-card)")
    if as_json:
        document = None if card is None else card.to_document()
        emit(
            {**model, "card": document, "cardPath": None if card is None else str(card_path)},
            as_json=True,
        )
        return
    emit(model, as_json=False)
    if card is not None:
        console.print(f"model card ({card_path})", style="bold")
        for line in card.summary():
            console.print(line, markup=False)


def _model_card(cfg: Settings, proposal_id: int) -> ModelCard | None:
    """The model card of a completed proposal's result, checked against the chain; ``None``
    when there is no model to get (``get_model`` says why)."""
    from visdm.market.model_card import checked_model_card

    return checked_model_card(
        cfg, proposal_id, hint="pass --skip-card to take the model without it"
    )


def _write_card(path: Path, document: dict[str, object]) -> None:
    """Write the card beside the model, atomically (a partial card is never left behind)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def register(app: typer.Typer) -> None:
    for name, command in (
        ("propose", propose),
        ("vote", vote),
        ("delegate", delegate),
        ("undelegate", undelegate),
        ("tally", tally),
        ("accept-counter", accept_counter),
        ("train", train),
        ("reclaim", reclaim),
        ("release", release),
        ("overturn-unproven", overturn_unproven),
        ("claim", claim),
        ("withdraw", withdraw),
        ("sweep", sweep),
        ("status", status),
    ):
        app.command(name)(command)
    app.add_typer(model_app, name="model")
