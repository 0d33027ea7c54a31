"""How the workflows' views show votes and maps keyed by data, in the one JSON language of
``visdm … --json`` (:mod:`visdm.cli._json`): amounts in wei as decimal strings under keys
ending in ``Wei``, and rows instead of maps keyed by addresses or asset ids."""

from __future__ import annotations

from typing import Any

from visdm.chain.contracts import REJECT_ASK

__all__ = ["ask_view", "rows"]


def ask_view(ask: int) -> dict[str, Any]:
    """A vote: ``accept`` (an ask of 0), ``ask`` with its price, or ``reject`` (no price is
    enough, so no ``askWei``)."""
    if ask == REJECT_ASK:
        return {"vote": "reject", "askWei": None}
    return {"vote": "accept" if ask == 0 else "ask", "askWei": str(ask)}


def rows(mapping: object, key: str, value: str) -> list[dict[str, Any]] | None:
    """``{"3": "100"}`` → ``[{key: 3, value: "100"}]`` (``None`` for anything but a map).

    The maps come from a node's result document: an asset id that is not a number is shown
    as it is rather than refused, since the view only reports what the node published.
    """
    if not isinstance(mapping, dict):
        return None
    ids = key == "assetId"
    return [{key: _id(k) if ids else k, value: v} for k, v in mapping.items()]


def _id(key: object) -> object:
    text = str(key)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else key
