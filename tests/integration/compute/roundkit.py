"""A small marketplace on the session anvil for training-round tests: two providers with real
Fashion-MNIST assets attested by a node, a consumer with a real X25519 key, and helpers to
propose, vote, tally and start training through the SDK."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount
from PIL import Image

from visdm.accounts import UnlockedAccount, import_account, load_account
from visdm.assets import add_asset
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.compute import AssetWorker, NodeConfig, TrainingConfig, TrainingWorker
from visdm.compute.api import QuoteService
from visdm.config import Settings
from visdm.datasets import load_fashion_mnist
from visdm.manifest import Licence
from visdm.market import workflow
from visdm.storage import LocalStore

NAMES = [
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
]
TRAIN_X, TRAIN_Y = load_fashion_mnist("train", limit=400)
VAL_X, VAL_Y = load_fashion_mnist("test", limit=300)
PASSWORD = "pw"
NO_DP_LICENCE = Licence(("training",), dp_required=False)

MLP_SPEC: dict[str, Any] = {
    "architecture": "mlp",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 3,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 0.003,
    "hidden": [32],
}


def write_folder(folder: Path, indices: list[int]) -> Path:
    folder.mkdir(parents=True)
    rows = ["filename,label"]
    for i in indices:
        Image.fromarray(TRAIN_X[i]).save(folder / f"img{i:04d}.png")
        rows.append(f"img{i:04d}.png,{NAMES[int(TRAIN_Y[i])]}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


class Round:
    """Settings, accounts and assets for one test (the chain snapshot is reverted after it)."""

    def __init__(
        self, chain: ChainClient, deployment: Deployment, home: Path, roles: dict[str, LocalAccount]
    ) -> None:
        self.chain, self.deployment = chain, deployment
        self.settings = Settings(home=home, rpc_url=chain.rpc_url)
        deployment.save(self.settings.deployments_dir)
        self.accounts: dict[str, UnlockedAccount] = {}
        for name in ("provider", "provider2", "consumer", "node", "stranger"):
            import_account(
                self.settings.keystore_dir, name, bytes(roles[name].key), PASSWORD, scrypt_n=1024
            )
            self.accounts[name] = load_account(self.settings.keystore_dir, name, PASSWORD)
        self.registry = deployment.stakeholder_registry(chain)
        self.market = deployment.training_market(chain)
        self.token = deployment.payment_token(chain)
        node = self.accounts["node"]
        self.registry.admit_node(
            roles["governance"],
            node.address,
            signer=node.address,
            region="local",
            encryption_key=node.x25519_public,
            endpoint="http://127.0.0.1:9/",
        )
        consumer = self.accounts["consumer"]
        self.registry.rotate_encryption_key(consumer.local_account, consumer.x25519_public)
        self.store = LocalStore(self.settings.store_dir)
        self.asset_ids: list[int] = []

    def as_(self, name: str) -> Settings:
        return replace(self.settings, account=name)

    def add_assets(
        self, tmp: Path, *, per_provider: int = 60, licence: Licence = NO_DP_LICENCE
    ) -> list[int]:
        """Each provider registers ``per_provider`` images; the default licence lets the node
        train without DP, which keeps tests of the node's mechanics fast (the DP default is
        tested on its own)."""
        for k, who in enumerate(("provider", "provider2")):
            folder = write_folder(tmp / who, list(range(k * per_provider, (k + 1) * per_provider)))
            added = add_asset(self.as_(who), self.accounts[who], folder, licence=licence)
            self.asset_ids.append(added.asset_id)
        self.attest()
        return self.asset_ids

    def attest(self) -> None:
        """The node attests every asset registered so far."""
        worker = AssetWorker(
            self.chain,
            self.deployment,
            self.store,
            self.accounts["node"],
            NodeConfig(workdir=self.settings.node_dir),
        )
        try:
            worker.poll()
        finally:
            worker.close()

    def propose(
        self,
        *,
        wtp_bps: int,
        offer: int = 10**18,
        spec: dict[str, Any] | None = None,
        selection: list[int] | None = None,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> int:
        """Propose over ``selection`` (default: every asset added) as the consumer."""
        created = workflow.propose(
            self.as_("consumer"),
            self.accounts["consumer"],
            selection=self.asset_ids if selection is None else selection,
            model_spec=spec or MLP_SPEC,
            validation=(VAL_X, VAL_Y) if validation is None else validation,
            classes=NAMES,
            offer=offer,
            wtp_bps=wtp_bps,
            node=self.accounts["node"].address,
            voting_period_s=120,
        )
        return created.proposal_id

    def approve(self, pid: int, asks: tuple[int, int] = (0, 0)) -> None:
        for who, ask in zip(("provider", "provider2"), asks, strict=True):
            workflow.vote(self.as_(who), self.accounts[who], pid, ask)
        self.chain.advance_time(131)
        workflow.tally(self.as_("stranger"), self.accounts["stranger"], pid)

    def training_config(self, **kwargs: Any) -> TrainingConfig:
        return TrainingConfig(workdir=self.settings.node_dir, **kwargs)

    def quotes(self, **kwargs: Any) -> QuoteService:
        return QuoteService(
            self.chain,
            self.deployment,
            self.store,
            self.accounts["node"],
            self.training_config(**kwargs),
        )

    def start(self, pid: int, **kwargs: Any) -> int:
        """Quote in-process (no HTTP), escrow the cost and start; returns the cost."""
        answer = self.quotes(**kwargs).quote(pid)
        from visdm.chain.contracts import Quote

        q = answer["quote"]
        quote = Quote(pid, int(q["trainingCostWei"]), int(q["maxDuration"]), int(q["expiry"]))
        consumer = self.accounts["consumer"].local_account
        self.token.approve(consumer, self.market.address, quote.training_cost)
        self.market.start_training(consumer, pid, quote, bytes.fromhex(answer["signature"][2:]))
        assert self.market.proposal(pid).status == ProposalStatus.TRAINING
        return quote.training_cost

    def trainer(self, **kwargs: Any) -> TrainingWorker:
        return TrainingWorker(
            self.chain,
            self.deployment,
            self.store,
            self.accounts["node"],
            self.training_config(**kwargs),
        )

    def result(self, pid: int) -> dict[str, Any]:
        document = workflow.training_result(self.settings, pid)
        assert document is not None
        return document

    def scores(self, pid: int) -> dict[str, Any]:
        cid = self.result(pid)["scores"]["cid"]
        return json.loads(self.store.get(cid))


def val_arrays() -> tuple[np.ndarray, np.ndarray]:
    return VAL_X, VAL_Y
