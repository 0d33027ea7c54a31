"""The first round's outcome per provider, as the demo prints and plots it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from visdm.accounts import UnlockedAccount
from visdm.market.workflow import ClaimReceipt

from ._cast import (
    COPIER,
    COUNTER_OFFERER,
    DELEGATIONS,
    FRIEND,
    LATE_CLAIMER,
    REJECTER,
    TWO_ASSETS,
    DemoConfig,
    Provider,
)

__all__ = ["provider_rows", "role_of", "short_hash", "tokens"]

_TOKEN = 10**18


def tokens(amount: int) -> str:
    """Token units as tokens, to three decimals (``6.52``)."""
    return f"{amount / _TOKEN:.3f}".rstrip("0").rstrip(".")


def short_hash(value: object) -> str:
    text = str(value or "")
    return f"{text[:10]}…{text[-4:]}" if len(text) > 16 else text or "none"


def role_of(name: str, mislabelled: int) -> str:
    """The one part each provider plays in the story (the table's role column)."""
    if name == COPIER:
        return "copier"
    if mislabelled:
        return "noisy"
    for who, role in (
        (REJECTER, "rejects"),
        (COUNTER_OFFERER, "counter-offer"),
        (TWO_ASSETS, "two assets"),
        (FRIEND, "bob's friend"),
        (LATE_CLAIMER, "never claims"),
    ):
        if name == who:
            return role
    return "delegates" if name in DELEGATIONS else "honest"


def provider_rows(  # noqa: PLR0917 - one call site, the demo's whole state
    config: DemoConfig,
    people: Mapping[str, UnlockedAccount],
    assets: Mapping[str, Sequence[int]],
    providers: Mapping[str, Provider],
    result: Mapping[str, Any],
    scores: bytes,
    claims: Mapping[str, Sequence[ClaimReceipt]],
    vote_text: Callable[[str], str],
    *,
    payable: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per provider (samples trained, flags, payout per asset, what it claimed) and one
    per valued sample, from the round's result document and published scores; a sample's row
    says whether its label is truly wrong (the cast knows) beside its value and flags.
    ``payable`` is what the payouts share (the price less the scoring fee): a provider's value
    share is its part of it."""
    samples = json.loads(scores)["samples"]
    payouts = result.get("payouts") or {}
    amounts = {a: int(v) for a, v in (payouts.get("amounts") or {}).items()}
    per_asset = {int(a): int(v) for a, v in (payouts.get("assets") or {}).items()}
    by_address = {people[n].address: n for n in config.cast}
    rows = []
    for name in config.cast:
        address = people[name].address
        mine = [s for s in samples if s["provider"] == address]
        paid = amounts.get(address, 0)
        receipts = claims.get(name, ())
        rows.append(
            {
                "name": name,
                "address": address,
                "role": role_of(name, providers[name].mislabelled),
                "vote": vote_text(name),
                "assets": list(assets[name]),
                "selected": providers[name].images,
                "samples": len(mine),
                "mislabelled": providers[name].mislabelled,
                "flaggedNoisy": sum(1 for s in mine if "noisy" in s["flags"]),
                "flaggedCopied": sum(1 for s in mine if "copied" in s["flags"]),
                "valueShare": paid / payable if payable else 0.0,
                "payoutWei": paid,
                "assetPayouts": [
                    {"assetId": a, "payoutWei": per_asset[a]}
                    for a in assets[name]
                    if per_asset.get(a)
                ],
                # whole wei: an amount is never a fraction of the smallest unit
                "payoutPerSampleWei": paid // len(mine) if mine else 0,
                "claimedWei": sum(r.amount for r in receipts if r.tx_hash is not None),
                "claimTransactions": len({r.tx_hash for r in receipts if r.tx_hash}),
            }
        )
    wrong = {
        (asset_id, index)
        for name in config.cast
        for asset_id, indexes in zip(assets[name], providers[name].wrong, strict=False)
        for index in indexes
    }
    values = [
        {
            "provider": by_address.get(s["provider"], s["provider"]),
            "value": s["value"],
            "flags": s["flags"],
            "mislabelled": (int(s["asset_id"]), int(s["index"])) in wrong,
        }
        for s in samples
    ]
    return rows, values
