"""``visdm governance``: regions, compute-node admission and market parameters (changes need
GOVERNANCE_ROLE)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from visdm import governance
from visdm.errors import InvalidInputError

from ._common import JsonOption, emit, settings, unlock_account
from ._json import camel, json_view, transactions

if TYPE_CHECKING:
    from visdm.chain.client import TxResult
    from visdm.chain.contracts import ComputeNodeRecord, MarketParameters

__all__ = ["app"]

app = typer.Typer(help="Govern the marketplace: regions, compute nodes and market parameters.")


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


@app.command("parameters")
def parameters(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Show the market parameters (periods in seconds; the text also in units)."""
    params = governance.market_parameters(settings(ctx))
    emit(
        json_view(params) if as_json else parameters_text(params),
        as_json=as_json,
        title="market parameters",
    )


@app.command("set-parameters")
def set_parameters(
    ctx: typer.Context,
    changes: list[str] = typer.Argument(
        ...,
        metavar="NAME=VALUE...",
        help="Only the parameters to change, e.g. quorum_bps=5000 max_voting_period=14d; "
        "periods take seconds or units (90s, 30m, 12h, 3d, 2w); court=none removes the court. "
        "Names as `visdm governance parameters` shows them.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change market parameters; the others stay as they are. Every rule is checked first."""
    cfg = settings(ctx)
    named = governance.parse_parameter_assignments(changes)
    for name, value in named.items():  # before the password
        governance.parse_parameter_value(name, value, settings=cfg)
    done = governance.set_market_parameters(cfg, unlock_account(cfg).local_account, named)
    if as_json:
        changed = [
            {"name": camel(name), "before": old, "after": new}
            for name, (old, new) in done.changed.items()
        ]
        view = {"changed": changed, "parameters": done.after, **transactions(done.tx)}
        emit(view, as_json=True)
        return
    lines: dict[str, Any] = {
        name: f"{_value_text(name, old)} -> {_value_text(name, new)}"
        for name, (old, new) in done.changed.items()
    }
    emit({**lines, **transactions(done.tx)}, as_json=False, title="market parameters changed")


def parameters_text(params: MarketParameters) -> dict[str, str]:
    """The parameters as text lines: periods in seconds and in units, no address as none."""
    return {name: _value_text(name, getattr(params, name)) for name in governance.PARAMETER_NAMES}


def _value_text(name: str, value: int | str) -> str:
    text = governance.parameter_text(name, value)
    return f"{value} s ({text})" if name in governance.PERIOD_PARAMETERS else text
