"""Sentences for the errors of ``Federation`` and of the registry's federation records, in the
form :mod:`visdm.chain._explain` uses; kept apart so that table stays readable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["federation_sentences"]


def federation_sentences() -> dict[str, Callable[[Mapping[str, Any]], str]]:
    """Error name → sentence."""
    return {
        "StakeholderRegistryInvalidFederation": lambda a: (
            f"federation {a['federation']} refused: {a['reason']}"
        ),
        "StakeholderRegistryNotFederationMember": lambda a: (
            f"{a['node']} is not a member federation {a['federation']} names: only the nodes "
            "its coordinator registered may join it"
        ),
        "FederationNotCoordinator": lambda a: (
            f"{a['caller']} is not this federation's coordinator: only it sends the "
            "federation's results, fees and bond"
        ),
        "FederationInvalidMembers": lambda a: (
            "a federation was refused: it needs a coordinator and one to eight member nodes"
        ),
        "FederationNotOurs": lambda a: (
            f"proposal {a['proposalId']} is not this federation's: the proposal names another node"
        ),
        "FederationBadFees": lambda a: (
            f"the fees of proposal {a['proposalId']} were refused: {a['reason']}"
        ),
        "FederationFeesNotSet": lambda a: (
            f"proposal {a['proposalId']}'s member fees are not set: the coordinator sets them "
            "(`setFees`) while it trains, before its result"
        ),
        "FederationNotReleased": lambda a: (
            f"proposal {a['proposalId']}'s training cost is not released to the federation: "
            "its result is not settled yet, was overturned, or its fees were collected already"
        ),
        "FederationNotMember": lambda a: (
            f"{a['caller']} is not a member of this federation: only its members bind "
            "SuperNode keys"
        ),
        "FederationBadKey": lambda a: (
            f"a SuperNode public key of {a['length']} bytes was refused: give the OpenSSH public "
            "key, 1 to 512 bytes"
        ),
        "FederationNothingOwed": lambda a: (
            f"the federation owes {a['member']} nothing: `collect` a released round first"
        ),
    }
