"""Marketplace governance: regions and compute-node admission (``GOVERNANCE_ROLE`` only), and
finding compute nodes by address or by local account name.

Every argument that names an account is resolved here before a transaction is built: a full
address (its EIP-55 checksum checked when it has mixed case) or the name of an account in the
local keystore. Anything else — a short address, a typo — is refused with the nodes that do
exist, so a command never reaches the chain with a wrong party.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_checksum_address, to_checksum_address

from visdm.chain.client import TxResult
from visdm.chain.contracts import ComputeNodeRecord, StakeholderRegistry
from visdm.config import Settings
from visdm.errors import InvalidInputError, KeystoreNotFoundError
from visdm.session import connect_deployed
from visdm.types import Address

__all__ = [
    "MAX_ENDPOINT_CHARS",
    "active_node_addresses",
    "add_region",
    "admit_node",
    "check_endpoint",
    "compute_nodes",
    "describe_nodes",
    "resolve_account",
    "resolve_node",
    "set_node_suspended",
]

#: the longest endpoint admitted (it is stored on chain and fetched by every consumer)
MAX_ENDPOINT_CHARS = 512
#: nodes named in one message (the line stays readable on a market with hundreds)
_LISTED_NODES = 10
_FULL_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEXISH = re.compile(r"(0x)?[0-9a-fA-F]+")


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` as a node API URL (``http(s)://host[:port][/path]``, no trailing slash), or
    :class:`~visdm.errors.InvalidInputError` saying what is wrong with it."""
    text = endpoint.strip()
    problem = None
    try:
        parts = urlsplit(text)
        port = parts.port  # raises on a port that is no number or out of range
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in ("http", "https"):
            problem = f"the scheme is {parts.scheme or 'missing'}, not http or https"
        elif not parts.hostname:
            problem = "it names no host"
        elif any(c.isspace() or not c.isprintable() for c in text):
            problem = "it contains spaces or control characters"
        elif parts.username is not None or parts.password is not None:
            problem = "it carries a user name or password, which every consumer would read"
        elif parts.query or parts.fragment:
            problem = "it has a query or fragment; the node's API paths are appended to it"
        elif port == 0:
            problem = "port 0 is not a port a node listens on"
        elif len(text) > MAX_ENDPOINT_CHARS:
            problem = f"it is {len(text):,} characters long, over {MAX_ENDPOINT_CHARS}"
    if problem is not None:
        shown = text if len(text) <= 80 else text[:80] + "…"
        raise InvalidInputError(
            f"endpoint {shown!r} is not the URL of a node's API ({problem}): give "
            "http(s)://HOST[:PORT], e.g. http://127.0.0.1:8700"
        )
    return text.rstrip("/")


def resolve_account(settings: Settings, text: str, *, what: str = "account") -> Address:
    """The address ``text`` names: a full address, or an account name in the local keystore."""
    value = text.strip()
    if _FULL_ADDRESS.fullmatch(value):
        body = value[2:]
        if body != body.lower() and body != body.upper() and not is_checksum_address(value):
            raise InvalidInputError(
                f"{what} {value} has a wrong EIP-55 checksum (mistyped?): check it, or give it "
                "in lower case"
            )
        return Address(to_checksum_address(value))
    if _HEXISH.fullmatch(value) and value.startswith("0x"):
        raise InvalidInputError(
            f"{what} {value!r} is not a full address: give 0x and 40 hex digits, or the name "
            "of an account in this data directory"
        )
    from visdm.accounts import account_info

    try:
        return account_info(settings.keystore_dir, value).address
    except (KeystoreNotFoundError, InvalidInputError):
        raise InvalidInputError(
            f"{what} {value!r} is neither an address (0x and 40 hex digits) nor the name of an "
            f"account in {settings.keystore_dir}"
        ) from None


def compute_nodes(settings: Settings) -> list[ComputeNodeRecord]:
    """Every compute node ever admitted (suspended ones too), in admission order."""
    conn = connect_deployed(settings)
    return _nodes(conn.deployment.stakeholder_registry(conn.client))


def _nodes(registry: StakeholderRegistry) -> list[ComputeNodeRecord]:
    seen = dict.fromkeys(str(log["args"]["node"]) for log in registry.logs("NodeAdmitted"))
    return [registry.compute_node(a) for a in seen]


def describe_nodes(nodes: list[ComputeNodeRecord], *, active_only: bool = True) -> str:
    """``0x… (http://…)`` per node, or a sentence saying there is none."""
    shown = [n for n in nodes if n.active or not active_only]
    if not shown:
        return "no compute node is active: governance admits one with `visdm governance admit-node`"
    kind = "active compute nodes" if active_only else "admitted compute nodes"
    items = [
        f"{n.address} ({n.endpoint[:80] or 'no endpoint'}{'' if n.active else ', suspended'})"
        for n in shown[:_LISTED_NODES]
    ]
    more = f" and {len(shown) - _LISTED_NODES} more" if len(shown) > _LISTED_NODES else ""
    return f"{kind}: " + ", ".join(items) + more


def resolve_node(settings: Settings, text: str, *, active: bool = True) -> ComputeNodeRecord:
    """The compute node ``text`` names (address or local account name), admitted — and, with
    ``active``, not suspended; refusals list the nodes there are."""
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    try:
        address = resolve_account(settings, text, what="compute node")
    except InvalidInputError as exc:
        raise InvalidInputError(f"{exc}; {describe_nodes(_nodes(registry))}") from None
    record = registry.compute_node(address)
    if not record.admitted or (active and record.suspended):
        state = "suspended" if record.admitted else "not an admitted compute node"
        raise InvalidInputError(
            f"{address} is {state}; {describe_nodes(_nodes(registry), active_only=active)}"
        )
    return record


def add_region(
    settings: Settings, governance: LocalAccount, name: str
) -> tuple[list[str], TxResult]:
    """Add region ``name``; returns every region and the transaction."""
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    conn.client.fund_from_dev_faucet(governance.address)
    tx = registry.add_region(governance, name)
    return registry.regions(), tx


def admit_node(
    settings: Settings,
    governance: LocalAccount,
    node: str,
    *,
    region: str,
    endpoint: str,
    encryption_key: str,
    signer: str | None = None,
) -> tuple[ComputeNodeRecord, TxResult]:
    """Admit (or update) compute node ``node``; its quotes are signed by ``signer`` (default:
    the node's own address). ``node`` and ``signer`` are addresses or local account names.
    Returns the node's record and the transaction."""
    url = check_endpoint(endpoint)
    try:
        key = bytes.fromhex(encryption_key.removeprefix("0x"))
    except ValueError:
        raise InvalidInputError(f"encryption key {encryption_key!r} is not hex") from None
    if len(key) != 32:
        raise InvalidInputError(
            f"an X25519 public key has 32 bytes, {encryption_key!r} has {len(key)}: "
            "use the key `visdm account export-public` prints"
        )
    address = resolve_account(settings, node, what="compute node")
    signer_address = address if signer is None else resolve_account(settings, signer, what="signer")
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    if region not in registry.regions():
        raise InvalidInputError(
            f"region {region!r} does not exist (regions: {', '.join(registry.regions()) or 'none'})"
            ": add it with `visdm governance add-region NAME`"
        )
    conn.client.fund_from_dev_faucet(governance.address)
    tx = registry.admit_node(
        governance,
        address,
        signer=signer_address,
        region=region,
        encryption_key=key,
        endpoint=url,
    )
    return registry.compute_node(address), tx


def set_node_suspended(
    settings: Settings, governance: LocalAccount, node: str, *, suspended: bool
) -> tuple[ComputeNodeRecord, TxResult | None]:
    """Suspend or reinstate ``node`` (an address or local account name); returns its record and
    the transaction (``None``: the node was already in that state, and is left as it is)."""
    record = resolve_node(settings, node, active=False)
    if record.suspended == suspended:
        return record, None
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    conn.client.fund_from_dev_faucet(governance.address)
    if suspended:
        tx = registry.suspend_node(governance, record.address)
    else:
        tx = registry.reinstate_node(governance, record.address)
    return registry.compute_node(record.address), tx


def active_node_addresses(settings: Settings) -> list[str]:
    """Every compute node admitted and not suspended, in admission order."""
    return [n.address for n in compute_nodes(settings) if n.active]
