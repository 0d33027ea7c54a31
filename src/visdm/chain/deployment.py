"""Deployments: which contracts live at which address on which chain.

``visdm deploy`` writes ``deployments/<chain id>.json`` in the data directory; every other
command reads it, checks that the node it talks to serves that chain id, and builds typed
contract wrappers from it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from visdm.chain.artifacts import build_info
from visdm.chain.client import ChainClient
from visdm.chain.contracts import (
    AssetRegistry,
    CourtParameters,
    DelegationRegistry,
    DevToken,
    MarketParameters,
    ResultCourt,
    StakeholderRegistry,
    TrainingMarket,
)
from visdm.errors import ChainError, ConfigError, DeploymentNotFoundError
from visdm.jsonsafe import load_untrusted_object, read_untrusted_file
from visdm.types import Address

__all__ = [
    "DeployedContract",
    "Deployment",
    "deploy_marketplace",
    "known_chain_ids",
    "load_deployment",
]


@dataclass(frozen=True, slots=True)
class DeployedContract:
    address: Address
    block_number: int
    tx_hash: str
    gas_used: int


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the marketplace contracts live on one chain."""

    chain_id: int
    rpc_url: str
    deployer: Address
    compiler: str
    deployed_at: float
    contracts: dict[str, DeployedContract] = field(default_factory=dict)

    def address_of(self, name: str) -> Address:
        try:
            return self.contracts[name].address
        except KeyError:
            raise DeploymentNotFoundError(
                f"the deployment for chain {self.chain_id} has no {name}: run `visdm deploy` again"
            ) from None

    def stakeholder_registry(self, client: ChainClient) -> StakeholderRegistry:
        return StakeholderRegistry(client, self.address_of("StakeholderRegistry"))

    def asset_registry(self, client: ChainClient) -> AssetRegistry:
        return AssetRegistry(client, self.address_of("AssetRegistry"))

    def delegation_registry(self, client: ChainClient) -> DelegationRegistry:
        return DelegationRegistry(client, self.address_of("DelegationRegistry"))

    def training_market(self, client: ChainClient) -> TrainingMarket:
        return TrainingMarket(client, self.address_of("TrainingMarket"))

    def result_court(self, client: ChainClient) -> ResultCourt:
        return ResultCourt(client, self.address_of("ResultCourt"))

    def payment_token(self, client: ChainClient) -> DevToken:
        """The market's ERC-20 (the DevToken on local chains)."""
        return DevToken(client, self.address_of("PaymentToken"))

    def save(self, deployments_dir: Path) -> Path:
        deployments_dir.mkdir(parents=True, exist_ok=True)
        path = deployments_dir / f"{self.chain_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        raw = dict(data)
        contracts = {name: DeployedContract(**info) for name, info in raw.pop("contracts").items()}
        return cls(contracts=contracts, **raw)


def known_chain_ids(deployments_dir: Path) -> list[int]:
    """Chain ids that have a deployment file."""
    if not deployments_dir.is_dir():
        return []
    return sorted(int(p.stem) for p in deployments_dir.glob("*.json") if p.stem.isdigit())


def load_deployment(deployments_dir: Path, chain_id: int | None = None) -> Deployment:
    """The deployment for ``chain_id``, or the only one there is when ``chain_id`` is None."""
    if chain_id is None:
        found = sorted(deployments_dir.glob("*.json")) if deployments_dir.is_dir() else []
        if len(found) != 1:
            hint = (
                "deploy with `visdm deploy`"
                if not found
                else f"several exist ({', '.join(p.stem for p in found)}): pick one with --rpc-url"
            )
            raise DeploymentNotFoundError(f"no unique deployment in {deployments_dir}: {hint}")
        path = found[0]
    else:
        path = deployments_dir / f"{chain_id}.json"
    what, hint = f"deployment file {path} is corrupt: it", "run `visdm deploy`"
    try:  # a deployment is a dozen addresses; the bound keeps a planted huge file unread
        raw = read_untrusted_file(path, what=what, max_bytes=1 << 20, error=ChainError, hint=hint)
    except FileNotFoundError:
        raise DeploymentNotFoundError(
            f"nothing is deployed on chain {chain_id} (no {path}): run `visdm deploy`"
        ) from None
    data = load_untrusted_object(raw, what=what, max_bytes=1 << 20, error=ChainError, hint=hint)
    try:
        return Deployment.from_json(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ChainError(f"deployment file {path} is corrupt ({exc}): run `visdm deploy`") from exc


#: the region a local dev deployment starts with, so nodes and assets can be placed at once
DEV_REGION = "local"


#: the scoring pool's terms at deployment: 0.001 token per scored sample, batches of at most
#: 2,048 samples, an hour to publish, three paid rounds per asset (ScoringPool.Terms)
DEFAULT_SCORING_TERMS = (10**15, 2_048, 3_600, 3)


def _start_scoring(client: ChainClient, deployer: LocalAccount, market: str, pool: str) -> None:
    """Give the scoring pool its terms and make it the market's fee recipient, at a fee of 0:
    governance raises it (``visdm scoring fee``) once the pool has a reference set."""
    scoring = client.contract(Address(pool), "ScoringPool")
    client.transact(deployer, scoring.functions.setTerms(DEFAULT_SCORING_TERMS), action="setTerms")
    fee = client.contract(Address(market), "TrainingMarket").functions.setScoringFee(pool, 0)
    client.transact(deployer, fee, action="setScoringFee")


def deploy_marketplace(
    client: ChainClient,
    deployer: LocalAccount,
    *,
    payment_token: str | None = None,
    parameters: MarketParameters | None = None,
    regions: tuple[str, ...] | None = None,
    court: CourtParameters | None = None,
) -> Deployment:
    """Deploy every marketplace contract and describe where they went.

    On a local dev chain the payment token is a fresh ``DevToken`` and the region ``local`` is
    added; elsewhere ``payment_token`` (an existing ERC-20) is required. The deployer holds the
    governance role and, unless the parameters name another, receives unclaimed payouts. The
    ``ScoringPool`` gets :data:`DEFAULT_SCORING_TERMS` and is the market's fee recipient, at a
    fee of zero until governance sets one. The ``ResultCourt`` is deployed with ``court``
    (default :class:`CourtParameters`); the market names it only when ``parameters`` ask for a
    challenge window.
    """
    dev = client.is_dev_chain
    if payment_token is None and not dev:
        raise ConfigError(
            f"chain {client.chain_id} is not a local dev chain: pass the address of the ERC-20 "
            "the market should take payments in (--payment-token)"
        )
    contracts: dict[str, DeployedContract] = {}

    def put(name: str, artifact: str, *args: object) -> str:
        address, result = client.deploy(deployer, artifact, *args)
        contracts[name] = DeployedContract(
            address=address,
            block_number=result.block_number,
            tx_hash=result.tx_hash,
            gas_used=result.gas_used,
        )
        return address

    stakeholders = put("StakeholderRegistry", "StakeholderRegistry", deployer.address)
    asset_registry = put("AssetRegistry", "AssetRegistry", stakeholders)
    if payment_token is None:
        token = put("PaymentToken", "DevToken")
    else:
        token = payment_token
        block = int(client.rpc(lambda: client.w3.eth.block_number))
        contracts["PaymentToken"] = DeployedContract(
            address=Address(token), block_number=block, tx_hash="", gas_used=0
        )
    params = parameters or MarketParameters()
    if not params.treasury:
        params = replace(params, treasury=deployer.address)
    # the court needs the market's address: the market starts without it and learns it below
    windowless = replace(params, challenge_window=0, court="")
    put(
        "TrainingMarket",
        "TrainingMarket",
        stakeholders,
        asset_registry,
        token,
        windowless.as_tuple(),
    )
    # the market inherits DelegationRegistry: delegation lives at the market's address
    contracts["DelegationRegistry"] = contracts["TrainingMarket"]
    put("CollectiveFactory", "CollectiveFactory", contracts["TrainingMarket"].address)
    market = contracts["TrainingMarket"].address
    pool = put("ScoringPool", "ScoringPool", stakeholders, asset_registry, market, token)
    _start_scoring(client, deployer, market, pool)
    court_params = court or CourtParameters()
    court_address = put(
        "ResultCourt", "ResultCourt", stakeholders, market, *court_params.as_tuple()
    )
    if params.challenge_window:
        wired = replace(params, court=params.court or court_address)
        TrainingMarket(client, market).set_parameters(deployer, wired)
    registry = StakeholderRegistry(client, stakeholders)
    for region in regions if regions is not None else ((DEV_REGION,) if dev else ()):
        registry.add_region(deployer, region)
    return Deployment(
        chain_id=client.chain_id,
        rpc_url=client.rpc_url,
        deployer=Address(deployer.address),
        compiler=str(build_info()["compiler"]),
        deployed_at=time.time(),
        contracts=contracts,
    )
