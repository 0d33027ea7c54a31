"""``visdm account new|import|list|show|export-public``: encrypted keystores for stakeholders.

Each command is one call into :mod:`visdm.accounts`. Passwords come from ``$VISDM_PASSWORD`` or
a hidden prompt, and an imported private key from ``$VISDM_PRIVATE_KEY`` or a hidden prompt:
a secret is never a command-line flag, where it would land in shell history and ``ps``.
"""

from __future__ import annotations

import getpass
import os

import typer
from rich.markup import escape

from visdm.accounts import (
    DEFAULT_SCRYPT_N,
    account_info,
    create_account,
    export_public,
    import_account,
    scan_accounts,
)
from visdm.errors import InvalidInputError

from ._common import JsonOption, emit, err_console, read_password, settings

__all__ = ["app"]

app = typer.Typer(
    help="Create and inspect accounts (encrypted Ethereum keystores with an X25519 key).",
    no_args_is_help=True,
)

_PRIVATE_KEY_ENV = "VISDM_PRIVATE_KEY"

ScryptNOption = typer.Option(
    DEFAULT_SCRYPT_N,
    "--scrypt-n",
    help="scrypt cost of the keystore (power of two). Lower it only for tests and throw-away "
    "demo accounts.",
    show_default=True,
)


@app.command("new")
def new(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Account name: letters, digits, '_', '.', '-'."),
    scrypt_n: int = ScryptNOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a new random account, encrypted with a password (asked twice)."""
    password = read_password(prompt=f"New password for {name}", confirm=True)
    info = create_account(settings(ctx).keystore_dir, name, password, scrypt_n=scrypt_n)
    emit(info, as_json=as_json, title="account created")


@app.command("import")
def import_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Account name: letters, digits, '_', '.', '-'."),
    scrypt_n: int = ScryptNOption,
    as_json: bool = JsonOption,
) -> None:
    """Store an existing private key (from $VISDM_PRIVATE_KEY or a hidden prompt)."""
    private_key = _read_private_key()
    password = read_password(prompt=f"New password for {name}", confirm=True)
    info = import_account(
        settings(ctx).keystore_dir, name, private_key, password, scrypt_n=scrypt_n
    )
    emit(info, as_json=as_json, title="account imported")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List the accounts in the keystore directory (no password needed); a keystore that
    cannot be read is named on standard error, and the others are still listed."""
    accounts, unusable = scan_accounts(settings(ctx).keystore_dir)
    emit(accounts, as_json=as_json, title="accounts")
    for bad in unusable:
        err_console.print(f"[yellow]warning:[/] {escape(bad.reason)}")


@app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Account name or address."),
    as_json: bool = JsonOption,
) -> None:
    """Show one account's address, encryption key and keystore file (no password needed)."""
    emit(account_info(settings(ctx).keystore_dir, name), as_json=as_json, title="account")


@app.command("export-public")
def export_public_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Account name or address."),
    as_json: bool = JsonOption,
) -> None:
    """Print the address and X25519 public key to publish, checked against the secret."""
    password = read_password(prompt=f"Password for {name}")
    emit(export_public(settings(ctx).keystore_dir, name, password), as_json=as_json)


def _read_private_key() -> str:
    from_env = os.environ.get(_PRIVATE_KEY_ENV)
    if from_env is not None:
        if not from_env.strip():
            raise InvalidInputError(f"{_PRIVATE_KEY_ENV} is set but empty")
        return from_env
    try:
        return getpass.getpass("Private key (hex): ")
    except EOFError:
        raise InvalidInputError(
            f"no private key: standard input is closed; set {_PRIVATE_KEY_ENV} for scripts"
        ) from None
