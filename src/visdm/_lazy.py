"""Package attributes loaded on first use (PEP 562).

A package lists ``{name: ".submodule"}`` and sets ``__getattr__ = lazy_exports(__name__, ...)``:
importing the package stays cheap, and a heavy dependency (torch, web3) loads only with the
first name that needs it — so the compute node's API and follower never import torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``where[name]`` (relative to ``package``)."""

    def module_getattr(name: str) -> Any:
        if name in where:
            return getattr(import_module(where[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return module_getattr
