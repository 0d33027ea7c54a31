"""Start-up without the BLS12-381 pairing tables nobody here uses.

eth-keyfile (imported by eth-account, which every command that holds a key imports) imports
py_ecc's BLS signatures at module level for EIP-2335 (BLS) keystores, and py_ecc precomputes
pairing tables while importing: about 0.6 s on this project's 2-core machine, a fifth of a CLI
command's start-up, and more in every node, test and tool process. ViSDM's keystores are V3
(secp256k1): the BLS code is never called.

Importing this module puts stand-ins for ``py_ecc.bls`` and ``py_ecc.bls12_381`` in
``sys.modules`` unless the real ones are already loaded. A stand-in holds the two names
eth-keyfile takes at import (``G2ProofOfPossession``, as a proxy that loads the real class on
first use, and ``curve_order``, the curve's published constant) and loads the real module for any
other name, submodule or use, so code that does use BLS gets the real thing, only later.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["BLS12_381_CURVE_ORDER", "is_deferred", "real_module"]

#: the order of BLS12-381's prime subgroup (the same in every py_ecc version; tested against it)
BLS12_381_CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

_DEFERRED = ("py_ecc.bls", "py_ecc.bls12_381")
_lock = threading.RLock()


class _StandIn(types.ModuleType):
    """A module whose unknown attributes come from the real module, loaded on first need."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(real_module(self.__name__), name)


class _DeferredAttribute:
    """Stands for ``module.name`` until used: any attribute or call loads the real one."""

    def __init__(self, module: str, name: str) -> None:
        self._where = (module, name)

    def _real(self) -> Any:
        module, name = self._where
        return getattr(real_module(module), name)

    def __getattr__(self, attribute: str) -> Any:
        if attribute == "_where":
            raise AttributeError(attribute)
        return getattr(self._real(), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<deferred {'.'.join(self._where)}>"


def is_deferred(name: str) -> bool:
    """Whether ``sys.modules[name]`` is still a stand-in."""
    return isinstance(sys.modules.get(name), _StandIn)


def real_module(name: str) -> types.ModuleType:
    """The real module ``name``, importing it now if a stand-in held its place."""
    with _lock:
        current = sys.modules.get(name)
        if not isinstance(current, _StandIn):
            return importlib.import_module(name)
        del sys.modules[name]
        try:
            real = importlib.import_module(name)
        except BaseException:
            sys.modules[name] = current
            raise
        # a submodule imported through the stand-in stays reachable from the real package
        for key, value in vars(current).items():
            if isinstance(value, types.ModuleType) and not hasattr(real, key):
                setattr(real, key, value)
        return real


def _stand_in(name: str, eager: dict[str, Any]) -> _StandIn | None:
    spec = importlib.util.find_spec(name)
    if spec is None:  # py_ecc absent: nothing to defer
        return None
    module = _StandIn(name, f"stand-in for {name} until it is used (visdm._deferred_imports)")
    # submodules (``import py_ecc.bls.hash``) still import from the real package's folder
    if spec.submodule_search_locations is not None:
        module.__path__ = list(spec.submodule_search_locations)
    module.__dict__.update(eager)
    return module


def _install() -> None:
    with _lock:
        if any(name in sys.modules for name in (*_DEFERRED, "eth_keyfile.keyfile")):
            return  # too late, or already done: the real modules stay
        eager: dict[str, dict[str, Any]] = {
            "py_ecc.bls": {
                "G2ProofOfPossession": _DeferredAttribute("py_ecc.bls", "G2ProofOfPossession")
            },
            "py_ecc.bls12_381": {"curve_order": BLS12_381_CURVE_ORDER},
        }
        for name in _DEFERRED:
            module = _stand_in(name, eager[name])
            if module is not None:
                sys.modules[name] = module


_install()
