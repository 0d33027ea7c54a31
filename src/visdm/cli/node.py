"""``visdm node serve|status``: run a compute node."""

from __future__ import annotations

import logging
import signal
import threading

import typer

from ._common import JsonOption, console, emit, settings, unlock_account

__all__ = ["app"]

app = typer.Typer(help="Run a compute node: follow the chain, attest asset metadata.")


@app.command("serve")
def serve(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Handle what is pending, then exit."),
    confirmations: int = typer.Option(0, "--confirmations", help="Blocks to wait before acting."),
    poll: float = typer.Option(1.0, "--poll", help="Seconds between polls of the chain."),
) -> None:
    """Follow the chain and attest every asset this node may process (Ctrl-C stops)."""
    from visdm.compute import AssetWorker, NodeConfig
    from visdm.session import connect_deployed, open_store

    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = connect_deployed(cfg)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker = AssetWorker(
        conn.client,
        conn.deployment,
        open_store(cfg),
        account,
        NodeConfig(workdir=cfg.node_dir, confirmations=confirmations, poll_interval_s=poll),
    )
    try:
        if once:
            handled = worker.poll()
            console.print(f"handled {handled} event(s); cursor at block {worker.state.cursor()}")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"node {account.address} following chain {conn.client.chain_id}")
        worker.serve(stop.is_set)
    finally:
        worker.close()


@app.command("status")
def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """What this node did with each asset (from its local state; no password needed)."""
    from visdm.compute import NodeState

    cfg = settings(ctx)
    path = cfg.node_dir / "state.sqlite3"
    if not path.exists():
        emit({"cursor": None, "assets": []}, as_json=as_json)
        return
    state = NodeState(path)
    try:
        emit(state.outcomes(), as_json=as_json, title=f"node state (cursor {state.cursor()})")
    finally:
        state.close()
