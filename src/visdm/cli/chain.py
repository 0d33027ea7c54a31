"""``visdm chain up|down|status|advance``; the chain-level ``deploy``, ``register``, ``whoami``."""

from __future__ import annotations

import typer

from visdm import session
from visdm.chain.anvil import chain_down, chain_status, chain_up
from visdm.types import Role

from ._common import JsonOption, console, emit, public_account, settings, unlock_account
from ._json import transactions

__all__ = ["app", "register_top_level"]

app = typer.Typer(help="Run the local chain (anvil) that the embedded marketplace uses.")


@app.command("up")
def up(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Start the local chain (state persists in the data directory across restarts)."""
    node, started = chain_up(settings(ctx).chain_dir)
    result = {"rpcUrl": node.rpc_url, "pid": node.pid, "started": started}
    if as_json:
        emit(result, as_json=True)
    else:
        verb = "started" if started else "already running"
        console.print(f"local chain {verb} at {node.rpc_url} (pid {node.pid})")


@app.command("down")
def down(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Stop the local chain; its state is kept for the next `visdm chain up`."""
    stopped = chain_down(settings(ctx).chain_dir)
    if as_json:
        emit({"stopped": stopped}, as_json=True)
        return
    console.print("local chain stopped" if stopped else "no local chain was running")


@app.command("status")
def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Whether the local chain runs, where, and at which block."""
    emit(chain_status(settings(ctx).chain_dir), as_json=as_json, title="local chain")


@app.command("advance")
def advance(
    ctx: typer.Context,
    seconds: int = typer.Argument(..., help="Seconds to move time forward (at most ten years)."),
    as_json: bool = JsonOption,
) -> None:
    """Move a local dev chain's clock forward (to end a voting period without waiting)."""
    from visdm.chain.anvil import advance_time

    now = advance_time(session.connect(settings(ctx)), seconds)
    if as_json:
        emit({"chainTime": now, "advancedSeconds": seconds}, as_json=True)
        return
    console.print(f"chain time is now {now} ({seconds} s later)")


def deploy(
    ctx: typer.Context,
    payment_token: str | None = typer.Option(
        None,
        "--payment-token",
        help="ERC-20 the market takes payments in (required outside a local dev chain).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Deploy the marketplace contracts and write the deployment file every command reads."""
    cfg = settings(ctx)
    unlocked = unlock_account(cfg)
    deployment = session.deploy(cfg, unlocked.local_account, payment_token=payment_token)
    if as_json:
        contracts = [
            {
                "name": name,
                "address": info.address,
                "blockNumber": info.block_number,
                "txHash": info.tx_hash,
                "gasUsed": info.gas_used,
            }
            for name, info in deployment.contracts.items()
        ]
        view = {
            "chainId": deployment.chain_id,
            "rpcUrl": deployment.rpc_url,
            "deployer": deployment.deployer,
            "compiler": deployment.compiler,
            "deployedAt": deployment.deployed_at,
            "contracts": contracts,
            "transactions": [
                {k: c[k] for k in ("txHash", "blockNumber", "gasUsed")} for c in contracts
            ],
            "gasUsed": sum(info.gas_used for info in deployment.contracts.values()),
        }
        emit(view, as_json=True)
        return
    console.print(f"deployed on chain {deployment.chain_id} ({deployment.rpc_url}):")
    for name, info in deployment.contracts.items():
        console.print(
            f"  {name:<24} {info.address}  block {info.block_number}  gas {info.gas_used}"
        )


def register(
    ctx: typer.Context,
    role: str = typer.Option(..., "--role", help="provider, consumer, or provider,consumer"),
    as_json: bool = JsonOption,
) -> None:
    """Register the account on chain with a role and its X25519 encryption key."""
    cfg = settings(ctx)
    roles = Role.parse(role)
    unlocked = unlock_account(cfg)
    record, tx = session.register(cfg, unlocked.local_account, roles, unlocked.x25519_public)
    emit(
        {
            "address": record.address,
            "roles": record.roles.names(),
            "encryptionKey": "0x" + record.encryption_key.hex(),
            **transactions(tx),
        },
        as_json=as_json,
        title="registered",
    )


def whoami(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Show the account's on-chain record (no password needed)."""
    cfg = settings(ctx)
    address, public_key = public_account(cfg)
    emit(session.whoami(cfg, address, public_key), as_json=as_json, title="whoami")


def register_top_level(root: typer.Typer) -> None:
    """Chain-level commands that sit directly under ``visdm``."""
    root.command("deploy")(deploy)
    root.command("register")(register)
    root.command("whoami")(whoami)
