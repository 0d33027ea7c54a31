"""SDK entry points that tie settings, the chain, the deployment and an account together.

Each CLI command is one call here, so everything the CLI does is also usable from Python::

    settings = Settings.from_env()
    chain = connect(settings)                       # checks the node and its chain id
    deployment = deploy(settings, account)          # once per chain
    record = register(settings, account, Role.PROVIDER)

Every client :func:`connect` makes checks that the server really is an Ethereum JSON-RPC node
(a web page, a websocket or a ``file://`` URL is a one-line refusal, not a traceback). Without
``--rpc-url`` the client follows the local chain: when ``visdm chain down`` / ``chain up``
restarts anvil on another port, the next call finds it there (same chain id) instead of
knocking on the old port for ever.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.exceptions import BadResponseFormat

from visdm.accounts import AccountInfo, UnlockedAccount, account_info, load_account, scan_accounts
from visdm.chain.anvil import local_rpc_url, read_node
from visdm.chain.client import ChainClient, TxResult
from visdm.chain.contracts import StakeholderRecord
from visdm.chain.deployment import (
    Deployment,
    deploy_marketplace,
    known_chain_ids,
    load_deployment,
)
from visdm.config import Settings, check_rpc_url
from visdm.errors import (
    ChainError,
    ChainNotRunningError,
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


def connect(settings: Settings) -> ChainClient:
    """A checked connection to the configured chain (``--rpc-url`` or the local one)."""
    if settings.rpc_url:
        return _Client(
            check_rpc_url(settings.rpc_url),
            chain_dir=None,
            timeout_s=settings.rpc_timeout_s,
            tx_timeout_s=settings.tx_timeout_s,
        )
    return _Client(
        local_rpc_url(settings.chain_dir),
        chain_dir=settings.chain_dir,
        timeout_s=settings.rpc_timeout_s,
        tx_timeout_s=settings.tx_timeout_s,
    )


T = TypeVar("T")
log = logging.getLogger("visdm.chain")
#: what a server that is not a JSON-RPC node answers with: an HTTP error, a page, other JSON
_NOT_RPC = (requests.HTTPError, json.JSONDecodeError, BadResponseFormat)


class _Client(ChainClient):
    """A :class:`ChainClient` that says when a server is no JSON-RPC node and, given the local
    chain's directory, follows that chain to wherever ``visdm chain up`` started it."""

    def __init__(
        self, rpc_url: str, *, chain_dir: Path | None, timeout_s: float, tx_timeout_s: float
    ) -> None:
        self._chain_dir = chain_dir
        self._timeout_s = timeout_s
        try:
            super().__init__(rpc_url, timeout_s=timeout_s, tx_timeout_s=tx_timeout_s)
        except ChainError:
            raise
        except Exception as exc:  # whatever an arbitrary server makes web3 raise
            raise ChainNotRunningError(_not_rpc(rpc_url, exc)) from exc

    def rpc(self, fn: Callable[[], T]) -> T:
        try:
            return self._once(fn)
        except ChainNotRunningError:
            if not self._follow_local_chain():
                raise
            return self._once(fn)

    def _once(self, fn: Callable[[], T]) -> T:
        try:
            return super().rpc(fn)
        except _NOT_RPC as exc:
            raise ChainNotRunningError(_not_rpc(self.rpc_url, exc)) from exc

    def _follow_local_chain(self) -> bool:
        """Point at the local chain's current URL if it moved; False if it did not."""
        if self._chain_dir is None:
            return False
        node = read_node(self._chain_dir)
        if node is None:
            raise ChainNotRunningError(
                f"the local chain that was at {self.rpc_url} is not running: start it again "
                "with `visdm chain up` (its state is kept)"
            )
        if node.rpc_url == self.rpc_url:
            return False
        moved_from = self.rpc_url
        self.w3.provider = Web3.HTTPProvider(
            node.rpc_url,
            request_kwargs={"timeout": self._timeout_s},
            exception_retry_configuration=None,
        )
        self.rpc_url = node.rpc_url
        chain_id = int(super().rpc(lambda: self.w3.eth.chain_id))
        if chain_id != self.chain_id:
            raise WrongChainError(
                f"the local chain now at {node.rpc_url} has chain id {chain_id}, not "
                f"{self.chain_id} as before: restart the command"
            )
        self.reset_nonces()  # the restarted node may have lost what was not yet dumped
        log.info("the local chain moved from %s to %s: following it", moved_from, node.rpc_url)
        return True


def _not_rpc(url: str, exc: BaseException) -> str:
    detail = " ".join(str(exc).split())[:160]
    return (
        f"the server at {url} does not answer like an Ethereum JSON-RPC node "
        f"({type(exc).__name__}: {detail}): point --rpc-url or VISDM_RPC_URL at a node's "
        "JSON-RPC URL, or unset them to use the local chain (`visdm chain up`)"
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
) -> tuple[StakeholderRecord, TxResult | None]:
    """Register ``account`` on chain with ``roles`` and its X25519 public key; returns the
    record and the transaction sent (``None``: it already held every role).

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
    tx = None
    if not current.registered:
        tx = registry.register(account, roles, encryption_key)
    elif roles & ~current.roles:
        tx = registry.add_roles(account, roles)
    return registry.stakeholder(account.address), tx


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
