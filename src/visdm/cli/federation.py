"""``visdm federation``: regional compute nodes that train one proposal together.

``create`` (the coordinator, an admitted node), ``join`` (each member, after checking what it
joins), ``serve`` (each node of the federation: it runs its rounds), ``show``, ``bond`` (the
coordinator's tokens as the federation's bond in the court), ``collect`` (book the members'
fees of a released round) and ``withdraw`` (a member's fees). A consumer names a federation
like a node: ``visdm propose --node <federation>``, then ``visdm start``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from visdm import session
from visdm.errors import InvalidInputError

from ._common import JsonOption, emit, settings, unlock_account
from ._json import transactions
from .rounds import parse_amount

if TYPE_CHECKING:
    from visdm.accounts import UnlockedAccount
    from visdm.federation.membership import FederationView
    from visdm.session import Connection

__all__ = ["app"]

app = typer.Typer(help="Federations: regional nodes that train one proposal together.")

_FEDERATION = typer.Argument(..., help="The federation's address.")


def _open(
    ctx: typer.Context, federation: str
) -> tuple[UnlockedAccount, Connection, FederationView]:
    """The current account unlocked, the deployed chain and the federation's view."""
    from visdm.federation.membership import load_federation

    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    return account, conn, load_federation(conn.client, conn.deployment, federation)


@app.command("create")
def create(
    ctx: typer.Context,
    member: list[str] = typer.Option(
        ..., "--member", help="A member node: address or account name (repeat, 1 to 8)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Deploy and register a federation coordinated by you (an admitted node)."""
    from visdm.federation.membership import form_federation
    from visdm.governance import resolve_account

    cfg = settings(ctx)
    members = [resolve_account(cfg, m, what="--member") for m in member]
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    if not conn.deployment.stakeholder_registry(conn.client).compute_node(account.address).active:
        raise InvalidInputError(
            f"{account.address} is not an active compute node: only one may coordinate a "
            "federation (switch with --account)"
        )
    fed = form_federation(conn.client, conn.deployment, account.local_account, members)
    emit(
        {
            "federation": fed.address,
            "coordinator": account.address,
            "members": ", ".join(members),
            "next": f"each member runs `visdm federation join {fed.address}`",
        },
        as_json=as_json,
        title="federation registered",
    )


@app.command("join")
def join(ctx: typer.Context, federation: str = _FEDERATION, as_json: bool = JsonOption) -> None:
    """Join a federation that names you, after checking its code, market and members."""
    from visdm.federation.membership import join_federation

    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    tx = join_federation(conn.client, conn.deployment, account.local_account, federation)
    emit(
        {"federation": federation, "member": account.address, **transactions(tx)},
        as_json=as_json,
        title="joined",
    )


@app.command("show")
def show(ctx: typer.Context, federation: str = _FEDERATION, as_json: bool = JsonOption) -> None:
    """A federation's coordinator, members (region, joined, fees owed) and whether it is active."""
    from visdm.federation.membership import load_federation

    cfg = settings(ctx)
    conn = session.connect_deployed(cfg)
    view = load_federation(conn.client, conn.deployment, federation)
    regions = conn.deployment.stakeholder_registry(conn.client).node_regions(view.record.address)
    members: list[dict[str, Any]] = [
        {
            "node": m.address,
            "region": view.region_of(m),
            "joined": view.record.joined(m.address),
            "active": m.active,
            "owed": view.contract.owed_to(m.address),
        }
        for m in view.members
    ]
    emit(
        {
            "federation": view.record.address,
            "coordinator": view.record.coordinator,
            "active": regions.active,
            "regions": ", ".join(view.region_of(m) for m in view.members),
            "members": members,
        },
        as_json=as_json,
        title="federation",
    )


@app.command("bond")
def bond(
    ctx: typer.Context,
    federation: str = _FEDERATION,
    amount: str = typer.Argument(..., help="Tokens (0.5) or wei (1000wei) of yours to bond."),
    as_json: bool = JsonOption,
) -> None:
    """Coordinator: bond your tokens as the federation's stake in the court (a job locks one)."""
    wei = parse_amount(amount, "amount")
    account, conn, view = _open(ctx, federation)
    token = conn.deployment.payment_token(conn.client)
    approved = token.approve(account.local_account, view.contract.address, wei)
    deposited = view.contract.deposit_bond(account.local_account, wei)
    emit(
        {"federation": federation, "bonded": wei, **transactions(approved, deposited)},
        as_json=as_json,
        title="bonded",
    )


@app.command("collect")
def collect(
    ctx: typer.Context,
    federation: str = _FEDERATION,
    proposal: int = typer.Argument(..., help="A released round of the federation."),
    as_json: bool = JsonOption,
) -> None:
    """Book every member's fee of a released round (anyone may)."""
    account, _, view = _open(ctx, federation)
    tx = view.contract.collect(account.local_account, proposal)
    fees = view.contract.fees_of(proposal)
    emit(
        {
            "proposal": proposal,
            "fees": ", ".join(f"{m}: {f}" for m, f in zip(view.record.members, fees, strict=True)),
            **transactions(tx),
        },
        as_json=as_json,
        title="fees collected",
    )


@app.command("withdraw")
def withdraw(ctx: typer.Context, federation: str = _FEDERATION, as_json: bool = JsonOption) -> None:
    """Member: withdraw the fees the federation booked for you."""
    account, _, view = _open(ctx, federation)
    owed = view.contract.owed_to(account.address)
    tx = view.contract.withdraw(account.local_account)
    emit({"withdrawn": owed, **transactions(tx)}, as_json=as_json, title="fees withdrawn")


@app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    federation: str = _FEDERATION,
    poll_s: float = typer.Option(2.0, "--poll-s", help="Seconds between looks at the chain."),
    price: str = typer.Option(
        "0.001", "--price-per-gflop", help="Coordinator: tokens per GFLOP of training quoted."
    ),
    no_sandbox: bool = typer.Option(
        False, "--no-sandbox", help="Train outside bubblewrap (machines without it; tests only)."
    ),
) -> None:
    """Run this node's part in the federation's rounds until interrupted."""
    import signal
    import threading

    from visdm.federation.serve import NodeHandles, serve

    cfg = settings(ctx)
    per_gflop = parse_amount(price, "--price-per-gflop")
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    node = NodeHandles(conn.client, conn.deployment, session.open_store(cfg), account)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    workdir = cfg.node_dir / "federation" / federation.lower()
    emit({"federation": federation, "node": account.address, "workdir": str(workdir)},
         as_json=False, title="serving")  # fmt: skip
    try:
        serve(
            node,
            federation,
            workdir,
            stop=stop,
            poll_s=poll_s,
            price_per_gflop=per_gflop,
            sandbox=not no_sandbox,
        )
    except KeyboardInterrupt:
        stop.set()
