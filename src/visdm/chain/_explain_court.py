"""Sentences for the errors of ``ResultCourt`` and of the market's challenge window, in the
form :mod:`visdm.chain._explain` uses; kept apart so that table stays readable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["court_sentences"]

_PROOF = ("none", "pending", "accepted", "rejected", "expired")


def _proof(value: Any) -> str:
    return _PROOF[value] if isinstance(value, int) and 0 <= value < len(_PROOF) else str(value)


def court_sentences(
    tokens: Callable[[Any], str], when: Callable[[Any], str]
) -> dict[str, Callable[[Mapping[str, Any]], str]]:
    """Error name → sentence; ``tokens`` and ``when`` format amounts and times."""
    return {
        "TrainingMarketNotCourt": lambda a: (
            f"{a['account']} is not the market's result court: only the court settles results"
        ),
        "TrainingMarketChallengeWindow": lambda a: (
            f"the result of proposal {a['proposalId']} is not settled yet (its challenge window "
            f"ends {when(a['opensAt'])}, or a challenge is open): release it with `ResultCourt."
            "release` after the window, or wait for the committee's ruling"
        ),
        "ResultCourtNotGovernance": lambda a: (
            f"{a['account']} lacks the governance role: ask governance to change the court"
        ),
        "ResultCourtNotMarket": lambda a: (
            f"{a['account']} is not the market: only the market locks bonds, at startTraining"
        ),
        "ResultCourtInvalidParameters": lambda a: f"the court refused: {a['reason']}",
        "ResultCourtNotBondedNode": lambda a: (
            f"{a['account']} is not an active admitted compute node (or deposited nothing): "
            "governance admits nodes, and a deposit must be positive"
        ),
        "ResultCourtBondTooLow": lambda a: (
            f"node {a['node']} has {tokens(a['free'])} of free stake, {tokens(a['required'])} "
            "are needed: deposit more with the court before taking a job or a challenge"
        ),
        "ResultCourtNotChallengeable": lambda a: (
            f"proposal {a['proposalId']} has no result in its challenge window: results can be "
            "confirmed or challenged only between submitResult and the window's end"
        ),
        "ResultCourtOwnResult": lambda a: (
            f"a node cannot confirm or challenge its own result (proposal {a['proposalId']}): "
            "another admitted node verifies it"
        ),
        "ResultCourtAlreadyChallenged": lambda a: (
            f"the result of proposal {a['proposalId']} is challenged: its committee decides"
        ),
        "ResultCourtWindowOpen": lambda a: (
            f"the challenge window of proposal {a['proposalId']} is open until "
            f"{when(a['closesAt'])}: release it after that"
        ),
        "ResultCourtJobOpen": lambda a: (
            f"proposal {a['proposalId']} has no submitted or ended job yet: nothing to release"
        ),
        "ResultCourtNotMember": lambda a: (
            f"{a['account']} has no unused seat on the committee of proposal {a['proposalId']}: "
            "only drawn members vote, once each"
        ),
        "ResultCourtVotingClosed": lambda a: (
            f"the committee vote on proposal {a['proposalId']} is closed: resolve it instead"
        ),
        "ResultCourtVotingOpen": lambda a: (
            f"the committee of proposal {a['proposalId']} is still voting: resolve after every "
            "member voted or the ruling deadline passed"
        ),
        "ResultCourtUndecided": lambda a: (
            f"the committee of proposal {a['proposalId']} is split ({a['upheld']} upheld, "
            f"{a['overturned']} overturned): governance decides after the ruling deadline"
        ),
        "ResultCourtProofNotAccepted": lambda a: (
            f"the result of proposal {a['proposalId']} waits for its accuracy proof (claim "
            f"{_proof(a['status'])}): it counts once the node's proof is accepted; a rejected "
            "or expired one is overturned with `ResultCourt.overturnUnproven`"
        ),
        "ResultCourtProofNotFailed": lambda a: (
            f"the accuracy proof of proposal {a['proposalId']} has not failed (claim "
            f"{_proof(a['status'])}, window ends {when(a['windowEnd'])}): a result is "
            "overturned only for a rejected or expired claim, or none by the window's end"
        ),
        "ResultCourtNoProofRequired": lambda a: (
            f"proposal {a['proposalId']} has no held WTP-met result whose job needs an "
            "accuracy proof: nothing to overturn for a missing proof"
        ),
        "ResultCourtNoChallenge": lambda a: (
            f"proposal {a['proposalId']} has no open challenge: "
            "challenge it within its window first"
        ),
    }
