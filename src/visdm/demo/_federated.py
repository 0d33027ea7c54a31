"""The demo's cross-region round: assets that may only be trained in two different regions.

Governance adds the regions ``eu`` and ``us`` and admits a node in each; three providers each
register new photos that only one region allows, keyed to that region's node, which attests
them. No single node may train them all, so bob's proposal names a federation: node1
coordinates, node-eu and node-us train. The demo starts node1's SuperLink and one SuperNode per
region as their own processes (TLS with a CA made for the round, only the two bound keys
accepted), trains with DP-SGD in each region's sandbox, values every sample with federated
TKNN-Shapley, pays one payout tree over both regions, and stops them all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visdm import session
from visdm.accounts import UnlockedAccount
from visdm.chain._federation import FederationContract
from visdm.chain.contracts import ProposalStatus
from visdm.datasets import load_fashion_mnist
from visdm.errors import InvalidProposalError, VisdmError
from visdm.federation.serve import FederationCoordinator, FederationMember, read_round
from visdm.market import workflow
from visdm.proposals import CreatedProposal

from ._cast import _png, _write, class_names, demo_spec, validation_arrays
from ._settle import tokens
from ._stage import TOKEN, Collect, Stage

__all__ = ["FederatedRound"]

#: which cast member's new photos each region allows (three owners: the market's minimum)
_REGION_OF = ("eu", "eu", "us")
_VOTING_S = 3600
_PRICE_PER_GFLOP = 10**15  # node1's own price
_ROUND_TIMEOUT_S = 900


class FederatedRound:
    """Two regional nodes and node1 as coordinator train one proposal across regions."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.workdir = stage.settings.node_dir / "federation" / "demo"
        self.members: dict[str, UnlockedAccount] = {}
        self.asset_region: dict[int, str] = {}
        self.fed = ""

    def play(self) -> None:
        # Flower's own logs (SuperLink, SuperNodes) go to their files; its Python loggers and
        # the node's warnings stay out of the demo's output
        quiet = [logging.getLogger(n) for n in ("flwr", "visdm.federation")]
        with Collect(logging.WARNING).on(quiet[0]), Collect(logging.WARNING).on(quiet[1]):
            self._regions()
            self._assets()
            self.fed = self._federation()
            pid = self._propose(self.fed)
            self._train(pid)

    # --- the steps --------------------------------------------------------------------------
    def _regions(self) -> None:
        from visdm.governance import add_region, admit_node

        stage = self.stage
        admin = stage.people["admin"].local_account
        with stage.step("regions") as info:
            conn = session.connect_deployed(stage.settings)
            registry = conn.deployment.stakeholder_registry(conn.client)
            # the regional nodes take no quotes of their own in the demo: node1's API answers
            endpoint = registry.compute_node(stage.people["node1"].address).endpoint
            for region in sorted(set(_REGION_OF)):
                add_region(stage.settings, admin, region)
                node = stage.new_account(f"node-{region}")
                session.connect(stage.settings).fund_from_dev_faucet(node.address)
                admit_node(
                    stage.settings,
                    admin,
                    node.address,
                    region=region,
                    endpoint=endpoint,
                    encryption_key=node.x25519_public.hex(),
                )
                self.members[region] = node
            info["detail"] = (
                "governance adds regions eu and us and admits node-eu and node-us there "
                "(node1 stays in region local)"
            )

    def _assets(self) -> None:
        from visdm.assets import add_asset
        from visdm.compute import AssetWorker, NodeConfig

        stage, config = self.stage, self.stage.config
        n = 100 if not config.quick else 90
        first = config.images_per_provider * (len(config.cast) + 1)  # after the newcomer's
        x, y = load_fashion_mnist("train", limit=first + n * len(_REGION_OF))
        names = class_names()
        with stage.step("regional assets") as info:
            gas = 0
            for k, region in enumerate(_REGION_OF):
                who = stage.config.cast[k]
                idx = range(first + k * n, first + (k + 1) * n)
                folder = Path(stage.settings.home) / "photos" / who / f"asset-{region}"
                _write(
                    folder,
                    [f"{who}-{region}-{i:05d}.png" for i in idx],
                    [_png(x[i]) for i in idx],
                    [names[int(y[i])] for i in idx],
                )
                added = add_asset(
                    stage.as_(who),
                    stage.people[who],
                    folder,
                    regions=[region],
                    nodes=[self.members[region].address],
                )
                gas += added.gas_used
                stage.assets.setdefault(who, []).append(added.asset_id)
                stage.owner_of[added.asset_id] = who
                self.asset_region[added.asset_id] = region
            conn = session.connect_deployed(stage.settings)
            for region, node in self.members.items():
                worker = AssetWorker(
                    conn.client,
                    conn.deployment,
                    session.open_store(stage.settings),
                    node,
                    NodeConfig(workdir=stage.settings.node_dir / "regions" / region),
                )
                try:
                    worker.poll()
                finally:
                    worker.close()
            info["gas"] = gas
            info["detail"] = (
                f"{', '.join(stage.config.cast[:3])} register {n} new photos each that only "
                f"{'/'.join(_REGION_OF)} allow, keyed to that region's node, which attests them"
            )

    def _federation(self) -> str:
        from visdm.federation.membership import form_federation, join_federation

        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        with stage.step("federation") as info:
            # node1 alone may not train assets its region is not allowed: refused before escrow
            try:
                self._proposal(str(stage.people["node1"].address))
            except InvalidProposalError as exc:
                info["notes"].append(f"naming node1 alone is refused: {str(exc)[:140]}…")
            else:
                raise VisdmError("node1 alone was allowed to train assets of other regions")
            node1 = stage.people["node1"].local_account
            fed = form_federation(
                conn.client, conn.deployment, node1, [self.members[r].address for r in ("eu", "us")]
            )
            for region in ("eu", "us"):
                join_federation(
                    conn.client, conn.deployment, self.members[region].local_account, fed.address
                )
            info["detail"] = (
                f"node1 deploys and registers federation {fed.address} of node-eu and node-us; "
                "each checks its code, market and membership, then joins"
            )
        return str(fed.address)

    def _spec(self) -> dict[str, Any]:
        return {
            **demo_spec(self.stage.config),
            "epochs": 1,
            "hidden": [32],
            "optimizer": "sgd",
            "learning_rate": 0.2,
        }

    def _proposal(self, node: str) -> CreatedProposal:
        stage = self.stage
        return workflow.propose(
            stage.as_("bob"),
            stage.people["bob"],
            selection=sorted(self.asset_region),
            model_spec=self._spec(),
            validation=validation_arrays(stage.config),
            classes=class_names(),
            offer=stage.config.offer_tokens * TOKEN,
            wtp_bps=1000,
            node=node,
            voting_period_s=_VOTING_S,
            min_share_bps=5000,
        )

    def _propose(self, fed: str) -> int:
        stage = self.stage
        with stage.step("federated proposal") as info:
            created = self._proposal(fed)
            pid = int(created.proposal_id)
            gas = sum(t.gas_used for t in created.transactions)
            for who in {stage.owner_of[a] for a in self.asset_region}:
                gas += workflow.vote(stage.as_(who), stage.people[who], pid, 0).gas_used
            session.connect(stage.settings).advance_time(_VOTING_S + 60)
            gas += workflow.tally(stage.as_("admin"), stage.people["admin"], pid).gas_used
            info["gas"] = gas
            info["detail"] = (
                f"proposal {pid}: bob names the federation; its owners accept "
                f"{stage.config.offer_tokens} tokens"
            )
        return pid

    def _train(self, pid: int) -> None:
        from visdm.chain.client import ChainClient
        from visdm.federation.serve import NodeHandles

        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        store = session.open_store(stage.settings)
        node1 = stage.people["node1"]

        def handles(node: UnlockedAccount) -> NodeHandles:  # each node its own chain client
            return NodeHandles(ChainClient(conn.client.rpc_url), conn.deployment, store, node)

        fed = self.fed
        coordinator = FederationCoordinator(
            handles(node1), fed, self.workdir / "node1", price_per_gflop=_PRICE_PER_GFLOP
        )
        members = [
            FederationMember(handles(node), fed, self.workdir / name)
            for name, node in sorted(self.members.items())
        ]
        with stage.step("federated quote") as info:
            coordinator.poll()  # the approved proposal: node1 announces its round
            doc = read_round(conn.client, store, fed, pid)
            if doc is None:
                raise VisdmError(f"node1 did not announce proposal {pid}'s round")
            offer, tx = workflow.start_training(stage.as_("bob"), stage.people["bob"], pid)
            info["gas"] = tx.gas_used
            info["detail"] = (
                "node1 announces the round on the federation (quote, shares, SuperLink, CA): "
                + "; ".join(
                    f"{s.region} {s.samples} samples, fee {f / TOKEN:.8f}"
                    for s, f in zip(doc.shares, doc.fees, strict=True)
                )
                + f" tokens; bob starts from the announced quote, "
                f"{offer.quote.training_cost / TOKEN:.8f} tokens signed by node1"
            )
        self._run(pid, coordinator, members)

    def _run(
        self, pid: int, coordinator: FederationCoordinator, members: list[FederationMember]
    ) -> None:
        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        with stage.step("federated training") as info:
            market = conn.deployment.training_market(conn.client)
            stop = threading.Event()
            polls: list[Callable[[], None]] = [coordinator.poll, *(m.poll for m in members)]
            loops = [
                threading.Thread(target=_loop, args=(poll, stop), daemon=True) for poll in polls
            ]
            for loop in loops:
                loop.start()
            try:
                deadline = time.monotonic() + _ROUND_TIMEOUT_S
                while market.proposal(pid).status == ProposalStatus.TRAINING:
                    if time.monotonic() > deadline:
                        raise VisdmError(f"the federated round of proposal {pid} did not finish")
                    time.sleep(0.5)
                coordinator.wait(timeout_s=120)
                # released at once (no court yet): the loops collect and withdraw the fees
                contract = coordinator.view.contract
                for _ in range(240):
                    owed = [contract.owed_to(m.account.address) for m in members]
                    done = all(pid not in m.prepared for m in members)
                    if pid in coordinator.collected and done and not any(owed):
                        break
                    time.sleep(0.5)
            finally:
                stop.set()
                for loop in loops:
                    loop.join(timeout=60)
                for member in members:
                    member.stop()
            document = coordinator.outcomes.get(pid) or {}
            if document.get("status") in ("failed", "error") or "federation" not in document:
                raise VisdmError(f"the federated round failed: {document.get('reason')}")
            run = document["federation"]
            regions = run["regions"]
            info["detail"] = (
                f"the members bind their SuperNode keys on chain; node1's SuperLink and "
                f"{len(regions)} SuperNodes, each its own process, {run['rounds']} FedAvg rounds "
                f"in each region's sandbox: accuracy {document['accuracyBps'] / 100:.1f}%; "
                + ", ".join(f"{r} ε = {v['epsilon']:.2f}" for r, v in sorted(regions.items()))
                + f"; {run['bytesIn'] + run['bytesOut']:,} bytes through the SuperLink"
            )
            info["notes"].append(
                "only the model's weights, counts and values left the regions; every sample "
                "valued with federated TKNN-Shapley; the members' decrypted shares are deleted"
            )
        self._pay(pid, coordinator.view.contract)

    def _pay(self, pid: int, contract: FederationContract) -> None:
        stage = self.stage
        doc = read_round(
            session.connect(stage.settings), session.open_store(stage.settings), self.fed, pid
        )
        assert doc is not None  # announced above
        with stage.step("federated payouts") as info:
            gas, paid = 0, []
            for who in sorted({stage.owner_of[a] for a in self.asset_region}):
                (receipt,) = workflow.claim(stage.as_(who), stage.people[who], [pid])
                gas += receipt.gas_used or 0
                paid.append(f"{who} {tokens(receipt.amount)}")
            settled = contract.fees_of(pid)
            info["gas"] = gas
            info["detail"] = (
                f"one payout tree over both regions: {', '.join(paid)} tokens claimed; node1 "
                "collected the members' fees ("
                + ", ".join(
                    f"{s.region} {f / TOKEN:.8f}" for s, f in zip(doc.shares, settled, strict=True)
                )
                + " tokens) and node-eu and node-us withdrew them"
            )


def _loop(poll: Callable[[], None], stop: threading.Event) -> None:
    """One node's ``visdm federation serve`` loop, as a thread of the demo."""
    while not stop.is_set():
        try:
            poll()
        except VisdmError as exc:  # a node logs and goes on, as the real loop does
            logging.getLogger("visdm.federation.serve").warning("%s", exc)
        stop.wait(0.5)
