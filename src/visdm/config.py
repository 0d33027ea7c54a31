"""Typed settings, read from the environment only when asked for.

Nothing here runs at import time: the CLI builds one :class:`Settings` and hands it to the SDK
calls that need it. Every path lives under one data directory, ``$VISDM_HOME`` (default: the
user's data dir, e.g. ``~/.local/share/visdm``), so a test or a demo can point the whole system
at a temporary folder.

A data directory that can never hold files — inside ``/proc``, ``/sys`` or ``/dev`` (virtual
file systems), an existing file, a path with a NUL — is refused when the settings are built.
The chain's URL is checked when a command first needs the chain (:func:`check_rpc_url`), so a
bad ``$VISDM_RPC_URL`` does not stop commands that never use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from platformdirs import user_data_path

from visdm.errors import ConfigError

__all__ = ["Settings", "check_rpc_url"]

_DEFAULT_RPC_TIMEOUT_S = 10.0
_DEFAULT_TX_TIMEOUT_S = 60.0
#: file systems that only mirror the kernel: nothing can be stored there
_VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
#: ... except this, the usual tmpfs for shared memory
_REAL_UNDER_VIRTUAL = (Path("/dev/shm"),)  # noqa: S108 - a place we refuse nothing in
_HOME_HINT = "choose a directory on disk with --home or VISDM_HOME"
_RPC_HINT = "pass the node's JSON-RPC URL, e.g. --rpc-url http://127.0.0.1:8545 (or VISDM_RPC_URL)"


@dataclass(frozen=True, slots=True)
class Settings:
    """Where ViSDM keeps its state and how it reaches the chain.

    ``rpc_url`` is ``None`` until known: commands then use the local chain started by
    ``visdm chain up``.
    """

    home: Path
    rpc_url: str | None = None
    rpc_timeout_s: float = _DEFAULT_RPC_TIMEOUT_S
    tx_timeout_s: float = _DEFAULT_TX_TIMEOUT_S
    account: str | None = None
    #: where blobs live: ``None`` for the local blockstore under ``home``, or the URL of a Kubo
    #: RPC API (``http://127.0.0.1:5001``)
    store_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", _checked_home(self.home))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from ``VISDM_*`` environment variables."""
        env = dict(os.environ if environ is None else environ)
        home_text = env.get("VISDM_HOME")
        home = Path(home_text).expanduser() if home_text else user_data_path("visdm")
        return cls(
            home=home,
            rpc_url=env.get("VISDM_RPC_URL") or None,
            rpc_timeout_s=_float(env, "VISDM_RPC_TIMEOUT", _DEFAULT_RPC_TIMEOUT_S),
            tx_timeout_s=_float(env, "VISDM_TX_TIMEOUT", _DEFAULT_TX_TIMEOUT_S),
            account=env.get("VISDM_ACCOUNT") or None,
            store_url=env.get("VISDM_STORE_URL") or None,
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

    # --- paths under the data directory --------------------------------------------------------
    @property
    def keystore_dir(self) -> Path:
        return self.home / "keystore"

    @property
    def chain_dir(self) -> Path:
        return self.home / "chain"

    @property
    def deployments_dir(self) -> Path:
        return self.home / "deployments"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def provider_dir(self) -> Path:
        """What this directory's provider keeps: the record of the assets it added."""
        return self.home / "provider"

    @property
    def node_dir(self) -> Path:
        """The compute node's private working directory (state, cursor, scratch space)."""
        return self.home / "node"


def _float(env: dict[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{name}={text!r} must be positive")
    return value


def _checked_home(home: object) -> Path:
    """``home`` as a path, or a :class:`ConfigError` when it can never hold ViSDM's files."""
    if not isinstance(home, str | os.PathLike):
        raise ConfigError(f"the data directory must be a path, got {type(home).__name__}")
    path = Path(home)
    if "\0" in str(path):
        raise ConfigError(f"the data directory {str(path)!r} contains a NUL byte: {_HOME_HINT}")
    resolved = Path(os.path.realpath(path))  # through symbolic links, as the kernel will
    virtual = [root for root in _VIRTUAL_ROOTS if resolved.is_relative_to(root)]
    if virtual and not any(resolved.is_relative_to(real) for real in _REAL_UNDER_VIRTUAL):
        raise ConfigError(
            f"the data directory {path} is inside {virtual[0]}, a virtual file system that "
            f"cannot hold files: {_HOME_HINT}"
        )
    if path.exists() and not path.is_dir():
        raise ConfigError(f"the data directory {path} is a file, not a directory: {_HOME_HINT}")
    return path


def check_rpc_url(url: str) -> str:
    """``url`` if it can be a JSON-RPC endpoint (``http``/``https`` with a host), else a
    :class:`ConfigError` saying what is wrong with it and what to pass instead."""
    try:
        parts = urlsplit(url)
        port = parts.port  # parsed lazily: a bad port raises only here
    except ValueError as exc:
        raise ConfigError(f"the chain URL {url!r} cannot be parsed ({exc}): {_RPC_HINT}") from None
    scheme = parts.scheme.lower()
    if scheme in ("ws", "wss"):
        raise ConfigError(
            f"the chain URL {url!r} is a websocket endpoint, which ViSDM does not use: {_RPC_HINT}"
        )
    if scheme not in ("http", "https"):
        what = f"a {scheme}:// URL" if "://" in url else "not a URL (http:// in front is missing)"
        raise ConfigError(f"the chain URL {url!r} is {what}: {_RPC_HINT}")
    if not parts.hostname:
        raise ConfigError(f"the chain URL {url!r} names no host: {_RPC_HINT}")
    if port == 0:
        raise ConfigError(f"the chain URL {url!r} names port 0: {_RPC_HINT}")
    return url
