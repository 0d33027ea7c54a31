"""Which selected assets a training round may use, and why each other one is left out: the
keys half of preparing a job's input (:meth:`._training.TrainingWorker._prepare_input`).

The worker's own hooks decide what a key and a licence's time are (a verifier re-executing a
job overrides them), so this takes the worker, not its parts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from visdm.errors import CryptoError, VisdmError
from visdm.proposals import CheckedProposal, asset_refusal, licence_refusal

if TYPE_CHECKING:
    from ._training import TrainingWorker

__all__ = ["NO_KEY_OPENS", "NO_KEY_WRAPPED", "asset_keys"]

log = logging.getLogger("visdm.node.training")

#: the node's words for an asset left out for its key (``leftOut`` in the result document)
NO_KEY_WRAPPED = "no data key was wrapped for this node"
NO_KEY_OPENS = "the data key wrapped for this node does not open"


def asset_keys(
    worker: TrainingWorker, checked: CheckedProposal, spec: Mapping[str, Any]
) -> tuple[dict[int, bytes], dict[int, tuple[str, str]], set[int]]:
    """The data key of each asset this round may use, why each other one is left out (a
    :data:`~visdm.training._card.LEFT_OUT_REASONS` code and the node's words), and which of
    those the proposal's own terms shut out. Left out: it left the round in the tally (its
    owner rejected, or it was withdrawn by then), it was withdrawn since, it is the
    consumer's or this node's own, its licence refuses the consumer or the spec's privacy,
    or no key was wrapped for this node."""
    doc = checked.document
    record = worker.market.proposal(checked.proposal_id)
    left = worker.market.excluded_positions(checked.proposal_id, record.asset_count)
    in_round = {a for i, a in enumerate(doc.asset_ids) if i not in left}
    samples = sum(c for a, c in zip(doc.asset_ids, doc.sample_counts, strict=True) if a in in_round)
    dp = spec.get("dp")
    budget = None if dp is None else (float(dp["target_epsilon"]), float(dp["delta"]))
    now = worker._licence_time(checked.proposal_id)
    keys: dict[int, bytes] = {}
    reasons: dict[int, tuple[str, str]] = {}
    by_terms: set[int] = set()
    for asset_id, public in checked.public.items():
        if asset_id not in in_round:
            reasons[asset_id] = (
                "tally",
                "it left the round in the tally (rejected or withdrawn)",
            )
            continue
        if worker._withdrawn(checked.proposal_id, asset_id):
            reasons[asset_id] = ("withdrawn", "it was withdrawn after the tally")
            continue
        refusal = asset_refusal(
            public,
            consumer=doc.consumer,
            node=record.node,
            now=now,
            dp=budget,
            training_samples=max(samples, 1),
        )
        if refusal is not None:
            owner = str(public.record.owner).lower()
            code = (
                "own-asset"
                if owner in (str(doc.consumer).lower(), str(record.node).lower())
                else "licence"
                if licence_refusal(public, doc.consumer, now) is not None
                else "dp-terms"
            )
            reasons[asset_id] = (code, refusal)
            by_terms.add(asset_id)
            continue
        try:
            keys[asset_id] = worker._data_key(asset_id, public)
        except (VisdmError, CryptoError):
            # none wrapped is checkable in the manifest; a key that does not open is not
            wrapped = any(str(k.recipient) == record.node for k in public.manifest.keys)
            reasons[asset_id] = ("no-key", NO_KEY_OPENS if wrapped else NO_KEY_WRAPPED)
    for asset_id, (_, why) in reasons.items():
        log.warning("proposal %d: asset %d left out: %s", checked.proposal_id, asset_id, why)
    return keys, reasons, by_terms
