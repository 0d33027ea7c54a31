"""A verifier's decision on one result: which results it checks, and what it does after.

:func:`sampled` decides whether a verifier re-executes a result: a keccak256 lottery over the
result's block hash, the verifier's address and the proposal id, below the verifier's
configured share. The node cannot know, when it posts, which verifiers will check it (the block
hash is not known before the block), and every verifier draws independently, so an honest
market with n verifiers each sampling a share s leaves a result unchecked with probability
(1 − s)^n.

:func:`judge` compares what the chain committed with what the verifier recomputed:

* outside the determinism envelope (:data:`~visdm.verify.ENVELOPE_KEYS` differ) a mismatch
  proves nothing: **abstain**;
* every committed field equal: **confirm**;
* otherwise: **challenge**, naming the fields that differ. A result that missed the WTP
  delivered no model, scores or payout (zero on chain): only its accuracy and seed hash count.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_canonical_address
from eth_utils.crypto import keccak

from visdm.errors import InvalidInputError
from visdm.verify._envelope import ENVELOPE_KEYS
from visdm.verify._settle import ResultCommitments

__all__ = ["Finding", "Verdict", "judge", "sampled"]

_ZERO = bytes(32)


class Verdict(enum.Enum):
    CONFIRM = "confirm"
    CHALLENGE = "challenge"
    ABSTAIN = "abstain"


@dataclass(frozen=True, slots=True)
class Finding:
    """The verdict, the fields that differ and one line saying why."""

    verdict: Verdict
    differences: tuple[str, ...]
    reason: str


def sampled(proposal_id: int, verifier: str, share: float, *, block_hash: bytes) -> bool:
    """Whether ``verifier`` re-executes ``proposal_id``'s result, posted in ``block_hash``."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise InvalidInputError(
            f"the share of results to verify must be a number in [0, 1], got {share!r}"
        )
    if len(block_hash) != 32:
        raise InvalidInputError(f"a block hash is 32 bytes, got {len(block_hash)}")
    draw = keccak(block_hash + to_canonical_address(verifier) + proposal_id.to_bytes(32, "big"))
    return int.from_bytes(draw, "big") < int(share * 2**256)


def judge(
    committed: ResultCommitments,
    recomputed: ResultCommitments,
    *,
    theirs: Mapping[str, Any],
    ours: Mapping[str, Any],
) -> Finding:
    """Confirm, challenge or abstain on ``committed`` given the verifier's ``recomputed``
    result; ``theirs`` and ``ours`` are the two determinism envelopes."""
    outside = [k for k in ENVELOPE_KEYS if theirs.get(k) != ours.get(k)]
    if outside:
        return Finding(
            Verdict.ABSTAIN,
            (),
            f"the result was computed outside this verifier's envelope ({', '.join(outside)} "
            "differ): a mismatch would prove nothing",
        )
    delivered = committed.payout_root != _ZERO
    differences = tuple(
        name
        for name in recomputed.differences(committed)
        if delivered or name in {"accuracy_bps", "seed_hash"}
    )
    if not differences:
        return Finding(Verdict.CONFIRM, (), "re-execution reproduced every committed field")
    return Finding(
        Verdict.CHALLENGE,
        differences,
        f"re-execution differs in {', '.join(differences)}",
    )
