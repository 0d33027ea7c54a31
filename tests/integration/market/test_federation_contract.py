"""A federation as one proposal's node, on a real anvil: assets that allow only different
regions are selectable together only through a federation all of whose members joined; the
coordinator splits the training cost into member fees before it may submit; members are paid
once the market released it; every refusal is a test."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from tests.conftest import role_account
from tests.integration.market.conftest import Market
from visdm.chain._federation import FederationContract, deploy_federation
from visdm.chain.contracts import ProposalStatus, ResultCommitment
from visdm.errors import ContractRevertError, SignatureError
from visdm.market import build_payout_tree, sign_quote
from visdm.market._federated import federation_quote
from visdm.session import Connection
from visdm.storage import LocalStore

pytestmark = pytest.mark.integration

_ids = itertools.count()


def _regional_node(mk: Market, region: str) -> LocalAccount:
    """A new admitted node in a new region (anvil snapshots undo both after the test)."""
    node = mk.new_account(f"fed-node-{region}-{next(_ids)}")
    gov = mk.roles["governance"]
    if region not in mk.stakeholders.regions():
        mk.stakeholders.add_region(gov, region)
    mk.stakeholders.admit_node(
        gov,
        node.address,
        signer=node.address,
        region=region,
        encryption_key=keccak(text=node.address),
        endpoint="http://127.0.0.1:9/",
    )
    return node


def _regional_asset(mk: Market, owner: LocalAccount, node: LocalAccount, region: str) -> int:
    asset_id, _ = mk.assets.register_asset(
        owner,
        manifest_hash=keccak(text=f"manifest-{next(_ids)}"),
        samples_root=keccak(text=f"root-{next(_ids)}"),
        sample_count=50,
        allowed_regions=[region],
        key_nodes=[node.address],
        manifest_cid="bafkreimanifest",
    )
    mk.assets.attest_metadata(
        node,
        asset_id,
        metadata_hash=keccak(text=f"metadata-{asset_id}"),
        accepted_count=50,
        metadata_cid="bafkreimetadata",
        key_nodes=[node.address],
    )
    return asset_id


@pytest.fixture
def world(mk: Market) -> dict:
    eu, us = _regional_node(mk, "fed-eu"), _regional_node(mk, "fed-us")
    a = _regional_asset(mk, mk.roles["provider"], eu, "fed-eu")
    b = _regional_asset(mk, mk.roles["provider2"], us, "fed-us")
    return {"eu": eu, "us": us, "selection": [(a, 50), (b, 50)]}


def _federation(mk: Market, world: dict, *, join: bool = True) -> FederationContract:
    coordinator = mk.roles["node"]
    fed, _ = deploy_federation(
        mk.chain, coordinator, mk.market.address, [world["eu"].address, world["us"].address]
    )
    mk.stakeholders.register_federation(coordinator, fed.address, fed.members())
    if join:
        for member in (world["eu"], world["us"]):
            mk.stakeholders.join_federation(member, fed.address)
    return fed


def _refused(name: str, call) -> ContractRevertError:  # type: ignore[no-untyped-def]
    with pytest.raises(ContractRevertError) as info:
        call()
    assert info.value.error_name == name, str(info.value)
    return info.value


def test_assets_of_two_regions_need_a_federation_and_its_members_are_paid(
    mk: Market, world: dict
) -> None:
    selection = world["selection"]
    # one node cannot take assets its region does not allow
    _refused("TrainingMarketNodeNotAllowed", lambda: mk.propose(selection))

    fed = _federation(mk, world)
    assert fed.runs_shipped_code()
    record = mk.stakeholders.federation_of(fed.address)
    assert record.complete and record.coordinator == mk.roles["node"].address
    regions = mk.stakeholders.node_regions(fed.address)
    assert regions.active and regions.signer == mk.roles["node"].address
    assert bin(regions.mask).count("1") == 2  # the two members' regions, not the coordinator's

    pid = mk.approved(selection, node=fed.address)
    # the coordinator signs the federation's quote: the market checks its signer
    quote, signature = mk.quote(pid, cost=90)
    mk.market.start_training(mk.roles["consumer"], pid, quote, signature)
    coordinator = mk.roles["node"]
    positions = {a: i for i, (a, _) in enumerate(selection)}
    tree = build_payout_tree({selection[0][0]: 600, selection[1][0]: 400}, positions)
    result = ResultCommitment(
        accuracy_bps=9000,
        result_cid="bafkreiresult",
        model_hash=keccak(text="model"),
        payout_root=tree.root,
        scores_hash=keccak(text="scores"),
        seed_hash=keccak(text="seed"),
    )
    # no result before the members' fees are set, and the fees must add up to the cost
    _refused("FederationFeesNotSet", lambda: fed.submit_result(coordinator, pid, result))
    _refused("FederationBadFees", lambda: fed.set_fees(coordinator, pid, [50, 50]))
    _refused("FederationBadFees", lambda: fed.set_fees(coordinator, pid, [90]))
    _refused("FederationNotCoordinator", lambda: fed.set_fees(world["eu"], pid, [45, 45]))
    _refused("FederationFeesNotSet", lambda: fed.collect(mk.roles["stranger"], pid))
    fed.set_fees(coordinator, pid, [60, 30])
    _refused("FederationNotReleased", lambda: fed.collect(mk.roles["stranger"], pid))
    _refused("FederationBadFees", lambda: fed.set_fees(coordinator, pid, [45, 45]))
    assert fed.fees_of(pid) == (60, 30)
    _refused("FederationNotCoordinator", lambda: fed.submit_result(world["us"], pid, result))
    fed.submit_result(coordinator, pid, result)
    assert mk.market.proposal(pid).status == ProposalStatus.COMPLETED

    fed.collect(mk.roles["stranger"], pid)  # window 0: released at once; anyone may collect
    _refused("FederationNotReleased", lambda: fed.collect(mk.roles["stranger"], pid))
    before = mk.token.balance_of(world["eu"].address)
    fed.withdraw(world["eu"])
    assert mk.token.balance_of(world["eu"].address) - before == 60
    assert fed.owed_to(world["us"].address) == 30
    _refused("FederationNothingOwed", lambda: fed.withdraw(world["eu"]))
    _refused("FederationNothingOwed", lambda: fed.withdraw(coordinator))
    # the providers claim from the market as after any round
    claim = mk.claim(pid, tree, selection[1][0], [a for a, _ in selection])
    mk.market.claim_many(mk.roles["provider2"], [claim])
    assert mk.market.credit_of(mk.roles["provider2"].address) == 400


@pytest.mark.attack
def test_a_node_named_without_its_consent_keeps_the_federation_out(mk: Market, world: dict) -> None:
    """The attack: a coordinator names a node of another region so that assets only that
    region allows are selected, then trains them itself. The named node never joins, so the
    federation is inactive and no proposal can name it."""
    fed = _federation(mk, world, join=False)
    mk.stakeholders.join_federation(world["eu"], fed.address)  # one of two
    assert not mk.stakeholders.node_regions(fed.address).active
    _refused("TrainingMarketInactiveNode", lambda: mk.propose(world["selection"], node=fed.address))
    mk.stakeholders.join_federation(world["us"], fed.address)
    assert mk.stakeholders.node_regions(fed.address).active


def test_federation_registration_refusals(mk: Market, world: dict) -> None:
    coordinator, eu, us = mk.roles["node"], world["eu"], world["us"]
    fed, _ = deploy_federation(mk.chain, coordinator, mk.market.address, [eu.address, us.address])
    stranger = mk.roles["stranger"]
    reg = mk.stakeholders
    _refused(
        "StakeholderRegistryUnknownNode",
        lambda: reg.register_federation(stranger, fed.address, [eu.address]),
    )
    err = _refused(
        "StakeholderRegistryInvalidFederation",
        lambda: reg.register_federation(coordinator, stranger.address, [eu.address]),
    )
    assert err.error_args["reason"] == "not a contract"
    _refused(
        "StakeholderRegistryInvalidFederation",
        lambda: reg.register_federation(coordinator, fed.address, [eu.address, eu.address]),
    )
    _refused(
        "StakeholderRegistryInvalidFederation",
        lambda: reg.register_federation(coordinator, fed.address, []),
    )
    nobody = role_account("fed-nobody")
    _refused(
        "StakeholderRegistryUnknownNode",
        lambda: reg.register_federation(coordinator, fed.address, [eu.address, nobody.address]),
    )
    reg.register_federation(coordinator, fed.address, [eu.address, us.address])
    _refused(
        "StakeholderRegistryInvalidFederation",
        lambda: reg.register_federation(coordinator, fed.address, [eu.address, us.address]),
    )
    _refused(
        "StakeholderRegistryNotFederationMember", lambda: reg.join_federation(stranger, fed.address)
    )
    # a member checks the code it joins: another contract is not a federation
    assert not FederationContract(mk.chain, mk.token.address).runs_shipped_code()


@pytest.mark.attack
def test_a_suspended_member_stops_the_federation(mk: Market, world: dict) -> None:
    fed = _federation(mk, world)
    mk.stakeholders.suspend_node(mk.roles["governance"], world["us"].address)
    assert not mk.stakeholders.node_regions(fed.address).active
    _refused("TrainingMarketInactiveNode", lambda: mk.propose(world["selection"], node=fed.address))


def test_a_federation_is_never_drawn_into_a_committee_and_signs_with_its_coordinator(
    mk: Market, world: dict
) -> None:
    fed = _federation(mk, world)
    # the single-node view (attestation, committees, scoring) does not see federations
    status = mk.stakeholders.compute_node(fed.address)
    assert not status.admitted
    pid = mk.approved(world["selection"], node=fed.address)
    quote = mk.quote(pid)[0]
    forged = sign_quote(bytes(world["eu"].key), mk.chain.chain_id, mk.market.address, quote)
    _refused(
        "TrainingMarketBadSigner",
        lambda: mk.market.start_training(mk.roles["consumer"], pid, quote, forged),
    )


@pytest.mark.attack
def test_only_members_bind_keys_and_only_the_coordinator_announces(mk: Market, world: dict) -> None:
    """The attack: a node outside the federation binds a SuperNode key to its round, to be
    registered with the SuperLink and sent the model; or announces a round document of its own
    (another SuperLink, another quote). Both are refused on chain."""
    fed = _federation(mk, world)
    pid = mk.approved(world["selection"], node=fed.address)
    stranger, coordinator = mk.roles["stranger"], mk.roles["node"]
    _refused("FederationNotMember", lambda: fed.bind_key(stranger, pid, b"ecdsa-sha2 AAAA"))
    _refused("FederationNotCoordinator", lambda: fed.announce_round(stranger, pid, "bafkreix"))
    _refused("FederationBadKey", lambda: fed.bind_key(world["eu"], pid, b""))
    _refused("FederationNotOurs", lambda: fed.bind_key(world["eu"], pid + 1, b"key"))
    fed.bind_key(world["eu"], pid, b"ecdsa-sha2 AAAA")
    fed.announce_round(coordinator, pid, "bafkreiround")
    assert fed.bound_keys(pid) == {world["eu"].address: b"ecdsa-sha2 AAAA"}
    assert fed.announced_round(pid) == "bafkreiround"


@pytest.mark.attack
def test_a_consumer_refuses_an_announced_quote_its_coordinator_did_not_sign(
    mk: Market, world: dict, tmp_path: Path
) -> None:
    """The attack: the announced document carries a quote signed by someone else (a member),
    so that the consumer escrows a cost the federation's signer never offered. The consumer's
    SDK checks the signer before it pays; a quote the coordinator signed is accepted."""
    fed = _federation(mk, world)
    pid = mk.approved(world["selection"], node=fed.address)
    store = LocalStore(tmp_path / "store")
    conn = Connection(mk.chain, mk.deployment)
    quote = mk.quote(pid, cost=90)[0]

    def announce(signer: LocalAccount) -> None:
        signature = sign_quote(bytes(signer.key), mk.chain.chain_id, mk.market.address, quote)
        doc = {
            "proposalId": pid,
            "quote": {"trainingCost": "90", "maxDuration": quote.max_duration,
                      "expiry": quote.expiry},
            "signature": "0x" + signature.hex(),
        }  # fmt: skip
        fed.announce_round(mk.roles["node"], pid, store.put(json.dumps(doc).encode()))

    announce(world["eu"])
    record = mk.market.proposal(pid)
    with pytest.raises(SignatureError, match="not by its coordinator's signer"):
        federation_quote(conn, store, record, pid)
    announce(mk.roles["node"])
    assert federation_quote(conn, store, record, pid)[0] == quote
