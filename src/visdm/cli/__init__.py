"""The ``visdm`` command line: one Typer group per package, each command one SDK call."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from visdm.config import Settings
from visdm.errors import VisdmError

from ._common import err_console

__all__ = ["app", "main"]

app = typer.Typer(
    name="visdm",
    help="ViSDM: sell computer-vision training data without handing it over.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None, "--home", envvar="VISDM_HOME", help="Data directory (default: the user data dir)."
    ),
    rpc_url: str | None = typer.Option(
        None, "--rpc-url", envvar="VISDM_RPC_URL", help="JSON-RPC endpoint of the chain."
    ),
    account: str | None = typer.Option(
        None, "--account", envvar="VISDM_ACCOUNT", help="Account name or address to act as."
    ),
) -> None:
    ctx.obj = Settings.from_env().with_overrides(home=home, rpc_url=rpc_url, account=account)


def _register_groups() -> None:
    # Imported here so that `import visdm.cli` stays cheap and free of side effects.
    from . import groups

    groups.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; a ``VisdmError`` becomes one line on stderr and its exit code.

    Usage errors (unknown options, missing arguments) are reported by Typer itself, exit 2.
    """
    _register_groups()
    try:
        app(args=argv, prog_name="visdm")
    except VisdmError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(exc.exit_code)
