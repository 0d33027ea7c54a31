"""A market whose assets may each be trained in one region only, on the session anvil: three
regional nodes (eu, us, ap) each admitted in its region, three providers each with a real
Fashion-MNIST asset allowing one region, the compute node ``node`` (region ``local``) as the
coordinator of a federation of the three, and a consumer's proposal naming it, voted through."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from tests.conftest import role_account
from tests.integration.compute.roundkit import (
    NAMES,
    NO_DP_LICENCE,
    VAL_X,
    VAL_Y,
    Round,
    write_folder,
)
from tests.unit.federation._fakegrid import SPEC
from visdm.accounts import UnlockedAccount, import_account, load_account
from visdm.assets import add_asset
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.compute import AssetWorker, NodeConfig
from visdm.federation.market_round import Coordinator, load_coordinator, quote_federation
from visdm.federation.membership import form_federation, join_federation
from visdm.federation.processes import SuperNodeProcess, _descendants, stop_supernode
from visdm.market import workflow
from visdm.types import Role

REGIONS = ("eu", "us", "ap")
PROVIDER_OF = {"eu": "provider", "us": "provider2", "ap": "provider3"}
PASSWORD = "pw"


class FederatedMarket(Round):
    """:class:`Round`'s market with three regions, their nodes and assets, and a federation."""

    def __init__(
        self, chain: ChainClient, deployment: Deployment, home: Path, roles: dict[str, LocalAccount]
    ) -> None:
        super().__init__(chain, deployment, home, roles)
        self.governance = roles["governance"]
        self.members: dict[str, UnlockedAccount] = {}
        for region in REGIONS:
            if region not in self.registry.regions():
                self.registry.add_region(self.governance, region)
            self.members[region] = self._account(f"node-{region}")
            node = self.members[region]
            self.registry.admit_node(
                self.governance,
                node.address,
                signer=node.address,
                region=region,
                encryption_key=node.x25519_public,
                endpoint="http://127.0.0.1:9/",
            )
        provider3 = self._account("provider3")
        if not self.registry.stakeholder(provider3.address).registered:
            self.registry.register(provider3.local_account, Role.PROVIDER, provider3.x25519_public)
        self.by_region: dict[str, int] = {}
        self.federation = ""

    def _account(self, name: str) -> UnlockedAccount:
        key = bytes(role_account(f"fed-{name}").key)
        import_account(self.settings.keystore_dir, name, key, PASSWORD, scrypt_n=1024)
        account = load_account(self.settings.keystore_dir, name, PASSWORD)
        self.chain.fund_from_dev_faucet(account.address)
        self.accounts[name] = account
        return account

    def add_regional_assets(self, tmp: Path, per_region: int) -> list[int]:
        """One asset per region, allowed only there and keyed to that region's node, attested
        by it."""
        for k, region in enumerate(REGIONS):
            who = PROVIDER_OF[region]
            folder = write_folder(
                tmp / f"{who}-{region}", list(range(k * per_region, (k + 1) * per_region))
            )
            added = add_asset(
                self.as_(who),
                self.accounts[who],
                folder,
                regions=[region],
                nodes=[self.members[region].address],
                licence=NO_DP_LICENCE,
            )
            self.by_region[region] = added.asset_id
            worker = AssetWorker(
                self.chain,
                self.deployment,
                self.store,
                self.members[region],
                NodeConfig(workdir=self.settings.node_dir / region),
            )
            try:
                worker.poll()
            finally:
                worker.close()
        self.asset_ids = [self.by_region[r] for r in REGIONS]
        return self.asset_ids

    def form(self) -> str:
        coordinator = self.accounts["node"].local_account
        fed = form_federation(
            self.chain, self.deployment, coordinator, [self.members[r].address for r in REGIONS]
        )
        for region in REGIONS:
            join_federation(
                self.chain, self.deployment, self.members[region].local_account, fed.address
            )
        self.federation = str(fed.address)
        return self.federation

    def propose_to_federation(self, *, wtp_bps: int = 1000, min_share_bps: int = 5000) -> int:
        created = workflow.propose(
            self.as_("consumer"),
            self.accounts["consumer"],
            selection=self.asset_ids,
            model_spec=SPEC,
            validation=(VAL_X, VAL_Y),
            classes=NAMES,
            offer=10**18,
            wtp_bps=wtp_bps,
            node=self.federation,
            voting_period_s=120,
            min_share_bps=min_share_bps,
        )
        pid = created.proposal_id
        for region in REGIONS:
            who = PROVIDER_OF[region]
            workflow.vote(self.as_(who), self.accounts[who], pid, 0)
        self.chain.advance_time(131)
        workflow.tally(self.as_("stranger"), self.accounts["stranger"], pid)
        return pid

    def coordinator(self, pid: int) -> Coordinator:
        return load_coordinator(self.chain, self.deployment, self.store, self.accounts["node"], pid)

    def start_federated(self, pid: int) -> tuple[Coordinator, list[Any], list[int]]:
        """The coordinator quotes (its members' fees summed), the consumer starts training."""
        quote, signature, shares, fees = quote_federation(
            self.coordinator(pid), price_per_gflop=10**12
        )
        consumer = self.accounts["consumer"].local_account
        self.token.approve(consumer, self.market.address, quote.training_cost)
        self.market.start_training(consumer, pid, quote, signature)
        assert self.market.proposal(pid).status == ProposalStatus.TRAINING
        return self.coordinator(pid), shares, fees

    def member_by_address(self) -> dict[str, UnlockedAccount]:
        return {str(m.address): m for m in self.members.values()}


def clientapps(pid: int) -> set[int]:
    """The ClientApp processes a SuperNode started (one per message it handles)."""
    found = set()
    for child in _descendants(pid):
        try:
            if b"flwr-clientapp" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(child)
        except OSError:
            continue
    return found


def kill_in_second_round(
    supernode: Callable[[], SuperNodeProcess | None],
    stop: threading.Event,
    on_kill: Callable[[], None],
) -> threading.Thread:
    """Kill a region's SuperNode once it starts its second ClientApp (Flower starts one per
    message, so the second is round 2's): an event, not a clock, decides. ``on_kill`` runs
    first (the node's machine is gone: nothing restarts it)."""

    def watch() -> None:
        seen: set[int] = set()
        while not stop.is_set():
            node = supernode()
            if node is not None and node.running():
                seen |= clientapps(node.pid)
            if len(seen) >= 2 and node is not None:
                on_kill()
                stop_supernode(node, timeout_s=5)
                return
            stop.wait(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread
