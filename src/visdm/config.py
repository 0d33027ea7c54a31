"""Typed settings, read from the environment only when asked for.

Nothing here runs at import time: the CLI builds one :class:`Settings` and hands it to the SDK
calls that need it. Every path lives under one data directory, ``$VISDM_HOME`` (default: the
user's data dir, e.g. ``~/.local/share/visdm``), so a test or a demo can point the whole system
at a temporary folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from platformdirs import user_data_path

from visdm.errors import ConfigError

__all__ = ["Settings"]

_DEFAULT_RPC_TIMEOUT_S = 10.0
_DEFAULT_TX_TIMEOUT_S = 60.0


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
