"""``visdm market``: search the marketplace index."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="Search the marketplace: what data is offered, by whom, at what quality.")
