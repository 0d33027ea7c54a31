"""SDK entry points that tie settings, the chain, the deployment and an account together.

Each CLI command is one call here, so everything the CLI does is also usable from Python::

    settings = Settings.from_env()
    chain = connect(settings)                       # checks the node and its chain id
    deployment = deploy(settings, account)          # once per chain
    record = register(settings, account, Role.PROVIDER)
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.accounts import AccountInfo, UnlockedAccount, account_info, load_account, scan_accounts
from visdm.chain.anvil import local_rpc_url
from visdm.chain.client import ChainClient
from visdm.chain.contracts import StakeholderRecord
from visdm.chain.deployment import (
    Deployment,
    deploy_marketplace,
    known_chain_ids,
    load_deployment,
)
from visdm.config import Settings
from visdm.errors import (
    ChainError,
    DeploymentNotFoundError,
    InvalidInputError,
    KeystoreError,
    KeystoreNotFoundError,
    WrongChainError,
)
from visdm.storage import ContentStore, KuboStore, LocalStore
from visdm.types import Role

__all__ = [
    "Connection",
    "WhoAmI",
    "connect",
    "connect_deployed",
    "current_account",
    "deploy",
    "open_store",
    "register",
    "top_up_dev_tokens",
    "unlock",
    "whoami",
]


def current_account(settings: Settings) -> AccountInfo:
    """The account to act as: ``--account`` / ``$VISDM_ACCOUNT``, or the only one there is.

    A keystore that cannot be read counts as an account here: it may be the one meant, so it
    is never silently passed over for the only readable one."""
    if settings.account:
        return account_info(settings.keystore_dir, settings.account)
    accounts, unusable = scan_accounts(settings.keystore_dir)
    if len(accounts) == 1 and not unusable:
        return accounts[0]
    if not accounts and not unusable:
        raise KeystoreNotFoundError(
            f"no account in {settings.keystore_dir}: create one with `visdm account new NAME`"
        )
    if not accounts and len(unusable) == 1:
        raise KeystoreError(unusable[0].reason)
    names = ", ".join(
        [a.name for a in accounts] + [f"{u.path.stem} (unusable: {u.path})" for u in unusable]
    )
    raise InvalidInputError(f"several accounts exist ({names}): choose one with --account NAME")


def unlock(settings: Settings, password: str) -> UnlockedAccount:
    """Open the current account's keystore with ``password``."""
    info = current_account(settings)
    return load_account(settings.keystore_dir, info.name, password)


def open_store(settings: Settings) -> ContentStore:
    """The content store: a Kubo RPC API when ``store_url`` is set, else the local blockstore."""
    if settings.store_url:
        return KuboStore(settings.store_url)
    return LocalStore(settings.store_dir)


def _rpc_url(settings: Settings) -> str:
    return settings.rpc_url or local_rpc_url(settings.chain_dir)


def connect(settings: Settings) -> ChainClient:
    """A checked connection to the configured chain (``--rpc-url`` or the local one)."""
    return ChainClient(
        _rpc_url(settings), timeout_s=settings.rpc_timeout_s, tx_timeout_s=settings.tx_timeout_s
    )


@dataclass(frozen=True, slots=True)
class Connection:
    """A client together with the deployment for its chain."""

    client: ChainClient
    deployment: Deployment


def connect_deployed(settings: Settings) -> Connection:
    """Connect and load the deployment for the node's chain id; the two must agree."""
    client = connect(settings)
    known = known_chain_ids(settings.deployments_dir)
    if known and client.chain_id not in known:
        raise WrongChainError(
            f"the node at {client.rpc_url} serves chain id {client.chain_id}, but this data "
            f"directory has deployments only for chain id {', '.join(map(str, known))}: point "
            "--rpc-url at that chain, or run `visdm deploy` to deploy on this one"
        )
    deployment = load_deployment(settings.deployments_dir, client.chain_id)
    code = client.rpc(
        lambda: client.w3.eth.get_code(
            to_checksum_address(deployment.address_of("StakeholderRegistry"))
        )
    )
    if not code:
        raise DeploymentNotFoundError(
            f"the deployment file says StakeholderRegistry is at "
            f"{deployment.address_of('StakeholderRegistry')} on chain {client.chain_id}, but "
            f"the node at {client.rpc_url} has no code there (a fresh chain?): run `visdm deploy`"
        )
    return Connection(client, deployment)


def deploy(
    settings: Settings, account: LocalAccount, *, payment_token: str | None = None
) -> Deployment:
    """Deploy the marketplace contracts with ``account`` and save the deployment file.

    On a local dev chain the payment token is a fresh DevToken; elsewhere pass the ERC-20.
    """
    client = connect(settings)
    client.fund_from_dev_faucet(account.address)
    deployment = deploy_marketplace(client, account, payment_token=payment_token)
    deployment.save(settings.deployments_dir)
    return deployment


def register(
    settings: Settings, account: LocalAccount, roles: Role, encryption_key: bytes
) -> StakeholderRecord:
    """Register ``account`` on chain with ``roles`` and its X25519 public key.

    Already registered: the missing roles are added; the key must match the one on chain.
    """
    if roles == Role.NONE:
        raise InvalidInputError("choose at least one role: provider or consumer")
    if len(encryption_key) != 32:
        raise InvalidInputError(f"an X25519 public key has 32 bytes, got {len(encryption_key)}")
    conn = connect_deployed(settings)
    conn.client.fund_from_dev_faucet(account.address)
    registry = conn.deployment.stakeholder_registry(conn.client)
    current = registry.stakeholder(account.address)
    if not current.registered:
        registry.register(account, roles, encryption_key)
    elif roles & ~current.roles:
        registry.add_roles(account, roles)
    return registry.stakeholder(account.address)


@dataclass(frozen=True, slots=True)
class WhoAmI:
    """An account as the chain sees it."""

    address: str
    chain_id: int
    rpc_url: str
    registered: bool
    roles: list[str]
    encryption_key: str | None
    local_encryption_key: str
    key_matches: bool
    registered_at: int | None
    balance_wei: int


def whoami(settings: Settings, address: str, local_encryption_key: bytes) -> WhoAmI:
    """The on-chain record of ``address`` beside the key its keystore derives."""
    conn = connect_deployed(settings)
    record = conn.deployment.stakeholder_registry(conn.client).stakeholder(address)
    chain_key = record.encryption_key if record.registered else None
    return WhoAmI(
        address=record.address,
        chain_id=conn.client.chain_id,
        rpc_url=conn.client.rpc_url,
        registered=record.registered,
        roles=record.roles.names(),
        encryption_key="0x" + chain_key.hex() if chain_key else None,
        local_encryption_key="0x" + local_encryption_key.hex(),
        key_matches=chain_key == local_encryption_key,
        registered_at=record.registered_at or None,
        balance_wei=conn.client.balance(address),
    )


def top_up_dev_tokens(
    client: ChainClient, deployment: Deployment, account: LocalAccount, amount: int
) -> bool:
    """On a local dev chain, mint the payment tokens ``account`` lacks for ``amount`` from the
    DevToken's faucet (as gas comes from anvil's). Elsewhere, or when it holds enough, nothing
    happens and the transaction that needs the tokens says what is missing."""
    if not client.is_dev_chain:
        return False
    token = deployment.payment_token(client)
    shortfall = amount - token.balance_of(account.address)
    if shortfall <= 0:
        return False
    try:
        token.faucet(account, shortfall)
    except ChainError:
        return False  # not a DevToken, or above its faucet limit
    return True
