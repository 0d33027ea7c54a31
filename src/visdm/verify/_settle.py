"""What a training job's output commits to on chain, computed the one way every node computes it.

The node that trained a round and any node that re-executes it (DESIGN §7) turn the sandboxed
job's output directory into the same three hashes: the model's keccak256, the keccak256 of the
canonical per-sample scores document, and the payout tree's root. Both call :func:`settle`, so
the publisher and a verifier cannot drift apart; a verifier compares the
:class:`ResultCommitments` it gets with the ones on chain field by field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from visdm.errors import InvalidInputError
from visdm.types import Address
from visdm.valuation import Payout, PayoutAsset, compute_payout

__all__ = ["ResultCommitments", "SettledAsset", "Settlement", "settle", "settle_output"]


@dataclass(frozen=True, slots=True)
class SettledAsset:
    """One asset of a proposal's selection: its position there and its owner."""

    position: int
    owner: Address


@dataclass(frozen=True, slots=True, eq=False)
class Settlement:
    """The canonical scores document (its bytes and hash) and the payout it yields."""

    scores: bytes
    scores_hash: bytes
    payout: Payout


@dataclass(frozen=True, slots=True)
class ResultCommitments:
    """The re-executable part of a result: every field is 32 bytes except the accuracy."""

    accuracy_bps: int
    model_hash: bytes
    scores_hash: bytes
    payout_root: bytes
    seed_hash: bytes
    spec_hash: bytes

    def differences(self, other: ResultCommitments) -> list[str]:
        """The names of the fields in which ``other`` differs from this one."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def settle(
    valuation: Mapping[str, Any],
    *,
    proposal_id: int,
    amount: int,
    sample_assets: Mapping[str, tuple[int, int]],
    assets: Mapping[int, SettledAsset],
) -> Settlement:
    """The scores document and payout of a round from the job's ``valuation.json``.

    ``sample_assets`` maps each selected sample id (``0x`` hex) to its ``(asset id, index in
    the asset)``; ``assets`` maps each selected asset id to its position and owner; ``amount``
    is what the payout shares (the price less the scoring fee).
    """
    try:
        rows = [
            {
                **row,
                "asset_id": sample_assets[row["sample_id"]][0],
                "index": sample_assets[row["sample_id"]][1],
            }
            for row in valuation["samples"]
        ]
        value: dict[int, float] = {}
        count: dict[int, int] = {}
        for row in rows:
            asset_id = int(row["asset_id"])
            value[asset_id] = value.get(asset_id, 0.0) + float(row["value"])
            count[asset_id] = count.get(asset_id, 0) + 1
        payout_assets = [
            PayoutAsset(
                position=assets[a].position,
                asset_id=a,
                owner=assets[a].owner,
                value=value[a],
                samples=count[a],
            )
            for a in sorted(value, key=lambda a: assets[a].position)
        ]
        payout = compute_payout(
            amount,
            valuation["providerValues"],
            sample_counts={k: int(v) for k, v in valuation["sampleCounts"].items()},
            assets=payout_assets,
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(
            f"the job's valuation does not fit the proposal's selection ({exc!r}): "
            "re-run the job on the selection the chain committed"
        ) from None
    scores = json.dumps(
        {"version": 1, "proposalId": proposal_id, "samples": rows}, sort_keys=True
    ).encode()
    return Settlement(scores=scores, scores_hash=bytes(keccak(scores)), payout=payout)


def settle_output(
    out_dir: Path,
    outcome: Mapping[str, Any],
    *,
    proposal_id: int,
    amount: int,
    sample_assets: Mapping[str, tuple[int, int]],
    assets: Mapping[int, SettledAsset],
) -> tuple[ResultCommitments, Settlement]:
    """The commitments of a job's output directory and return value (``outcome``)."""
    try:
        valuation = json.loads((out_dir / "valuation.json").read_bytes())
        model = (out_dir / "model.safetensors").read_bytes()
        seed_hash = bytes.fromhex(str(outcome["seed_hash"])[2:])
        spec_hash = bytes.fromhex(str(outcome["spec_hash"])[2:])
        accuracy = int(outcome["accuracy_bps"])
    except (OSError, KeyError, ValueError) as exc:
        raise InvalidInputError(
            f"{out_dir} is not a finished training job's output ({exc!r}): run the job first"
        ) from None
    settlement = settle(
        valuation,
        proposal_id=proposal_id,
        amount=amount,
        sample_assets=sample_assets,
        assets=assets,
    )
    commitments = ResultCommitments(
        accuracy_bps=accuracy,
        model_hash=bytes(keccak(model)),
        scores_hash=settlement.scores_hash,
        payout_root=settlement.payout.root,
        seed_hash=seed_hash,
        spec_hash=spec_hash,
    )
    return commitments, settlement
