"""A marketplace cast on the session anvil, and helpers that play its steps."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from tests.conftest import role_account
from visdm.chain.client import ChainClient, TxResult
from visdm.chain.contracts import (
    AssetRegistry,
    ClaimRequest,
    DelegationRegistry,
    DevToken,
    ProposalTerms,
    Quote,
    ResultCommitment,
    StakeholderRegistry,
    TrainingMarket,
)
from visdm.chain.deployment import Deployment
from visdm.market import build_payout_tree, claim_for, sign_quote
from visdm.market.tally import TallyReceipt, submit_tally
from visdm.merkle import StandardMerkleTree
from visdm.types import Role

_counter = itertools.count()


@dataclass
class Market:
    """The deployed contracts and the moves the tests make with them."""

    chain: ChainClient
    deployment: Deployment
    roles: dict[str, LocalAccount]
    stakeholders: StakeholderRegistry = field(init=False)
    assets: AssetRegistry = field(init=False)
    delegations: DelegationRegistry = field(init=False)
    market: TrainingMarket = field(init=False)
    token: DevToken = field(init=False)

    def __post_init__(self) -> None:
        d, c = self.deployment, self.chain
        self.stakeholders = d.stakeholder_registry(c)
        self.assets = d.asset_registry(c)
        self.delegations = d.delegation_registry(c)
        self.market = d.training_market(c)
        self.token = d.payment_token(c)

    # --- time ---------------------------------------------------------------------------
    def now(self) -> int:
        return self.chain.latest_timestamp()

    def advance(self, seconds: int) -> None:
        self.chain.advance_time(seconds)

    # --- people ---------------------------------------------------------------------------
    def new_provider(self, label: str | None = None) -> LocalAccount:
        account = role_account(label or f"provider-{next(_counter)}")
        self.chain.fund_from_dev_faucet(account.address)
        if not self.stakeholders.stakeholder(account.address).registered:
            self.stakeholders.register(account, Role.PROVIDER, keccak(text=account.address))
        self.roles[account.address] = account
        return account

    def new_account(self, label: str | None = None) -> LocalAccount:
        account = role_account(label or f"account-{next(_counter)}")
        self.chain.fund_from_dev_faucet(account.address)
        self.roles[account.address] = account
        return account

    # --- assets ---------------------------------------------------------------------------
    def add_asset(
        self,
        owner: LocalAccount,
        count: int = 100,
        *,
        attest: bool = True,
        accepted: int | None = None,
    ) -> int:
        asset_id, _ = self.assets.register_asset(
            owner,
            manifest_hash=keccak(text=f"manifest-{next(_counter)}"),
            samples_root=keccak(text=f"root-{next(_counter)}"),
            sample_count=count,
            allowed_regions=["local"],
            key_nodes=[self.roles["node"].address],
            manifest_cid="bafkreimanifest",
        )
        if attest:
            self.assets.attest_metadata(
                self.roles["node"],
                asset_id,
                metadata_hash=keccak(text=f"metadata-{asset_id}"),
                accepted_count=count if accepted is None else accepted,
                metadata_cid="bafkreimetadata",
                key_nodes=[self.roles["node"].address],
            )
        return asset_id

    # --- proposals ------------------------------------------------------------------------
    def terms(
        self,
        selection: Sequence[tuple[int, int]],
        *,
        offer: int = 1000,
        wtp_bps: int = 8000,
        voting_period: int = 3600,
        node: str | None = None,
        min_share_bps: int = 0,
    ) -> ProposalTerms:
        return ProposalTerms(
            asset_ids=tuple(a for a, _ in selection),
            sample_counts=tuple(c for _, c in selection),
            selection_root=keccak(text="selection"),
            offer=offer,
            wtp_bps=wtp_bps,
            node=node or self.roles["node"].address,
            voting_deadline=self.now() + voting_period,
            model_spec_hash=keccak(text="spec"),
            validation_set_hash=keccak(text="validation"),
            proposal_cid="bafkreiproposal",
            min_share_bps=min_share_bps,
        )

    def propose(self, selection: Sequence[tuple[int, int]], **kwargs: int) -> int:
        pid, _ = self.market.propose(self.roles["consumer"], self.terms(selection, **kwargs))
        return pid

    def tally(
        self, pid: int, selection: Sequence[tuple[int, int]], *, batch_size: int = 256
    ) -> TallyReceipt:
        return submit_tally(
            self.market,
            self.assets,
            self.delegations,
            self.roles["stranger"],
            pid,
            selection=selection,
            batch_size=batch_size,
        )

    def quote(
        self, pid: int, *, cost: int = 50, duration: int = 3600, expiry_in: int = 600
    ) -> tuple[Quote, bytes]:
        quote = Quote(pid, cost, duration, self.now() + expiry_in)
        node_key = bytes(self.roles["node"].key)
        signature = sign_quote(node_key, self.chain.chain_id, self.market.address, quote)
        return quote, signature

    def start(self, pid: int, **kwargs: int) -> TxResult:
        quote, signature = self.quote(pid, **kwargs)
        return self.market.start_training(self.roles["consumer"], pid, quote, signature)

    def approved(
        self, selection: Sequence[tuple[int, int]], *, offer: int = 1000, **kw: int
    ) -> int:
        """A proposal voted through at its offer (every owner asks 0)."""
        pid = self.propose(selection, offer=offer, **kw)
        for owner in {self.assets.asset(a).owner for a, _ in selection}:
            self.market.vote(self._account_of(owner), pid, 0)
        self.advance(3601)
        self.tally(pid, selection)
        return pid

    def payout(
        self, pid: int, amounts: dict[int, int], selection: Sequence[int]
    ) -> StandardMerkleTree:
        """Train and submit a WTP-met result whose payout tree pays ``amounts`` (asset id →
        amount); ``selection`` is the proposal's asset ids in order."""
        self.start(pid)
        positions = {a: i for i, a in enumerate(selection)}
        tree = build_payout_tree(amounts, positions)
        self.submit(pid, payout_root=tree.root)
        return tree

    def submit(self, pid: int, *, accuracy_bps: int = 9000, **fields: Any) -> TxResult:
        """The node submits a result (WTP met at 9000 bps unless told otherwise)."""
        result = ResultCommitment(
            accuracy_bps=accuracy_bps,
            result_cid="bafkreiresult",
            model_hash=keccak(text="model"),
            scores_hash=keccak(text="scores"),
            seed_hash=keccak(text="seed"),
            **fields,
        )
        return self.market.submit_result(self.roles["node"], pid, result)

    def claim(
        self, pid: int, tree: StandardMerkleTree, asset_id: int, selection: Sequence[int]
    ) -> ClaimRequest:
        """The claim for ``asset_id``'s payout leaf."""
        return claim_for(tree, pid, asset_id, selection)

    def _account_of(self, address: str) -> LocalAccount:
        for account in self.roles.values():
            if account.address == address:
                return account
        raise KeyError(address)

    def escrow_balance(self) -> int:
        return self.token.balance_of(self.market.address)


@pytest.fixture
def mk(chain: ChainClient, deployment: Deployment, funded_roles: dict[str, LocalAccount]) -> Market:
    return Market(chain, deployment, dict(funded_roles))
