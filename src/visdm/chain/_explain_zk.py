"""Sentences for the errors of ``ZkAccuracyCheck``, in the form :mod:`visdm.chain._explain`
uses; kept apart so that table stays readable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["zk_sentences"]

_STATUS = ("none", "pending", "accepted", "rejected", "expired")


def _status(value: Any) -> str:
    return _STATUS[value] if isinstance(value, int) and 0 <= value < len(_STATUS) else str(value)


def zk_sentences() -> dict[str, Callable[[Mapping[str, Any]], str]]:
    """Error name → sentence."""
    return {
        "ZkAccuracyCheckBadInput": lambda a: (
            f"the accuracy check refused its input ({a['what']}): see its NatSpec for the "
            "claim's fields and the proof's layout"
        ),
        "ZkAccuracyCheckWrongStatus": lambda a: (
            f"accuracy claim {a['claimId']} is {_status(a['status'])}: a claim is committed "
            "once, and proven or expired only while pending"
        ),
        "ZkAccuracyCheckNotNode": lambda a: (
            f"{a['caller']} did not commit this accuracy claim: only its node sends the proof"
        ),
        "ZkAccuracyCheckNotDrawnYet": lambda a: (
            f"accuracy claim {a['claimId']} draws its samples from block {a['drawBlock']}, "
            "whose hash is not readable yet (or no longer, 256 blocks later): wait a block, or "
            "expire the claim"
        ),
        "ZkAccuracyCheckInvalidProof": lambda a: (
            f"the proof for accuracy claim {a['claimId']} does not verify: prove the drawn "
            "samples with the committed circuit, without changing its public inputs"
        ),
        "ZkAccuracyCheckWrongCircuit": lambda a: (
            f"the proof comes with verifying-key artifact 0x{bytes(a['given']).hex()}, the "
            f"claim committed 0x{bytes(a['expected']).hex()}: prove with the committed circuit"
        ),
        "ZkAccuracyCheckNotDrawnSample": lambda a: (
            f"proven sample {a['position']} is not the committed sample at drawn position "
            f"{a['index']}: prove exactly the drawn samples, in draw order, with their labels"
        ),
        "ZkAccuracyCheckNoOpenResult": lambda a: (
            f"proposal {a['claimId']} has no WTP-met result in its challenge window: an "
            "accuracy claim is committed after submitResult and before the window closes"
        ),
        "ZkAccuracyCheckNotTheResult": lambda a: (
            f"the claim's {a['field']} is not the one proposal {a['claimId']}'s result "
            "committed: claim the submitted model hash and accuracy"
        ),
    }
