"""Play the demo market, then keep it open in the web app until Ctrl-C (``visdm web --demo``;
the ``visdm demo --serve`` flag calls the same function).

The demo stops its chain when it ends; its state stays in the data directory, so the chain is
started again from that state and the web app serves the finished market: proposals with their
votes, tallies, results and payouts, the search index, the nodes.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visdm.config import Settings

from . import LaunchInfo, serve

__all__ = ["play_and_serve"]


def play_and_serve(
    home: Path,
    *,
    quick: bool = False,
    port: int = 0,
    progress: Any = None,
    on_played: Callable[[Any], None] | None = None,
    on_ready: Callable[[LaunchInfo], None] | None = None,
) -> None:
    """Play the demo in ``home`` (empty or absent), restart its chain from the saved state,
    index it, and serve the web app on 127.0.0.1 until interrupted; the chain is stopped on
    the way out (its state is kept)."""
    from visdm.chain.anvil import chain_down, chain_up
    from visdm.demo import run_demo
    from visdm.index import sync_index

    report = run_demo(home, quick=quick, progress=progress)
    if on_played is not None:
        on_played(report)
    settings = Settings(home=home)
    chain_up(settings.chain_dir)
    # uvicorn re-raises the signal that stopped it: make SIGTERM an exception, so that the
    # chain below is stopped (and its state saved) however the server is stopped
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        sync_index(settings)
        serve(settings, port=port, on_ready=on_ready)
    finally:
        signal.signal(signal.SIGTERM, previous)
        chain_down(settings.chain_dir)


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
