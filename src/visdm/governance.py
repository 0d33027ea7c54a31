"""Marketplace governance: regions and compute-node admission (``GOVERNANCE_ROLE`` only)."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from visdm.chain.contracts import ComputeNodeRecord
from visdm.config import Settings
from visdm.errors import InvalidInputError
from visdm.session import connect_deployed

__all__ = ["active_node_addresses", "add_region", "admit_node", "set_node_suspended"]


def add_region(settings: Settings, governance: LocalAccount, name: str) -> list[str]:
    """Add region ``name``; returns every region."""
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    conn.client.fund_from_dev_faucet(governance.address)
    registry.add_region(governance, name)
    return registry.regions()


def admit_node(
    settings: Settings,
    governance: LocalAccount,
    node: str,
    *,
    region: str,
    endpoint: str,
    encryption_key: str,
    signer: str | None = None,
) -> ComputeNodeRecord:
    """Admit (or update) compute node ``node``; its quotes are signed by ``signer`` (default:
    the node's own address)."""
    try:
        key = bytes.fromhex(encryption_key.removeprefix("0x"))
    except ValueError:
        raise InvalidInputError(f"encryption key {encryption_key!r} is not hex") from None
    if len(key) != 32:
        raise InvalidInputError(
            f"an X25519 public key has 32 bytes, {encryption_key!r} has {len(key)}: "
            "use the key `visdm account export-public` prints"
        )
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    conn.client.fund_from_dev_faucet(governance.address)
    registry.admit_node(
        governance,
        node,
        signer=signer or node,
        region=region,
        encryption_key=key,
        endpoint=endpoint,
    )
    return registry.compute_node(node)


def set_node_suspended(
    settings: Settings, governance: LocalAccount, node: str, *, suspended: bool
) -> ComputeNodeRecord:
    """Suspend or reinstate ``node``."""
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    conn.client.fund_from_dev_faucet(governance.address)
    if suspended:
        registry.suspend_node(governance, node)
    else:
        registry.reinstate_node(governance, node)
    return registry.compute_node(node)


def active_node_addresses(settings: Settings) -> list[str]:
    """Every compute node admitted and not suspended, in admission order."""
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    seen = dict.fromkeys(log["args"]["node"] for log in registry.logs("NodeAdmitted"))
    return [a for a in seen if registry.compute_node(a).active]
