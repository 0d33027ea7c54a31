"""``visdm governance``: regions and compute-node admission (needs GOVERNANCE_ROLE)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from visdm import governance
from visdm.errors import InvalidInputError

from ._common import JsonOption, emit, settings, unlock_account
from ._json import json_view, transactions

if TYPE_CHECKING:
    from visdm.chain.client import TxResult
    from visdm.chain.contracts import ComputeNodeRecord

__all__ = ["app"]

app = typer.Typer(help="Govern the marketplace: regions and compute nodes.")


@app.command("add-region")
def add_region(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Add a region that compute nodes can be placed in and assets can allow."""
    cfg = settings(ctx)
    regions, tx = governance.add_region(cfg, unlock_account(cfg).local_account, name)
    emit({"regions": regions, **transactions(tx)}, as_json=as_json)


@app.command("admit-node")
def admit_node(
    ctx: typer.Context,
    node: str = typer.Argument(..., help="The node's address, or its account name here."),
    region: str = typer.Option(..., "--region", help="Region the node runs in."),
    endpoint: str = typer.Option(..., "--endpoint", help="The node's HTTP endpoint."),
    encryption_key: str | None = typer.Option(
        None,
        "--encryption-key",
        help="The node's X25519 public key (default: from its keystore when NODE names one).",
    ),
    signer: str | None = typer.Option(None, "--signer", help="Quote signer (default: the node)."),
    as_json: bool = JsonOption,
) -> None:
    """Admit a compute node (or update its region, endpoint or keys)."""
    cfg = settings(ctx)
    if encryption_key is None:
        from visdm.accounts import account_info
        from visdm.errors import KeystoreNotFoundError

        try:
            info = account_info(cfg.keystore_dir, node)
        except KeystoreNotFoundError:
            raise InvalidInputError(
                f"{node} is not an account in this data directory, so its X25519 key is "
                "unknown: pass --encryption-key (what `visdm account export-public` prints on "
                "the node's machine)"
            ) from None
        if info.x25519_public is None:
            raise InvalidInputError(
                f"the keystore of {node} records no X25519 key: pass --encryption-key"
            )
        node, encryption_key = info.address, info.x25519_public
    governance.check_endpoint(endpoint)  # before the password
    record, tx = governance.admit_node(
        cfg,
        unlock_account(cfg).local_account,
        node,
        region=region,
        endpoint=endpoint,
        encryption_key=encryption_key,
        signer=signer,
    )
    emit(node_view(record, tx), as_json=as_json, title="compute node")


@app.command("suspend-node")
def suspend_node(
    ctx: typer.Context,
    node: str = typer.Argument(..., help="The node's address, or its account name here."),
    as_json: bool = JsonOption,
) -> None:
    """Suspend a compute node: it can no longer attest, be chosen or submit results."""
    cfg = settings(ctx)
    target = governance.resolve_node(cfg, node, active=False).address  # before the password
    record, tx = governance.set_node_suspended(
        cfg, unlock_account(cfg).local_account, target, suspended=True
    )
    emit(node_view(record, tx), as_json=as_json, title="compute node")


@app.command("reinstate-node")
def reinstate_node(
    ctx: typer.Context,
    node: str = typer.Argument(..., help="The node's address, or its account name here."),
    as_json: bool = JsonOption,
) -> None:
    """Lift a compute node's suspension."""
    cfg = settings(ctx)
    target = governance.resolve_node(cfg, node, active=False).address  # before the password
    record, tx = governance.set_node_suspended(
        cfg, unlock_account(cfg).local_account, target, suspended=False
    )
    emit(node_view(record, tx), as_json=as_json, title="compute node")


def node_view(record: ComputeNodeRecord, tx: TxResult | None) -> dict[str, Any]:
    """A compute node's record as governance commands print it, with the transaction sent."""
    return {**json_view(record), "active": record.active, **transactions(tx)}
