"""Play the whole marketplace on embedded defaults (what ``make demo`` runs).

A local anvil chain, a local content store and a local compute node, all started here and
stopped at the end, in one data directory: accounts and registration (Alg. 1), twenty providers'
assets attested by the node (Alg. 2), the index and a curated search, a proposal negotiated by
liquid-democracy votes into a counter offer that the consumer accepts (Alg. 3), DP training in
the sandbox with the model sealed to the consumer, per-sample values and Merkle payouts that the
providers claim (Alg. 4) — and a second proposal whose accuracy threshold cannot be met, which
ends in a refund.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from visdm import session
from visdm.accounts import UnlockedAccount, create_account, load_account
from visdm.assets import add_asset
from visdm.chain.anvil import chain_down, chain_up
from visdm.chain.contracts import ProposalStatus
from visdm.compute import AssetWorker, JobJournal, NodeConfig, TrainingConfig, TrainingWorker
from visdm.config import Settings
from visdm.errors import InvalidInputError, VisdmError
from visdm.market import workflow
from visdm.proposals import CreatedProposal, SelectedAsset
from visdm.types import Role

from ._cast import (
    ACCEPT,
    ASK_MORE,
    COPIER,
    COUNTER_OFFERER,
    DELEGATIONS,
    NOISY,
    DemoConfig,
    class_names,
    prepare_folders,
    validation_arrays,
)

__all__ = ["DemoReport", "DemoStep", "Progress", "run_demo"]

_PASSWORD = "visdm-demo"  # noqa: S105 - throw-away keystores in the demo's own directory
_TOKEN = 10**18
_FAST_SCRYPT_N = 2**12  # demo keystores only: real accounts use the default cost


@dataclass(slots=True)
class DemoStep:
    """One step: what happened, how long it took, the gas it cost."""

    name: str
    detail: str
    seconds: float
    gas_used: int | None = None


@dataclass(slots=True)
class DemoReport:
    """Everything the demo did; ``visdm demo`` prints it and writes it as ``report.json``."""

    home: str
    config: dict[str, Any] = field(default_factory=dict)
    rpc_url: str = ""
    chain_id: int = 0
    steps: list[DemoStep] = field(default_factory=list)
    providers: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    values: list[dict[str, Any]] = field(default_factory=list)
    total_seconds: float = 0.0

    def gas_by_step(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            if s.gas_used:
                out[s.name] = out.get(s.name, 0) + s.gas_used
        return out


class Progress:
    """What the demo reports while it runs (the CLI draws bars; tests pass nothing)."""

    def step(self, item: DemoStep) -> None:
        """A step finished."""

    @contextmanager
    def task(self, description: str, total: float) -> Iterator[Callable[[float], None]]:
        """A long step: the callable sets how much of ``total`` is done."""
        yield lambda _done: None


def run_demo(
    home: Path,
    *,
    quick: bool = False,
    progress: Progress | None = None,
) -> DemoReport:
    """Play the market in ``home`` (which must be empty or absent) and report it."""
    if home.exists() and any(home.iterdir()):
        raise InvalidInputError(f"the demo needs an empty data directory; {home} is not empty")
    config = DemoConfig.for_size(quick)
    started = time.perf_counter()
    settings = Settings(home=home)
    report = DemoReport(home=str(home), config=_config_dict(config))
    game = _Game(settings, config, report, progress or Progress())
    node, _ = chain_up(settings.chain_dir)
    report.rpc_url = node.rpc_url
    try:
        game.play()
    finally:
        game.close()
        chain_down(settings.chain_dir)
    report.total_seconds = round(time.perf_counter() - started, 2)
    return report


def _config_dict(config: DemoConfig) -> dict[str, Any]:
    return {
        "quick": config.quick,
        "providers": len(config.cast),
        "images_per_provider": config.images_per_provider,
        "validation_images": config.validation_images,
        "offer_tokens": config.offer_tokens,
        "wtp_bps": config.wtp_bps,
        "epochs": config.epochs,
        "dp_epsilon": config.dp_epsilon,
    }


class _Game:
    def __init__(
        self, settings: Settings, config: DemoConfig, report: DemoReport, progress: Progress
    ) -> None:
        self.settings, self.config, self.report, self.progress = settings, config, report, progress
        self.people: dict[str, UnlockedAccount] = {}
        self.assets: dict[str, int] = {}
        self._api: Any = None

    # --- bookkeeping --------------------------------------------------------------------------
    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        t0 = time.perf_counter()
        info: dict[str, Any] = {"detail": "", "gas": 0}
        yield info
        item = DemoStep(
            name, info["detail"], round(time.perf_counter() - t0, 2), info["gas"] or None
        )
        self.report.steps.append(item)
        self.progress.step(item)

    def as_(self, name: str) -> Settings:
        return replace(self.settings, account=name)

    def close(self) -> None:
        if self._api is not None:
            self._api.stop()

    # --- the play -----------------------------------------------------------------------------
    def play(self) -> None:
        self._accounts()
        self._deploy_and_register()
        self._assets()
        proposal = self._negotiate()
        self._train(proposal, expect=ProposalStatus.COMPLETED)
        self._deliver_and_claim(proposal)
        self._refund_round()

    def _accounts(self) -> None:
        cast = self.config.cast
        names = ("admin", "node1", "bob", *cast)
        with self.step("accounts") as info:
            for name in names:
                create_account(self.settings.keystore_dir, name, _PASSWORD, scrypt_n=_FAST_SCRYPT_N)
                self.people[name] = load_account(self.settings.keystore_dir, name, _PASSWORD)
            info["detail"] = (
                f"{len(names)} encrypted keystores (admin, node1, bob, {len(cast)} providers)"
            )

    def _deploy_and_register(self) -> None:
        from visdm.compute._serve import ApiServer
        from visdm.compute.api import QuoteService, create_app
        from visdm.governance import admit_node

        with self.step("deploy") as info:
            deployment = session.deploy(self.settings, self.people["admin"].local_account)
            self.report.chain_id = deployment.chain_id
            contracts = {c.address: c for c in deployment.contracts.values()}.values()
            info["gas"] = sum(c.gas_used for c in contracts)
            info["detail"] = f"{len(deployment.contracts)} contracts on chain {deployment.chain_id}"
        node = self.people["node1"]
        # the node's HTTP API: quotes are asked for over real HTTP, as from any consumer
        self.settings.node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        quotes = QuoteService(
            session.connect(self.settings),
            session.connect_deployed(self.settings).deployment,
            session.open_store(self.settings),
            node,
            self._training_config(),
        )
        self._api = ApiServer(
            create_app(quotes, self.settings.node_dir / "jobs.sqlite3"),
            "127.0.0.1",
            0,
            self.settings.node_dir / "api.json",
        )
        url = self._api.start()
        with self.step("admit node") as info:
            admit_node(
                self.settings,
                self.people["admin"].local_account,
                node.address,
                region="local",
                endpoint=url,
                encryption_key=node.x25519_public.hex(),
            )
            info["detail"] = f"node1 {node.address}, API {url}"
        with self.step("register") as info:
            for name in ("bob", *self.config.cast):
                role = Role.CONSUMER if name == "bob" else Role.PROVIDER
                account = self.people[name]
                session.register(self.as_(name), account.local_account, role, account.x25519_public)
            info["detail"] = f"bob as consumer, {len(self.config.cast)} providers"

    def _training_config(self) -> TrainingConfig:
        return TrainingConfig(workdir=self.settings.node_dir, price_per_gflop=10**15)

    def _assets(self) -> None:
        with self.step("photos") as info:
            providers = prepare_folders(Path(self.settings.home) / "photos", self.config)
            info["detail"] = (
                f"{self.config.images_per_provider} Fashion-MNIST images each; "
                f"{', '.join(sorted(NOISY))} mislabel 40%; {COPIER} re-uploads ada's as JPEG"
            )
        with (
            self.step("asset add") as info,
            self.progress.task("providers register assets", len(providers)) as advance,
        ):
            gas = 0
            for k, name in enumerate(self.config.cast):
                added = add_asset(self.as_(name), self.people[name], providers[name].folder)
                self.assets[name] = added.asset_id
                gas += added.gas_used
                advance(k + 1)
            info["gas"] = gas
            info["detail"] = f"{len(providers)} assets encrypted, stored, signed and registered"
        self._providers = providers
        conn = session.connect_deployed(self.settings)
        with self.step("node attests") as info:
            worker = AssetWorker(
                conn.client,
                conn.deployment,
                session.open_store(self.settings),
                self.people["node1"],
                NodeConfig(workdir=self.settings.node_dir),
            )
            try:
                worker.poll()
                outcomes = worker.outcomes()
            finally:
                worker.close()
            attested = sum(1 for o in outcomes if o.outcome == "attested")
            info["detail"] = f"{attested} assets decrypted in memory, described and attested"

    def _search(self, save: str, **filters: Any) -> list[SelectedAsset]:
        from visdm.index import (
            SearchFilters,
            load_saved_search,
            search_index,
            summarize_index,
            sync_index,
        )

        sync_index(self.settings)
        chosen = SearchFilters(**filters)
        result = search_index(self.settings, chosen, limit=5, save=save)
        summary = summarize_index(self.settings, chosen)
        saved = load_saved_search(self.settings, save)
        self.report.search[save] = {
            "filters": filters,
            "matches": result.total,
            "labels": dict(summary.labels),
        }
        return [SelectedAsset(s.asset_id, tuple(s.sample_indexes)) for s in saved.selection]

    def _spec(self) -> dict[str, Any]:
        return {
            "architecture": "mlp",
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "epochs": self.config.epochs,
            "batch_size": 64,
            "optimizer": "adam",
            "learning_rate": 0.005,
            "hidden": [128],
            "dp": {"target_epsilon": self.config.dp_epsilon, "delta": 1e-5, "max_grad_norm": 1.0},
        }

    def _propose(self, selection: list[SelectedAsset], offer: int, wtp_bps: int) -> CreatedProposal:
        return workflow.propose(
            self.as_("bob"),
            self.people["bob"],
            selection=selection,
            model_spec=self._spec(),
            validation=validation_arrays(self.config),
            classes=class_names(),
            offer=offer,
            wtp_bps=wtp_bps,
            node=self.people["node1"].address,
            voting_period_s=3600,
        )

    def _negotiate(self) -> int:
        bob = self.people["bob"]
        offer = self.config.offer_tokens * _TOKEN
        with self.step("delegate") as info:
            gas = 0
            for who, to in DELEGATIONS.items():
                if who in self.people and to in self.people:
                    tx = workflow.delegate(self.as_(who), self.people[who], self.people[to].address)
                    gas += tx.gas_used
            info["gas"] = gas
            info["detail"] = "lu → kai → jo → ivy (3 hops); others delegate to ivy directly"
        with self.step("index and search") as info:
            selection = self._search("round-1")
            info["detail"] = (
                f"{sum(len(s.indexes) for s in selection)} samples in {len(selection)} assets "
                "(every attested sample), saved as search round-1"
            )
        with self.step("propose") as info:
            created = self._propose(selection, offer, self.config.wtp_bps)
            info["gas"] = sum(t.gas_used for t in created.transactions)
            info["detail"] = (
                f"proposal {created.proposal_id}: offer {self.config.offer_tokens} tokens, "
                f"WTP {self.config.wtp_bps / 100:g}% on {created.document.validation.samples} "
                "sealed validation images, "
                f"DP ε={self.config.dp_epsilon:g}"
            )
        pid = created.proposal_id
        with self.step("vote") as info:
            gas, voters = 0, 0
            for who in self.config.cast:
                ask = self._ask(who, offer)
                if ask is None:
                    continue
                gas += workflow.vote(self.as_(who), self.people[who], pid, ask).gas_used
                voters += 1
            info["gas"] = gas
            asks = ["ivy asks +20%"] + (["fay +10%"] if "fay" in self.config.cast else [])
            info["detail"] = f"{voters} direct votes: {', '.join(asks)}, the others accept"
        with self.step("tally") as info:
            session.connect(self.settings).advance_time(3600 + 60)
            receipt = workflow.tally(self.as_("admin"), self.people["admin"], pid)
            info["gas"] = receipt.gas_used
            outcome = receipt.outcome
            info["detail"] = (
                f"{outcome.status.name.lower()} at {outcome.clearing_price / _TOKEN:g} tokens "
                f"(weight {outcome.participating_weight}/{outcome.total_weight})"
            )
        self.report.rounds.append(
            {
                "proposalId": pid,
                "offer": offer,
                "outcome": outcome.status.name.lower(),
                "clearingPrice": outcome.clearing_price,
                "participatingWeight": outcome.participating_weight,
                "totalWeight": outcome.total_weight,
            }
        )
        if outcome.status == ProposalStatus.COUNTERED:
            with self.step("accept counter") as info:
                info["gas"] = workflow.accept_counter(self.as_("bob"), bob, pid).gas_used
                info["detail"] = f"bob tops the escrow up to {outcome.clearing_price / _TOKEN:g}"
        return pid

    def _ask(self, who: str, offer: int) -> int | None:
        if who == COUNTER_OFFERER:
            return offer * 12 // 10
        if who in ASK_MORE:
            return offer * 11 // 10
        if who in ACCEPT:
            return 0
        return None

    def _train(self, pid: int, *, expect: ProposalStatus) -> dict[str, Any]:
        bob = self.people["bob"]
        with self.step("train") as info:
            offer, tx = workflow.start_training(self.as_("bob"), bob, pid)
            info["gas"] = tx.gas_used
            info["detail"] = (
                f"quote over HTTP: {offer.design['params']:,} parameters, "
                f"{offer.quote.training_cost / _TOKEN:.6f} tokens for "
                f"{offer.design['samples']} samples × {offer.design['epochs']} epochs"
            )
        conn = session.connect_deployed(self.settings)
        with self.step("node trains") as info:
            self._run_with_progress(pid)
            market = conn.deployment.training_market(conn.client)
            record = market.proposal(pid)
            if record.status != expect:
                raise VisdmError(
                    f"proposal {pid} ended {record.status.name.lower()}, expected "
                    f"{expect.name.lower()}"
                )
            events = market.logs("ResultSubmitted", where={"proposalId": pid})
            receipt = conn.client.w3.eth.get_transaction_receipt(events[0]["transactionHash"])
            info["gas"] = int(receipt["gasUsed"])
            result = workflow.training_result(self.settings, pid) or {}
            info["detail"] = (
                f"accuracy {record.accuracy_bps / 100:.2f}% (WTP {record.wtp_bps / 100:g}%), "
                f"ε spent {result.get('epsilonSpent') or 0:.2f}, "
                f"{'met' if result.get('wtpMet') else 'missed'}"
            )
        round_info = next(r for r in self.report.rounds if r["proposalId"] == pid)
        round_info.update(
            status=record.status.name.lower(),
            price=record.price if expect == ProposalStatus.COMPLETED else 0,
            accuracyBps=record.accuracy_bps,
            wtpBps=record.wtp_bps,
            epsilonSpent=result.get("epsilonSpent"),
            trainSamples=result.get("trainSamples"),
            trainingCost=offer.quote.training_cost,
        )
        return result

    def _run_with_progress(self, pid: int) -> None:
        """The node's training worker in its own thread (it owns its connections there); this
        thread draws the job's progress from the node's journal."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                conn = session.connect_deployed(self.settings)
                worker = TrainingWorker(
                    conn.client,
                    conn.deployment,
                    session.open_store(self.settings),
                    self.people["node1"],
                    self._training_config(),
                )
                try:
                    worker.poll()
                finally:
                    worker.close()
            except BaseException as exc:  # re-raised in the main thread below
                errors.append(exc)

        thread = threading.Thread(target=run, name="demo-node")
        journal_path = self.settings.node_dir / "jobs.sqlite3"
        with self.progress.task(f"node trains proposal {pid} in the sandbox", 1.0) as advance:
            thread.start()
            while thread.is_alive():
                thread.join(timeout=0.5)
                if journal_path.exists():
                    journal = JobJournal(journal_path, read_only=True)
                    try:
                        job = journal.get(pid)
                    except sqlite3.Error:  # the worker is still creating its tables
                        job = None
                    finally:
                        journal.close()
                    if job is not None and job.progress is not None:
                        advance(job.progress)
        if errors:
            raise errors[0]

    def _deliver_and_claim(self, pid: int) -> None:
        bob = self.people["bob"]
        with self.step("model get") as info:
            got = workflow.get_model(
                self.as_("bob"), bob, pid, Path(self.settings.home) / "model.safetensors"
            )
            self.report.model = got
            info["detail"] = (
                f"bob decrypts the {got['architecture']} model, node signature and hash verified"
            )
        result = workflow.training_result(self.settings, pid) or {}
        scores = json.loads(session.open_store(self.settings).get(result["scores"]["cid"]))
        amounts = {a: int(v) for a, v in result["payouts"]["amounts"].items()}
        by_address = {self.people[n].address: n for n in self.config.cast}
        with (
            self.step("claim") as info,
            self.progress.task("providers claim", len(self.config.cast)) as advance,
        ):
            gas, claimed = 0, {}
            for k, name in enumerate(self.config.cast):
                for r in workflow.claim(self.as_(name), self.people[name], [pid]):
                    claimed[name] = r.amount if r.note == "claimed" else 0
                    gas += r.gas_used
                advance(k + 1)
            info["gas"] = gas
            info["detail"] = f"{sum(1 for v in claimed.values() if v)} providers claimed"
        price = next(r["price"] for r in self.report.rounds if r["proposalId"] == pid)
        self.report.values = [
            {
                "provider": by_address.get(s["provider"], s["provider"]),
                "value": s["value"],
                "flags": s["flags"],
            }
            for s in scores["samples"]
        ]
        for name in self.config.cast:
            address = self.people[name].address
            rows = [s for s in scores["samples"] if s["provider"] == address]
            paid = amounts.get(address, 0)
            self.report.providers.append(
                {
                    "name": name,
                    "address": address,
                    "role": _role(name, self._providers[name].mislabelled),
                    "samples": len(rows),
                    "mislabelled": self._providers[name].mislabelled,
                    "flaggedNoisy": sum(1 for s in rows if "noisy" in s["flags"]),
                    "flaggedCopied": sum(1 for s in rows if "copied" in s["flags"]),
                    "valueShare": paid / price if price else 0.0,
                    "payout": paid,
                    "payoutPerSample": paid / len(rows) if rows else 0.0,
                    "claimed": claimed.get(name, 0),
                }
            )

    def _refund_round(self) -> None:
        bob = self.people["bob"]
        with self.step("propose again") as info:
            selection = self._search("round-2", exclude_flags=("noisy",))
            created = self._propose(selection, self.config.offer_tokens * _TOKEN // 2, 9990)
            pid = created.proposal_id
            info["gas"] = sum(t.gas_used for t in created.transactions)
            info["detail"] = (
                f"proposal {pid}: samples flagged noisy in round 1 searched out; "
                "WTP 99.9% (unreachable)"
            )
        with self.step("vote and tally") as info:
            gas = 0
            for who in self.config.cast:
                if who in ACCEPT or who == COUNTER_OFFERER:
                    gas += workflow.vote(self.as_(who), self.people[who], pid, 0).gas_used
            session.connect(self.settings).advance_time(3600 + 60)
            receipt = workflow.tally(self.as_("admin"), self.people["admin"], pid)
            gas += receipt.gas_used
            info["gas"] = gas
            info["detail"] = f"{receipt.outcome.status.name.lower()} at the offer"
        self.report.rounds.append(
            {
                "proposalId": pid,
                "offer": self.config.offer_tokens * _TOKEN // 2,
                "outcome": receipt.outcome.status.name.lower(),
                "clearingPrice": receipt.outcome.clearing_price,
            }
        )
        self._train(pid, expect=ProposalStatus.WTP_MISSED)
        with self.step("refund") as info:
            amount, tx = workflow.withdraw(self.as_("bob"), bob)
            info["gas"] = tx.gas_used if tx else 0
            info["detail"] = f"bob withdraws {amount / _TOKEN:g} tokens: the data price came back"
        self.report.rounds[-1]["refund"] = amount


def _role(name: str, mislabelled: int) -> str:
    if name == COPIER:
        return "copier"
    if mislabelled:
        return "noisy"
    if name == COUNTER_OFFERER:
        return "counter-offer"
    if name in DELEGATIONS:
        return "delegates"
    return "honest"
