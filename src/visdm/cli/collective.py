"""``visdm collective``: data owners who vote together on a standing price floor.

``create|join|leave|policy|vote|show|list`` and the steward's fee (``fee|deposit|charge|
withdraw``). A collective is named by its name or its address. Each command is one call of
:mod:`visdm.collectives`; floors and amounts are in tokens (``0.01``) or wei (``1000wei``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import typer

from visdm import collectives, session
from visdm.errors import InvalidInputError, VisdmError

from ._common import JsonOption, console, emit, settings, unlock_account
from ._json import transactions
from .rounds import parse_amount

if TYPE_CHECKING:
    from visdm.config import Settings
    from visdm.merkle import StandardMerkleTree

__all__ = ["app"]

app = typer.Typer(help="Collectives: vote together on a standing price floor per sample.")

_COLLECTIVE = typer.Argument(..., help="The collective's name or address.")


def _view(receipt: Any) -> dict[str, Any]:
    """A receipt's fields, with what it sent in the CLI's ``transactions`` form."""
    data = {f.name: getattr(receipt, f.name) for f in fields(receipt) if f.name != "transactions"}
    return {**data, **transactions(*receipt.transactions)}


def _print(view: Mapping[str, Any], as_json: bool, title: str) -> None:
    emit(view, as_json=as_json, title=title)
    if not as_json:
        for note in view.get("notes") or ():
            console.print(f"note: {note}", markup=False)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A unique name, 1 to 32 bytes."),
    fee_bps: int = typer.Option(
        0,
        "--fee-bps",
        help=f"Steward fee on members' payouts, bps (at most {collectives.MAX_FEE_BPS}).",
    ),
    steward: str | None = typer.Option(
        None, "--steward", help="Who receives the fee: address or account name (default: you)."
    ),
    policy_delay: int = typer.Option(
        collectives.DEFAULT_POLICY_DELAY,
        "--policy-delay",
        help="Seconds before a floor vote, a weight increase or a fee change counts.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a collective (you are its steward unless --steward names another)."""
    from visdm.governance import resolve_account

    cfg = settings(ctx)
    who = resolve_account(cfg, steward, what="steward") if steward else None
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    created = collectives.create(
        conn.client,
        conn.deployment,
        account.local_account,
        name=name,
        steward=who,
        fee_bps=fee_bps,
        policy_delay=policy_delay,
    )
    _print(_view(created), as_json, "collective created")


@app.command("join")
def join(
    ctx: typer.Context,
    collective: str = _COLLECTIVE,
    floor: str = typer.Option(..., "--floor", help="Your floor price per sample (tokens)."),
    asset: list[int] = typer.Option(
        [], "--asset", help="An asset that makes your weight (default: all your Active ones)."
    ),
    deposit: str | None = typer.Option(
        None, "--deposit", help="Fee deposit to pay in (tokens); the fee is charged against it."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Join: delegate your market vote to the collective and vote a floor per sample."""
    cfg = settings(ctx)
    price = parse_amount(floor, "--floor")
    paid = parse_amount(deposit, "--deposit") if deposit else 0
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    receipt = collectives.join(
        conn.client,
        conn.deployment,
        account.local_account,
        collective,
        floor=price,
        asset_ids=asset or None,
        deposit_wei=paid,
    )
    _print(_view(receipt), as_json, "joined")


@app.command("leave")
def leave(ctx: typer.Context, collective: str = _COLLECTIVE, as_json: bool = JsonOption) -> None:
    """Leave: your vote stops counting and your market vote is your own again."""
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    receipt = collectives.leave(conn.client, conn.deployment, account.local_account, collective)
    _print(_view(receipt), as_json, "left")


@app.command("policy")
def policy(
    ctx: typer.Context,
    collective: str = _COLLECTIVE,
    floor: str | None = typer.Option(None, "--floor", help="Vote a new floor (tokens/sample)."),
    asset: list[int] = typer.Option([], "--asset", help="List these assets for your weight."),
    all_assets: bool = typer.Option(
        False, "--all-assets", help="List all your Active assets for your weight."
    ),
    settle: bool = typer.Option(
        False, "--settle", help="Count every vote whose delay has passed (anyone may)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Vote a floor, change the assets behind your weight, or settle waiting votes."""
    if floor is None and not asset and not all_assets and not settle:
        raise InvalidInputError(
            "say what to do: --floor PRICE, --asset ID / --all-assets, or --settle"
        )
    if asset and all_assets:
        raise InvalidInputError("give either --asset ID (repeatable) or --all-assets, not both")
    cfg = settings(ctx)
    price = parse_amount(floor, "--floor") if floor is not None else None
    account = unlock_account(cfg).local_account
    conn = session.connect_deployed(cfg)
    sent: list[Any] = []
    view: dict[str, Any] = {}
    if price is not None:
        receipt = collectives.vote_floor(
            conn.client, conn.deployment, account, collective, floor=price
        )
        view.update(_view(receipt))
        sent += receipt.transactions
    if asset or all_assets:
        receipt = collectives.set_assets(
            conn.client, conn.deployment, account, collective, asset_ids=asset or None
        )
        view.update(_view(receipt))
        sent += receipt.transactions
    if settle:
        settled = collectives.settle(conn.client, conn.deployment, account, collective)
        view.update(_view(settled))
        sent += settled.transactions
    view.update(transactions(*sent))
    _print(view, as_json, "policy")


@app.command("vote")
def vote(
    ctx: typer.Context,
    collective: str = _COLLECTIVE,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    as_json: bool = JsonOption,
) -> None:
    """Make the collective vote on a proposal from its policy (anyone may)."""
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    receipt = collectives.cast_vote(
        conn.client, conn.deployment, account.local_account, collective, proposal_id
    )
    view = _view(receipt)
    view["vote"] = "accept" if receipt.accepted else "ask"
    _print(view, as_json, "collective vote")


def _selected_samples(cfg: Settings, conn: session.Connection) -> collectives.SelectedSamples:
    """Proposal id → samples selected per asset, from the proposal's signed document."""
    from visdm.proposals import MAX_PROPOSAL_BYTES, verify_proposal

    def of(proposal_id: int) -> dict[int, int]:
        store = session.open_store(cfg)
        market = conn.deployment.training_market(conn.client)
        created = market.logs("ProposalCreated", where={"proposalId": proposal_id})
        if not created:
            raise InvalidInputError(f"proposal {proposal_id} has no ProposalCreated event")
        raw = store.get(created[0]["args"]["proposalCid"], max_bytes=MAX_PROPOSAL_BYTES)
        doc = verify_proposal(raw, chain_id=conn.client.chain_id, market=market.address).proposal
        return dict(zip(doc.asset_ids, doc.sample_counts, strict=True))

    return of


@app.command("show")
def show(ctx: typer.Context, collective: str = _COLLECTIVE, as_json: bool = JsonOption) -> None:
    """Terms, policy, members and statistics (proposals voted, acceptance, earnings)."""
    cfg = settings(ctx)
    conn = session.connect_deployed(cfg)
    view = collectives.show(
        conn.client, conn.deployment, collective, selected_samples=_selected_samples(cfg, conn)
    )
    _print({f.name: getattr(view, f.name) for f in fields(view)}, as_json, view.name)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every collective of the marketplace."""
    cfg = settings(ctx)
    conn = session.connect_deployed(cfg)
    emit(
        collectives.list_collectives(conn.client, conn.deployment),
        as_json=as_json,
        title="collectives",
    )


@app.command("fee")
def fee(
    ctx: typer.Context,
    collective: str = _COLLECTIVE,
    fee_bps: int = typer.Argument(..., help=f"New fee, bps (at most {collectives.MAX_FEE_BPS})."),
    as_json: bool = JsonOption,
) -> None:
    """The steward schedules a new fee; it counts after the collective's policy delay."""
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    receipt = collectives.set_fee(
        conn.client, conn.deployment, account.local_account, collective, fee_bps=fee_bps
    )
    _print({**_view(receipt), "fee_bps": fee_bps}, as_json, "fee scheduled")


@app.command("deposit")
def deposit(
    ctx: typer.Context,
    collective: str = _COLLECTIVE,
    amount: str = typer.Argument(..., help="Tokens to add to the fee deposit."),
    member: str | None = typer.Option(
        None, "--for", help="The member to pay for: address or account name (default: you)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Pay into a member's fee deposit (arrears first)."""
    from visdm.governance import resolve_account

    cfg = settings(ctx)
    value = parse_amount(amount)
    who = resolve_account(cfg, member, what="member") if member else None
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    receipt = collectives.deposit(
        conn.client,
        conn.deployment,
        account.local_account,
        collective,
        amount_wei=value,
        member=who,
    )
    _print({**_view(receipt), "deposited_wei": value}, as_json, "deposited")


def _payout_tree(cfg: Settings, proposal_id: int) -> StandardMerkleTree:
    from visdm.market import workflow
    from visdm.merkle import StandardMerkleTree

    document = workflow.training_result(cfg, proposal_id)
    payouts = (document or {}).get("payouts")
    dump = payouts.get("tree") if isinstance(payouts, dict) else None
    if not isinstance(dump, dict):
        raise InvalidInputError(
            f"proposal {proposal_id} has no published payout tree: charge after its result"
        )
    try:
        return StandardMerkleTree.load(dump)
    except VisdmError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            f"proposal {proposal_id}'s payout tree is malformed ({exc})"
        ) from exc


@app.command("charge")
def charge(
    ctx: typer.Context,
    collective: str = _COLLECTIVE,
    proposal_id: int = typer.Argument(..., help="A completed proposal the collective voted on."),
    as_json: bool = JsonOption,
) -> None:
    """Charge the steward's fee on a completed proposal's payouts to members (anyone may)."""
    cfg = settings(ctx)
    tree = _payout_tree(cfg, proposal_id)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    report = collectives.charge_fees(
        conn.client,
        conn.deployment,
        account.local_account,
        collective,
        proposal_id=proposal_id,
        tree=tree,
    )
    _print(_view(report), as_json, "fees")


@app.command("withdraw")
def withdraw(ctx: typer.Context, collective: str = _COLLECTIVE, as_json: bool = JsonOption) -> None:
    """Withdraw your deposit after leaving (and its lock), or the fees you hold as steward."""
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    done = collectives.withdraw(conn.client, conn.deployment, account.local_account, collective)
    _print(_view(done), as_json, "withdrawn")
