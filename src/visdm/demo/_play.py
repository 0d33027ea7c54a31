"""Play the whole marketplace on embedded defaults (what ``make demo`` runs).

A local anvil chain, a local content store and a local compute node, all started here and
stopped at the end, in one data directory, under the market's default parameters and the
default licence (DP-SGD required, ε ≤ 8): accounts and registration (Alg. 1), twenty
providers' assets attested by the node (Alg. 2), the index and a curated search, a proposal
negotiated by liquid-democracy votes — five owners vote through a collective's policy
(:mod:`._collective`) — into a counter offer that the consumer accepts while one
provider's REJECT takes its data out of the round (Alg. 3), DP training in the sandbox with a
seed only the node knows, the consumer's validation set screened against the selection, the
model sealed to the consumer, per-sample values and payouts per asset that the providers claim
in one ``claimMany`` each (Alg. 4) — then a proposal whose accuracy threshold cannot be met
(refunded after training), one that rejections push below the consumer's minimum share
(refunded without training), and the unclaimed payout swept to the treasury after the claim
period. Then a newcomer's asset is scored for the scoring pool and a search by expected value
chooses its samples (:mod:`._newcomer`); the full demo trains across two regions
(:mod:`._federated`), every demo catches a cheating node (:mod:`._cheat`), and the full demo
proves a round's accuracy (:mod:`._zk`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visdm import session
from visdm.assets import add_asset
from visdm.chain.anvil import chain_down, chain_up
from visdm.chain.contracts import REJECT_ASK, ProposalStatus
from visdm.compute import TrainingConfig, TrainingWorker
from visdm.config import Settings
from visdm.errors import InvalidInputError, VisdmError
from visdm.market import workflow
from visdm.market.model_card import checked_model_card
from visdm.market.tally import TallyReceipt
from visdm.proposals import CreatedProposal, SelectedAsset
from visdm.types import Role

from ._cast import (
    COPIER,
    COUNTER_OFFERER,
    DELEGATIONS,
    FRIEND,
    LATE_CLAIMER,
    NOISY,
    REJECTER,
    TWO_ASSETS,
    DemoConfig,
    class_names,
    first_ask,
    prepare_folders,
    validation_arrays,
    vote_text,
)
from ._cheat import CheatingRound
from ._collective import DemoCollective
from ._compare import compare_specs
from ._federated import FederatedRound
from ._newcomer import ScoringRound
from ._report import DemoReport, Progress, card_line
from ._settle import provider_rows, short_hash, tokens
from ._stage import TOKEN as _TOKEN
from ._stage import Collect, Stage, job_progress
from ._zk import ZkRound

__all__ = ["round_spec", "run_demo"]

_VOTING_S = 3600


def round_spec(config: DemoConfig, samples: int, *, improved: bool = True) -> dict[str, Any]:
    """The model spec of a demo round over ``samples`` selected samples.

    Now a linear model on the fixed scattering front end with the recipe ``visdm data
    model-spec`` gives (:func:`visdm.training.recommended_spec`, its batch sized by the
    selection); ``improved=False`` gives the MLP trained with Adam the rounds used before, to
    compare with (``benchmarks/training.py`` measures both on the demo's market). No seed: the
    node draws each job's randomness; DP at the licences' default cap or below, δ far below 1/N,
    and at least the market's minimum batch size.
    """
    dp = {"target_epsilon": config.dp_epsilon, "delta": 1e-5, "max_grad_norm": 1.0}
    if not improved:
        return {
            "architecture": "mlp",
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "optimizer": "adam",
            "learning_rate": 0.005,
            "hidden": [128],
            "dp": dp,
        }
    from visdm.training import recommended_spec

    spec = recommended_spec(
        "scatter_linear",
        samples=samples,
        epsilon=config.dp_epsilon,
        min_batch_size=config.batch_size,
    )
    return spec.model_dump(mode="json")


def _describe_spec(spec_json: bytes) -> str:
    """``scatter_linear, DP-SGD ε=3, batch 128, 20 epochs`` for the step's detail line."""
    import json

    spec = json.loads(spec_json)
    dp = spec.get("dp")
    privacy = f"DP-SGD ε={dp['target_epsilon']:g}" if dp else "no DP"
    return f"{spec['architecture']}, {privacy}, batch {spec['batch_size']}, {spec['epochs']} epochs"


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
        "imagesPerProvider": config.images_per_provider,
        "validationImages": config.validation_images,
        "validationCopies": config.validation_copies,
        "offerWei": config.offer_tokens * _TOKEN,
        "wtpBps": config.wtp_bps,
        "minShareBps": config.min_share_bps,
        "epochs": config.epochs,
        "batchSize": config.batch_size,
        "dpEpsilon": config.dp_epsilon,
    }


class _Game(Stage):
    def __init__(
        self, settings: Settings, config: DemoConfig, report: DemoReport, progress: Progress
    ) -> None:
        super().__init__(settings, config, report, progress)
        self._api: Any = None
        self.collective = DemoCollective(self)
        self.scoring = ScoringRound(self)

    def close(self) -> None:
        if self._api is not None:
            self._api.stop()

    # --- the play -----------------------------------------------------------------------------
    def play(self) -> None:
        self._accounts()
        self._deploy_and_register()
        self.scoring.open_pool()  # the fee is fixed when a proposal is made: before the first
        self._assets()
        self.collective.form()
        selection = self._delegate_and_search()
        first = self._negotiate(selection)
        self._train(first, expect=ProposalStatus.COMPLETED)
        self._deliver_and_claim(first)
        self._missed_round()
        self._rejected_round(selection)
        self._refund()
        self._sweep(first)
        self.collective.summarize()
        self.scoring.newcomer_arrives()
        self.scoring.score()
        full = not self.config.quick  # Flower's processes and ezkl's circuits take minutes
        if full:
            FederatedRound(self).play()  # before the court, whose window would hold the fees
        CheatingRound(self).play(selection)
        if full:
            ZkRound(self).play(selection)

    def _accounts(self) -> None:
        cast = self.config.cast
        names = ("admin", "node1", "bob", *cast)
        with self.step("accounts") as info:
            for name in names:
                self.new_account(name)
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
            conn = session.connect_deployed(self.settings)
            p = conn.deployment.training_market(conn.client).parameters()
            info["detail"] = f"{len(deployment.contracts)} contracts on chain {deployment.chain_id}"
            info["notes"].append(
                f"market rules (defaults): every round trains on ≥ {p.min_selection_samples} "
                f"samples of ≥ {p.min_selection_providers} providers, batch size ≥ "
                f"{p.min_batch_size}, quorum {p.quorum_bps / 100:g}%, payouts claimable for "
                f"{p.claim_period // 86400} days"
            )
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
                f"{', '.join(sorted(NOISY))} mislabel 40%; {COPIER} re-uploads ada's as JPEG; "
                f"{TWO_ASSETS} registers his as two assets"
            )
        folders = [(name, f) for name in self.config.cast for f in providers[name].folders]
        with (
            self.step("asset add") as info,
            self.progress.task("providers register assets", len(folders)) as advance,
        ):
            gas = 0
            for k, (name, folder) in enumerate(folders):
                added = add_asset(self.as_(name), self.people[name], folder)
                self.assets.setdefault(name, []).append(added.asset_id)
                self.owner_of[added.asset_id] = name
                gas += added.gas_used
                advance(k + 1)
            info["gas"] = gas
            info["detail"] = (
                f"{len(folders)} assets encrypted, stored, signed and registered; default "
                "licence: training only, DP-SGD required, ε ≤ 8"
            )
        self._providers = providers
        with self.step("node attests") as info:
            attested = sum(1 for o in self.attest().values() if o == "attested")
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
        self.report.search.append(
            {
                "name": save,
                "filters": filters,
                "matches": result.total,
                "labels": [{"label": k, "samples": n} for k, n in summary.labels.items()],
            }
        )
        return [SelectedAsset(s.asset_id, tuple(s.sample_indexes)) for s in saved.selection]

    def _propose(self, selection: list[SelectedAsset], offer: int, wtp_bps: int) -> CreatedProposal:
        samples = sum(len(s.indexes) for s in selection)
        created = workflow.propose(
            self.as_("bob"),
            self.people["bob"],
            selection=selection,
            model_spec=round_spec(self.config, samples),
            validation=validation_arrays(self.config),
            classes=class_names(),
            offer=offer,
            wtp_bps=wtp_bps,
            node=self.people["node1"].address,
            voting_period_s=_VOTING_S,
            min_share_bps=self.config.min_share_bps,
        )
        self.proposals[created.proposal_id] = created
        return created

    def _vote_all(self, pid: int, ask_of: Callable[[str], int | None]) -> int:
        gas = 0
        for who in self.config.cast:
            ask = ask_of(who)
            if ask is not None:
                gas += workflow.vote(self.as_(who), self.people[who], pid, ask).gas_used
        return gas

    def _tally(self, pid: int, created: CreatedProposal, info: dict[str, Any]) -> TallyReceipt:
        """Close the vote, tally, and record (and explain) who left the round."""
        session.connect(self.settings).advance_time(_VOTING_S + 60)
        receipt = workflow.tally(self.as_("admin"), self.people["admin"], pid)
        out = receipt.outcome
        info["gas"] = info["gas"] + receipt.gas_used
        asset_ids = list(created.document.asset_ids)
        gone = [asset_ids[i] for i in sorted(out.excluded)]
        share = out.remaining_weight / out.total_weight if out.total_weight else 0.0
        minimum = self.config.min_share_bps / 10_000
        price = f" at {out.clearing_price / _TOKEN:g} tokens" if out.clearing_price else ""
        info["detail"] = (
            f"{out.status.name.lower()}{price} "
            f"(weight {out.participating_weight}/{out.remaining_weight} voted)"
        )
        if gone:
            verdict = "≥" if share >= minimum else "below"
            info["notes"].append(
                f"rejected, out of the round: {self.names(gone)}; "
                f"{out.remaining_weight} of {out.total_weight} samples remain ({share:.0%}, "
                f"{verdict} bob's minimum share of {minimum:.0%})"
            )
        self.report.rounds.append(
            {
                "proposalId": pid,
                "offerWei": created.document.offer,
                "minShareBps": created.document.min_share_bps,
                "outcome": out.status.name.lower(),
                "clearingPriceWei": out.clearing_price,
                "participatingWeight": out.participating_weight,
                "remainingWeight": out.remaining_weight,
                "totalWeight": out.total_weight,
                "outOfRound": sorted({self.owner_of[a] for a in gone}),
            }
        )
        return receipt

    def _delegate_and_search(self) -> list[SelectedAsset]:
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
        return selection

    def _negotiate(self, selection: list[SelectedAsset]) -> int:
        bob = self.people["bob"]
        offer = self.config.offer_tokens * _TOKEN
        with self.step("propose") as info:
            created = self._propose(selection, offer, self.config.wtp_bps)
            info["gas"] = sum(t.gas_used for t in created.transactions)
            info["detail"] = (
                f"proposal {created.proposal_id}: offer {self.config.offer_tokens} tokens, "
                f"WTP {self.config.wtp_bps / 100:g}% on {created.document.validation.samples} "
                f"sealed validation images, {_describe_spec(created.document.model_spec_json)}, "
                f"min share {self.config.min_share_bps / 100:g}%"
            )
            info["notes"].append(
                f"the spec has no seed: the node draws the job's randomness; bob's validation "
                f"set hides {self.config.validation_copies} copies of {FRIEND}'s images, meant "
                f"to steer value to {FRIEND}"
            )
        pid = created.proposal_id
        with self.step("vote") as info:
            info["gas"] = self._vote_all(pid, lambda who: first_ask(who, offer))
            voters = sum(1 for who in self.config.cast if first_ask(who, offer) is not None)
            asks = ["ivy asks +20%"] + (["fay +10%"] if "fay" in self.config.cast else [])
            info["detail"] = (
                f"{voters} direct votes: {', '.join(asks)}, {REJECTER} rejects; the others "
                "delegate, vote through their collective or abstain"
            )
        with self.step("collective votes") as info:
            info["detail"] = self.collective.cast(pid, info)
        with self.step("tally") as info:
            outcome = self._tally(pid, created, info).outcome
        if outcome.status == ProposalStatus.COUNTERED:
            with self.step("accept counter") as info:
                info["gas"] = workflow.accept_counter(self.as_("bob"), bob, pid).gas_used
                info["detail"] = f"bob tops the escrow up to {outcome.clearing_price / _TOKEN:g}"
        return pid

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
            warnings = self._run_with_progress(pid)
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
            screen = result.get("validation") or {}
            left_out = {int(a): why for a, why in (result.get("leftOut") or {}).items()}
            info["detail"] = (
                f"accuracy {record.accuracy_bps / 100:.2f}% (WTP {record.wtp_bps / 100:g}%), "
                f"ε spent {result.get('epsilonSpent') or 0:.2f}, "
                f"{'met' if result.get('wtpMet') else 'missed'}, "
                f"{result.get('trainSamples')} samples trained"
            )
            info["notes"] += [
                f"validation screen (pHash within {self._training_config().screen_radius} "
                f"bits, any flip or rotation): of {screen.get('given')} images "
                f"{screen.get('duplicates')} look like another and {screen.get('nearSelected')} "
                f"like a selected sample ({self.config.validation_copies} are the copies of "
                f"{FRIEND}'s), dropped; {screen.get('used')} score the round",
                f"seed: drawn by the node, hash {short_hash(result.get('seedHash'))} committed "
                "on chain",
            ]
            for asset_id, why in sorted(left_out.items()):
                info["notes"].append(f"left out: {self.names([asset_id])}: {why}")
            # the node's own warnings, unless they repeat a reason shown above
            info["notes"] += [
                f"node: {w}"
                for w in warnings
                if not any(w.endswith(f"left out: {why}") for why in left_out.values())
            ]
        completed = expect == ProposalStatus.COMPLETED
        self.round_of(pid).update(
            status=record.status.name.lower(),
            priceWei=record.price if completed else 0,
            # what the market credited the scoring pool; the payouts share the rest
            scoringFeeWei=self.scoring.fee_of(pid) if completed else 0,
            accuracyBps=record.accuracy_bps,
            wtpBps=record.wtp_bps,
            epsilonSpent=result.get("epsilonSpent"),
            trainSamples=result.get("trainSamples"),
            trainingCostWei=offer.quote.training_cost,
            seedHash=result.get("seedHash"),
            onChainSeedHash="0x" + record.seed_hash.hex(),
            validation=screen,
            leftOut=[
                {"provider": self.owner_of[a], "assetId": a, "reason": why}
                for a, why in left_out.items()
            ],
            consumerFault=result.get("consumerFault"),
        )
        return result

    def _run_with_progress(self, pid: int) -> list[str]:
        """The node's training worker in its own thread (it owns its connections there); this
        thread draws the job's progress from the node's journal. Returns the node's warnings,
        which the demo shows with its step instead of letting them cut through the output."""
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
        with (
            Collect(logging.WARNING).on(logging.getLogger("visdm")) as handler,
            self.progress.task(f"node trains proposal {pid} in the sandbox", 1.0) as advance,
        ):
            thread.start()
            while thread.is_alive():
                thread.join(timeout=0.5)
                if journal_path.exists():
                    advance(job_progress(journal_path, pid))
        if errors:
            raise errors[0]
        return handler.messages

    def _deliver_and_claim(self, pid: int) -> None:
        bob = self.people["bob"]
        with self.step("model get") as info:
            got = workflow.get_model(
                self.as_("bob"), bob, pid, Path(self.settings.home) / "model.safetensors"
            )
            card = checked_model_card(self.settings, pid)
            self.report.model = {**got, "card": None if card is None else card.to_document()}
            info["detail"] = (
                f"bob decrypts the {got['architecture']} model, node signature and hash "
                f"verified; its model card matches the chain: {card_line(card)}"
            )
        with self.step("compare specs") as info:
            # what the better default bought, on the same images (outside the market)
            before, now = compare_specs(self.config, [self.config.seed.to_bytes(32, "big")])
            self.report.spec_comparison = [before, now]
            info["detail"] = (
                f"same images, eps={now['epsilon']:g}: {before['architecture']} with "
                f"{before['optimizer']} (the old default) {before['accuracy']:.1f} % -> "
                f"{now['architecture']} {now['accuracy']:.1f} %"
            )
        claimers = [n for n in self.config.cast if n != LATE_CLAIMER]
        claims: dict[str, list[workflow.ClaimReceipt]] = {}
        with (
            self.step("claim") as info,
            self.progress.task("providers claim", len(claimers)) as advance,
        ):
            for k, name in enumerate(claimers):
                # every completed payout of the provider's assets in one claimMany, then the
                # credit withdrawn
                claims[name] = workflow.claim(self.as_(name), self.people[name])
                advance(k + 1)
            txs = {r.tx_hash: r.gas_used for rs in claims.values() for r in rs if r.tx_hash}
            info["gas"] = sum(txs.values())
            result = workflow.training_result(self.settings, pid) or {}
            rows, self.report.values = provider_rows(
                self.config,
                self.people,
                self.assets,
                self._providers,
                result,
                session.open_store(self.settings).get(result["scores"]["cid"]),
                claims,
                lambda who: vote_text(who, self.config.cast),
                payable=self.round_of(pid)["priceWei"] - self.round_of(pid)["scoringFeeWei"],
            )
            self.report.providers = rows
            row = {r["name"]: r for r in rows}
            paid = [r for r in rows if r["claimedWei"]]
            info["detail"] = (
                f"{len(paid)} providers claimed in {len(txs)} claimMany transactions and "
                "withdrew their credit"
            )
            split, owed = row[TWO_ASSETS], row[LATE_CLAIMER]
            info["notes"] += [
                f"{TWO_ASSETS}'s two assets earned "
                + " + ".join(tokens(a["payoutWei"]) for a in split["assetPayouts"])
                + f" tokens, paid in {split['claimTransactions']} claimMany",
                f"{LATE_CLAIMER} leaves its {tokens(owed['payoutWei'])} tokens unclaimed; "
                + ", ".join(r["name"] for r in rows if not r["payoutWei"])
                + " have nothing to claim",
                f"the payouts share {tokens(sum(r['payoutWei'] for r in rows))} tokens: the "
                f"price less the {tokens(self.round_of(pid)['scoringFeeWei'])} tokens the "
                "market credited the scoring pool",
            ]

    def _missed_round(self) -> None:
        offer = self.config.offer_tokens * _TOKEN // 2
        with self.step("propose again") as info:
            selection = self._search("round-2", exclude_flags=("noisy",))
            created = self._propose(selection, offer, 9990)
            pid = created.proposal_id
            info["gas"] = sum(t.gas_used for t in created.transactions)
            info["detail"] = (
                f"proposal {pid}: samples flagged noisy in round 1 searched out; "
                "WTP 99.9% (unreachable)"
            )
        with self.step("vote and tally") as info:

            def ask(who: str) -> int | None:
                if who == REJECTER:
                    return REJECT_ASK
                return 0 if who == COUNTER_OFFERER else None

            info["gas"] = self._vote_all(pid, ask)
            info["notes"].append(self.collective.cast(pid, info))
            self._tally(pid, created, info)
        self._train(pid, expect=ProposalStatus.WTP_MISSED)
        self.round_of(pid)["refundWei"] = offer  # the data price; the node keeps its training fee

    def _rejected_round(self, selection: list[SelectedAsset]) -> None:
        offer = self.config.offer_tokens * _TOKEN
        with self.step("propose third") as info:
            created = self._propose(selection, offer, self.config.wtp_bps)
            pid = created.proposal_id
            info["gas"] = sum(t.gas_used for t in created.transactions)
            info["detail"] = (
                f"proposal {pid}: the round-1 selection again, min share "
                f"{self.config.min_share_bps / 100:g}%"
            )
        with self.step("reject") as info:

            def ask(who: str) -> int | None:
                return REJECT_ASK if who in (COUNTER_OFFERER, REJECTER) else None

            info["gas"] = self._vote_all(pid, ask)
            info["notes"].append(self.collective.cast(pid, info))
            receipt = self._tally(pid, created, info)
            info["detail"] = (
                f"{COUNTER_OFFERER} and {REJECTER} reject, {COUNTER_OFFERER}'s delegators "
                f"follow her: {receipt.outcome.status.name.lower()}, nothing trains"
            )
        if receipt.outcome.status != ProposalStatus.REJECTED:
            raise VisdmError(
                f"proposal {pid} was {receipt.outcome.status.name.lower()}, expected rejected"
            )
        self.round_of(pid).update(status="rejected", refundWei=offer)

    def _refund(self) -> None:
        with self.step("refund") as info:
            amount, tx = workflow.withdraw(self.as_("bob"), self.people["bob"])
            info["gas"] = tx.gas_used if tx else 0
            refunded = [r for r in self.report.rounds if r.get("refundWei")]
            info["detail"] = f"bob withdraws {tokens(amount)} tokens: " + ", ".join(
                f"proposal {r['proposalId']}'s {tokens(r['refundWei'])}" for r in refunded
            )
        self.report.settlement["refundedWei"] = amount

    def _sweep(self, pid: int) -> None:
        admin = self.people["admin"]
        conn = session.connect_deployed(self.settings)
        market = conn.deployment.training_market(conn.client)
        with self.step("sweep") as info:
            record = market.proposal(pid)
            days = (record.claim_deadline - conn.client.latest_timestamp()) // 86400 + 1
            conn.client.advance_time(record.claim_deadline - conn.client.latest_timestamp() + 60)
            # anyone may sweep; the market's admin does it here
            info["gas"] = workflow.sweep_unclaimed(self.as_("admin"), admin, pid).gas_used
            treasury = market.parameters().treasury
            info["detail"] = (
                f"{days} days on, the claim period is over: {tokens(record.unclaimed)} unclaimed "
                f"tokens of proposal {pid} ({LATE_CLAIMER}'s) go to the market treasury"
            )
        self.report.settlement.update(
            sweptProposal=pid,
            sweptWei=record.unclaimed,
            treasury=treasury,
            treasuryCreditWei=market.credit_of(treasury),
        )
