"""Top-level workflow commands: ``visdm propose|vote|delegate|undelegate|tally|accept-counter|
train|reclaim|claim|withdraw|status`` and ``visdm model get``. Each is one call of
:mod:`visdm.market.workflow`.

Amounts are in tokens (``10``, ``2.5``; 18 decimals) or in the smallest unit with a ``wei``
suffix (``1000wei``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer

from visdm.errors import InvalidInputError, VisdmError

from ._common import JsonOption, console, emit, err_console, settings, unlock_account

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
    return f"{Decimal(value) / (10**_DECIMALS):f} ({value} wei)"


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
        "gas": sum(t.gas_used for t in created.transactions),
    }
    if as_json:
        result["notes"] = list(created.notes)
    emit(result, as_json=as_json, title="proposal created")
    if not as_json:
        for note in created.notes:
            console.print(f"note: {note}", markup=False)


def vote(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    ask: str = typer.Argument(..., help="accept, reject, or your minimum price (tokens)."),
) -> None:
    """Vote on a proposal with your ask (weight: your samples in its selection)."""
    from visdm.market import workflow

    lowered = ask.strip().lower()
    value = workflow.parse_ask(lowered) if lowered in ("accept", "reject") else parse_amount(ask)
    cfg = settings(ctx)
    voter = unlock_account(cfg)
    tx = workflow.vote(cfg, voter, proposal_id, value)
    console.print(f"voted {ask} on proposal {proposal_id} ({tx.gas_used:,} gas)")
    try:
        warning = workflow.voting_weight(cfg, proposal_id, voter.address).warning(proposal_id)
    except VisdmError as exc:  # the vote stands; only the advice could not be worked out
        warning = f"could not work out this vote's weight: {exc}"
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", markup=True)


def delegate(
    ctx: typer.Context, to: str = typer.Argument(..., help="Address or account name.")
) -> None:
    """Delegate your votes (transitively; a direct vote always overrides)."""
    from visdm.governance import resolve_account
    from visdm.market import workflow

    cfg = settings(ctx)
    target = resolve_account(cfg, to, what="delegate")
    tx = workflow.delegate(cfg, unlock_account(cfg), target)
    console.print(f"delegated to {target} ({tx.gas_used:,} gas)")


def undelegate(ctx: typer.Context) -> None:
    """Take your delegation back."""
    from visdm.market import workflow

    cfg = settings(ctx)
    tx = workflow.undelegate(cfg, unlock_account(cfg))
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
            "clearingPrice": str(out.clearing_price),
            "participatingWeight": out.participating_weight,
            "totalWeight": out.total_weight,
            "transactions": len(receipt.transactions),
            "gas": receipt.gas_used,
        },
        as_json=as_json,
        title="tally",
    )


def accept_counter(
    ctx: typer.Context, proposal_id: int = typer.Argument(..., help="Proposal id.")
) -> None:
    """Accept a counter offer: escrow the difference up to the clearing price."""
    from visdm.market import workflow

    cfg = settings(ctx)
    tx = workflow.accept_counter(cfg, unlock_account(cfg), proposal_id)
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
    emit(
        {
            "proposalId": proposal_id,
            "trainingCost": _tokens(offer.quote.training_cost),
            "maxDuration": offer.quote.max_duration,
            "design": offer.design,
            "node": offer.node_url,
            "gas": tx.gas_used,
        },
        as_json=as_json,
        title="training started",
    )


def reclaim(
    ctx: typer.Context, proposal_id: int = typer.Argument(..., help="Proposal id.")
) -> None:
    """Take back everything escrowed when the other side did not act in time."""
    from visdm.market import workflow

    cfg = settings(ctx)
    tx = workflow.reclaim(cfg, unlock_account(cfg), proposal_id)
    console.print(f"proposal {proposal_id} reclaimed ({tx.gas_used:,} gas)")


def claim(
    ctx: typer.Context,
    proposal_id: list[int] = typer.Argument(None, help="Proposal ids (default: all completed)."),
    as_json: bool = JsonOption,
) -> None:
    """Claim your assets' payouts (Merkle proofs from the node's published result) in one
    transaction, then withdraw your credit."""
    from visdm.market import workflow

    cfg = settings(ctx)
    receipts = workflow.claim(cfg, unlock_account(cfg), proposal_id or None)
    emit(
        [
            {
                "proposalId": r.proposal_id,
                "amount": _tokens(r.amount),
                "note": r.note,
                "tx": r.tx_hash,
            }
            for r in receipts
        ],
        as_json=as_json,
        title="claims",
    )


def sweep(ctx: typer.Context, proposal_id: int = typer.Argument(..., help="Proposal id.")) -> None:
    """After the claim period, send what nobody claimed to the market treasury (anyone may)."""
    from visdm.market import workflow

    cfg = settings(ctx)
    tx = workflow.sweep_unclaimed(cfg, unlock_account(cfg), proposal_id)
    console.print(f"proposal {proposal_id}: unclaimed payouts swept ({tx.gas_used:,} gas)")


def withdraw(ctx: typer.Context) -> None:
    """Withdraw your credits: payouts, refunds (consumers) and training fees (nodes)."""
    from visdm.market import workflow

    cfg = settings(ctx)
    amount, _ = workflow.withdraw(cfg, unlock_account(cfg))
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
    emit(view, as_json=as_json, title=f"proposal {proposal_id}")


@model_app.command("get")
def model_get(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="A completed proposal of yours."),
    out: Path = typer.Option(Path("model.safetensors"), "--out", help="The file to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    as_json: bool = JsonOption,
) -> None:
    """Download, verify (node signature, committed hash, spec) and decrypt your model."""
    from visdm.market import workflow

    cfg = settings(ctx)
    model = workflow.get_model(cfg, unlock_account(cfg), proposal_id, out, force=force)
    emit(model, as_json=as_json)


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
        ("claim", claim),
        ("withdraw", withdraw),
        ("sweep", sweep),
        ("status", status),
    ):
        app.command(name)(command)
    app.add_typer(model_app, name="model")
