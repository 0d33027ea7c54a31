"""The coordinator registers only SuperNode keys that the proposal's nodes signed, checked
against the node registry on anvil."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.errors import NodeNotInFederationError
from visdm.federation import new_supernode_key
from visdm.federation.registry import (
    NamedNode,
    check_named_nodes,
    sign_supernode_key,
    write_public_keys,
)

pytestmark = pytest.mark.integration

PROPOSAL = 7


@pytest.fixture
def signed(tmp_path: Path, chain: ChainClient, node: LocalAccount) -> NamedNode:
    key = new_supernode_key(tmp_path, "local").public_openssh()
    return sign_supernode_key(
        node,
        node=node.address,
        region="local",
        public_key=key,
        proposal_id=PROPOSAL,
        chain_id=chain.chain_id,
    )


def _check(named: list[NamedNode], chain: ChainClient, deployment: Deployment, **kw) -> list:
    args = {"proposal_id": PROPOSAL, "chain_id": chain.chain_id, "regions": ["local"]}
    args.update(kw)
    return check_named_nodes(named, registry=deployment.stakeholder_registry(chain), **args)


def test_an_admitted_nodes_signed_key_is_accepted(
    tmp_path: Path, chain: ChainClient, deployment: Deployment, signed: NamedNode
) -> None:
    keys = _check([signed], chain, deployment)
    assert keys == [signed.public_key]
    (path,) = write_public_keys(tmp_path / "named", keys)
    assert path.read_bytes().strip() == signed.public_key


@pytest.mark.attack
def test_keys_not_bound_by_an_active_named_node_are_refused(
    tmp_path: Path,
    chain: ChainClient,
    deployment: Deployment,
    node: LocalAccount,
    stranger: LocalAccount,
    governance: LocalAccount,
    signed: NamedNode,
) -> None:
    rogue_key = new_supernode_key(tmp_path, "rogue").public_openssh()
    # a stranger signs its own key in the admitted node's name
    forged = sign_supernode_key(
        stranger,
        node=node.address,
        region="local",
        public_key=rogue_key,
        proposal_id=PROPOSAL,
        chain_id=chain.chain_id,
    )
    with pytest.raises(NodeNotInFederationError, match="not by the node's signer"):
        _check([forged], chain, deployment)
    # the node's binding for another proposal is replayed into this one
    with pytest.raises(NodeNotInFederationError, match="another proposal"):
        _check([signed], chain, deployment, proposal_id=PROPOSAL + 1)
    # a stranger is not an admitted node at all
    own = sign_supernode_key(
        stranger,
        node=stranger.address,
        region="local",
        public_key=rogue_key,
        proposal_id=PROPOSAL,
        chain_id=chain.chain_id,
    )
    with pytest.raises(NodeNotInFederationError, match="not an active admitted compute node"):
        _check([own], chain, deployment)
    # a region the node is not in, a region named twice, a bad key, a bad signature
    with pytest.raises(NodeNotInFederationError, match="no such region"):
        _check([signed], chain, deployment, regions=["eu"])
    with pytest.raises(NodeNotInFederationError, match="named twice"):
        _check([signed, signed], chain, deployment)
    with pytest.raises(NodeNotInFederationError, match="OpenSSH NIST EC"):
        _check(
            [NamedNode(signed.node, "local", b"ssh-rsa AAAA", signed.signature)], chain, deployment
        )
    with pytest.raises(NodeNotInFederationError, match="not 65"):
        _check([NamedNode(signed.node, "local", signed.public_key, b"x")], chain, deployment)
    # once governance suspends the node, its binding no longer counts
    deployment.stakeholder_registry(chain).suspend_node(governance, node.address)
    with pytest.raises(NodeNotInFederationError, match="suspended=True"):
        _check([signed], chain, deployment)
