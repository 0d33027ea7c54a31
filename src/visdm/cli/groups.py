"""Mounts every command group on the root app. Each group lives in its own module."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Attach the command groups (idempotent)."""
    if getattr(app, "_visdm_groups_registered", False):
        return
    from . import (
        account,
        asset,
        chain,
        collective,
        data,
        demo,
        federation,
        governance,
        market,
        node,
        rounds,
        scoring,
    )

    app.add_typer(account.app, name="account")
    app.add_typer(chain.app, name="chain")
    app.add_typer(asset.app, name="asset")
    app.add_typer(node.app, name="node")
    app.add_typer(governance.app, name="governance")
    app.add_typer(data.app, name="data")
    app.add_typer(market.app, name="market")
    app.add_typer(collective.app, name="collective")
    app.add_typer(federation.app, name="federation")
    app.add_typer(scoring.app, name="scoring")
    chain.register_top_level(app)
    rounds.register(app)
    app.command("demo")(demo.demo)
    from visdm.web._cli import web

    app.command("web")(web)
    app._visdm_groups_registered = True  # type: ignore[attr-defined]
