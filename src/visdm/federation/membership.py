"""Forming a federation on chain and deciding which member trains which selected asset.

A coordinator deploys a ``Federation`` contract naming its members and registers it; each
member checks what it is asked to join (the shipped code, this market, itself listed, the
coordinator the registry recorded) before it joins. The market takes the federation as a
proposal's node once every member joined (docs/federation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from visdm.chain._federation import FederationContract, FederationRecord, deploy_federation
from visdm.chain.client import ChainClient, TxResult
from visdm.chain.contracts import ComputeNodeRecord
from visdm.chain.deployment import Deployment
from visdm.errors import InvalidInputError, NodeNotInFederationError
from visdm.proposals import PublicAsset
from visdm.proposals._feasibility import coverage_refusal
from visdm.types import Address

__all__ = [
    "FederationView",
    "assign_assets",
    "form_federation",
    "join_federation",
    "load_federation",
]


@dataclass(frozen=True, slots=True)
class FederationView:
    """A registered federation with its members' node records and region names."""

    contract: FederationContract
    record: FederationRecord
    coordinator: ComputeNodeRecord
    members: tuple[ComputeNodeRecord, ...]
    region_names: tuple[str, ...]

    def region_of(self, member: ComputeNodeRecord) -> str:
        return self.region_names[member.region]


def form_federation(
    client: ChainClient,
    deployment: Deployment,
    coordinator: LocalAccount,
    members: Sequence[str],
) -> FederationContract:
    """Deploy and register a federation of ``members`` coordinated by ``coordinator`` (an
    active node); it takes jobs once every member joined."""
    checked = [_address(m, "member") for m in members]
    if len(set(checked)) != len(checked) or not 0 < len(checked) <= 8:
        raise InvalidInputError(
            f"a federation names one to eight distinct member nodes, got {len(checked)}"
        )
    registry = deployment.stakeholder_registry(client)
    for member in checked:
        if not registry.compute_node(member).active:
            raise InvalidInputError(
                f"{member} is not an active compute node: it cannot be a member"
            )
    market = deployment.address_of("TrainingMarket")
    fed, _ = deploy_federation(client, coordinator, market, checked)
    registry.register_federation(coordinator, fed.address, checked)
    return fed


def join_federation(
    client: ChainClient, deployment: Deployment, member: LocalAccount, federation: str
) -> TxResult:
    """The member's side: check what it is asked to join, then join. Refuses (naming why) a
    contract that is not the shipped ``Federation``, one for another market, one that does not
    list this node, or one whose coordinator is not the node that registered it."""
    address = _address(federation, "federation")
    registry = deployment.stakeholder_registry(client)
    record = registry.federation_of(address)
    if not record.registered:
        raise NodeNotInFederationError(f"{address} is not a registered federation")
    contract = FederationContract(client, address)
    if not contract.runs_shipped_code():
        raise NodeNotInFederationError(
            f"{address} does not run the shipped Federation code: not joining a contract that "
            "could keep the members' fees"
        )
    if contract.market() != deployment.address_of("TrainingMarket"):
        raise NodeNotInFederationError(f"federation {address} trains for another market")
    me = to_checksum_address(member.address)
    if (
        me not in [str(m) for m in contract.members()]
        or tuple(contract.members()) != record.members
    ):
        raise NodeNotInFederationError(
            f"federation {address} does not list {me} as the registry does: not joining"
        )
    if contract.coordinator() != record.coordinator:
        raise NodeNotInFederationError(
            f"federation {address}'s coordinator differs from the node that registered it"
        )
    return registry.join_federation(member, address)


def load_federation(client: ChainClient, deployment: Deployment, federation: str) -> FederationView:
    """A registered federation, its coordinator's and members' records and the region names."""
    address = _address(federation, "federation")
    registry = deployment.stakeholder_registry(client)
    record = registry.federation_of(address)
    if record.coordinator is None:
        raise NodeNotInFederationError(f"{address} is not a registered federation")
    return FederationView(
        contract=FederationContract(client, address),
        record=record,
        coordinator=registry.compute_node(record.coordinator),
        members=tuple(registry.compute_node(m) for m in record.members),
        region_names=tuple(registry.regions()),
    )


def assign_assets(
    public: Mapping[int, PublicAsset], members: Sequence[ComputeNodeRecord]
) -> dict[Address, list[int]]:
    """Which member trains which selected asset: the first member (in the federation's order)
    whose region the asset allows and for whom its data key is wrapped. Raises, naming every
    asset no member may train, so a proposal is refused before anything is escrowed."""
    assigned: dict[Address, list[int]] = {m.address: [] for m in members}
    nobody = []
    for asset_id in sorted(public):
        for member in members:
            if member.active and coverage_refusal(public[asset_id], member) is None:
                assigned[member.address].append(asset_id)
                break
        else:
            nobody.append(asset_id)
    if nobody:
        raise InvalidInputError(
            "no member of the federation may train asset(s) "
            + ", ".join(str(a) for a in nobody)
            + ": each needs a member in a region it allows that holds its wrapped data key"
        )
    return assigned


def _address(value: object, what: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidInputError(f"{what} {str(value)[:60]!r} is not an address: give 0x and 40 hex")
    return str(to_checksum_address(value))
