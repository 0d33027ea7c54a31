"""The ``visdm`` command line: one Typer group per package, each command one SDK call.

:func:`main` is the one place where an error becomes a line on standard error and an exit
status (the table is ``docs/errors.md``): a ``VisdmError`` exits with its class's
``exit_code``; usage errors exit 2 (Typer); what the operating system refuses (a read-only or
full disk, a missing permission) exits :data:`EXIT_OS_ERROR`; Ctrl-C exits
:data:`EXIT_INTERRUPTED`; anything else is a bug and exits :data:`EXIT_INTERNAL`, with the
traceback only when ``$VISDM_DEBUG`` is set.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.text import Text

from visdm.config import Settings
from visdm.errors import VisdmError
from visdm.jsonsafe import one_line

from ._common import err_console

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OS_ERROR",
    "EXIT_USAGE",
    "app",
    "main",
]

#: an unknown option, a missing or malformed argument (Typer's own status)
EXIT_USAGE = 2
#: the operating system refused a file operation: permissions, a read-only or full disk
EXIT_OS_ERROR = 10
#: an exception no one expected: a bug (sysexits' EX_SOFTWARE)
EXIT_INTERNAL = 70
#: Ctrl-C (128 + SIGINT, as a shell reports it)
EXIT_INTERRUPTED = 130
_DEBUG_ENV = "VISDM_DEBUG"

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
    """Entry point: run the CLI; an error becomes one line on stderr and its exit status.

    Usage errors (unknown options, missing arguments) are reported by Typer itself, exit 2.
    """
    try:
        _register_groups()
        app(args=argv, prog_name="visdm")
    except SystemExit as exc:
        # Typer turns Ctrl-C into a silent exit 130: say what happened
        if exc.code == EXIT_INTERRUPTED and _by_ctrl_c(exc):
            _say(_INTERRUPTED)
        raise
    except VisdmError as exc:  # before OSError: some also derive from FileNotFoundError
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail(_INTERRUPTED, EXIT_INTERRUPTED)
    except OSError as exc:
        _fail(os_error_message(exc), EXIT_OS_ERROR)
    except Exception as exc:
        if os.environ.get(_DEBUG_ENV):
            raise
        _fail(
            f"internal error ({type(exc).__name__}: {exc}): this is a bug in visdm; run the "
            f"command again with {_DEBUG_ENV}=1 for the traceback and report it",
            EXIT_INTERNAL,
        )


_INTERRUPTED = (
    "interrupted: the command stopped where it was; a transaction already sent may still be "
    "mined, so check with the matching show or status command before running it again"
)

_OS_HINTS = {
    errno.EACCES: "check the path's permissions (the data directory is --home or $VISDM_HOME)",
    errno.EPERM: "check the path's permissions (the data directory is --home or $VISDM_HOME)",
    errno.EROFS: "the file system is read-only: choose a writable place (the data directory is "
    "--home or $VISDM_HOME)",
    errno.ENOSPC: "free some disk space, then run the command again",
    errno.EDQUOT: "free some disk space (your quota is used up), then run the command again",
    errno.ENOENT: "check that the path exists",
    errno.ENOTDIR: "a part of the path is a file, not a directory: check the path",
    errno.EISDIR: "the path is a directory: name a file",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or close other programs",
}


def os_error_message(exc: OSError) -> str:
    """One line for an ``OSError`` that reached the entry point: what the system refused, on
    which path, and what to do."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = f" on {' and '.join(paths)}" if paths else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or 0, "check the path, the permissions and the free space")
    return f"the system refused a file operation{where}: {reason}; {hint}"


def _by_ctrl_c(exc: BaseException) -> bool:
    """Whether a ``KeyboardInterrupt`` is among the exceptions that led to ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _say(message: str) -> None:
    # the message is data: no rich markup in it, and never more than one line
    err_console.print(Text.assemble(("error:", "bold red"), " ", one_line(message)))


def _fail(message: str, code: int) -> NoReturn:
    _say(message)
    sys.exit(code)
