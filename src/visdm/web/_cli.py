"""``visdm web``: serve the Dapp for the current data directory on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["web"]


def web(
    ctx: typer.Context,
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (0: any free port)."),
    index_url: str | None = typer.Option(
        None,
        "--index-url",
        envvar="VISDM_INDEX_URL",
        help="Index database (default: sqlite in the data directory).",
    ),
    demo: Path | None = typer.Option(
        None,
        "--demo",
        help="Play the demo market in this empty directory first, then serve it.",
    ),
    quick: bool = typer.Option(False, "--quick", help="With --demo: the smaller market."),
) -> None:
    """Serve the web app on 127.0.0.1 and print the URL (with its session token) to open."""
    from visdm.cli._common import console, settings

    from . import LaunchInfo, serve

    def ready(info: LaunchInfo) -> None:
        home = demo if demo is not None else settings(ctx).home
        console.print("ViSDM web app for", str(home), markup=False)
        console.print(f"open {info.url}", markup=False, soft_wrap=True)
        console.print("(the token in the URL starts a session; Ctrl-C stops the app)")

    try:
        if demo is not None:
            from ._demo import play_and_serve

            console.print(f"playing the demo market in {demo} …", markup=False)
            play_and_serve(demo, quick=quick, port=port, on_ready=ready)
            return
        serve(settings(ctx), port=port, index_url=index_url, on_ready=ready)
    except KeyboardInterrupt:  # Ctrl-C is how the app ends, not a failure
        console.print("stopped", markup=False)
