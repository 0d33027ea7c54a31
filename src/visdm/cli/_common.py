"""What every command group shares: the settings object, output in text or JSON, secrets.

Commands stay thin: parse arguments, call one SDK function, print its result. Errors are not
handled here but in :func:`visdm.cli.main`, the one place that turns a ``VisdmError`` into a
one-line message and an exit status.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from visdm.accounts import UnlockedAccount
from visdm.config import Settings
from visdm.errors import InvalidInputError, VisdmError

from ._json import json_view

__all__ = [
    "CommandInterruptedError",
    "JsonOption",
    "console",
    "emit",
    "err_console",
    "print_wide",
    "public_account",
    "read_password",
    "settings",
    "unlock_account",
]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

#: every command takes ``--json``
JsonOption = typer.Option(
    False,
    "--json",
    help="Print JSON instead of text: camelCase keys, token amounts as strings of wei in keys "
    "ending in Wei, the transactions sent.",
)

_PASSWORD_ENV = "VISDM_PASSWORD"  # noqa: S105 - the variable's name, not a password


class CommandInterruptedError(VisdmError):
    """Ctrl-C stopped a command that says itself what it kept and what it undid."""

    exit_code = 130


def settings(ctx: typer.Context) -> Settings:
    """The settings built once by the root callback."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):  # only when a sub-app runs without the root app
        obj = Settings.from_env()
        ctx.find_root().obj = obj
    return obj


def read_password(*, prompt: str = "Password", confirm: bool = False) -> str:
    """The keystore password: ``$VISDM_PASSWORD`` if set, else a hidden prompt. Never a flag."""
    from_env = os.environ.get(_PASSWORD_ENV)
    if from_env is not None:
        if from_env == "":
            raise InvalidInputError(f"{_PASSWORD_ENV} is set but empty: set a password or unset it")
        return from_env
    try:
        password = getpass.getpass(f"{prompt}: ")
        if confirm and getpass.getpass(f"{prompt} (again): ") != password:
            raise InvalidInputError("the two passwords differ: nothing was written")
    except EOFError:
        raise InvalidInputError(
            f"no password: standard input is closed; set {_PASSWORD_ENV} for scripts"
        ) from None
    if not password:
        raise InvalidInputError("the password must not be empty")
    return password


def unlock_account(cfg: Settings) -> UnlockedAccount:
    """The current account, unlocked with the password from the environment or a prompt."""
    from visdm.session import current_account, unlock

    info = current_account(cfg)  # fail on a missing account before asking for a password
    return unlock(cfg, read_password(prompt=f"Password for {info.name}"))


def public_account(cfg: Settings) -> tuple[str, bytes]:
    """Address and X25519 public key of the current account, read without its password."""
    from visdm.session import current_account

    info = current_account(cfg)
    key = bytes.fromhex(info.x25519_public.removeprefix("0x")) if info.x25519_public else b""
    return info.address, key


def emit(value: Any, *, as_json: bool, title: str | None = None) -> None:
    """Print a result: JSON with ``--json`` (in the language of :mod:`visdm.cli._json`), else
    a key/value table (or rows for a list) with the same names."""
    data = json_view(value)
    if as_json:
        console.print_json(json.dumps(data))
        return
    if isinstance(data, Mapping):
        # plain "key  value" lines: never truncated, easy to grep
        if title:
            console.print(title, style="bold")
        width = max((len(str(k)) for k in data), default=0)
        for key, val in data.items():
            console.print(f"{str(key).ljust(width)}  {_cell(val)}", markup=False)
    elif isinstance(data, Sequence) and not isinstance(data, str):
        rows = [r for r in data if isinstance(r, Mapping)]
        if not rows:
            console.print(title + ": none" if title else "none")
            return
        table = Table(title=title)
        for key in rows[0]:
            table.add_column(str(key), overflow="fold")
        for row in rows:
            table.add_row(*(_cell(v) for v in row.values()))
        print_wide(table)
    else:
        console.print(str(data))


def print_wide(renderable: Any) -> None:
    """Print a table; outside a terminal rich assumes 80 columns, which would cut addresses."""
    if console.is_terminal:
        console.print(renderable)
    else:
        Console(file=console.file, width=240, highlight=False).print(renderable)


def _cell(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, list) and all(isinstance(v, Mapping) and "txHash" in v for v in value):
        return ", ".join(str(v["txHash"]) for v in value)  # transactions: their hashes
    if isinstance(value, Mapping | list):
        return json.dumps(value)
    return "" if value is None else str(value)
