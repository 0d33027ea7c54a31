"""One training round with a crowd of providers, end to end, on a real anvil and node process.

Run: ``python benchmarks/crowd.py [--quick] [--json] [--providers N --samples S]``.
Full size: 1,000 providers / 100,000 samples; ``--quick``: 10 providers / 200 samples.

Two rounds run in one marketplace (anvil, contracts, one node process) in one invocation:
first the peer, a round over the first N/10 providers' assets (S/10 samples), then the round
over all N. A stage's row compares its time at N with ten times its time at N/10, i.e. with
linear growth: a ratio of 1 grows linearly, > 1 better than linearly, 0.1 quadratically. The
benchmark's own cache of verified manifests is cleared between the rounds; the node keeps its
own, so the big round finds the peer's tenth of the assets cached there. Fixed costs (a first
quote's imports in the node, a sandbox's start) weigh on the peer, so at small sizes ratios
flatter. At ``--quick`` the peer round stops after its quote (CI cannot afford a second
training). Absolute times are reported, never asserted; one repetition per size.

Setup (not timed as part of the round; its phases are printed): N providers each add one asset
of S/N Fashion-MNIST images through :func:`visdm.assets.add_asset`, which the node process
attests; every provider delegates to one collective and joins it (policy delay 0). See
``_crowd_world.py`` for the images used.

The round (every step through the SDK a user's command calls):

* ``propose``: the consumer selects every asset (proposal 1, voted by the collective) and
  proposes again on the same selection (proposal 2, voted directly; its own row);
* votes: the collective casts one vote on proposal 1; every provider votes on proposal 2;
  then chain time is moved past the voting deadline (the voting period is not waited out);
* ``tally`` of both proposals; ``quote`` (the node checks proposal 1 and signs a quote);
  ``start`` (escrow the training cost, startTraining);
* training: the node fetches, decrypts, trains a small MLP for one epoch, values every sample
  and submits its result (excluded from the target, reported);
* ``release`` after the court's challenge window (chain time moved past it);
* ``claims``: every provider claims its payout (one ``claimMany``) and withdraws it.

The end-to-end figure is propose + tally + quote + start + release + claims of proposal 1,
against the requirement's 5 minutes "excluding the voting period and training itself".
RPC counts come from a counting proxy in front of anvil that every party (the benchmark's
clients and the node) talks through; a stage's count is every call made while it ran, the
node's background polling included. The node's peak RSS is its whole process tree (the API
process, its job worker and the sandbox), sampled every 0.2 s with psutil during the round,
against twice the decrypted selection (S images of 28x28 one-byte pixels).
"""

from __future__ import annotations

import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _crowd_world import NAMES, RssSampler, World
from _harness import Row, emit, parse_args
from visdm import collectives
from visdm.chain.contracts import ProposalStatus
from visdm.datasets import load_fashion_mnist_subset
from visdm.market import workflow
from visdm.proposals._selection import SHARED_CACHE
from visdm.session import connect_deployed, top_up_dev_tokens

#: the requirement: a round end to end, excluding voting and training
TARGET_S = 300.0
#: small enough to train in seconds on a shared CPU
SPEC: dict[str, Any] = {
    "architecture": "mlp",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 0.003,
    "hidden": [32],
}
VOTING_S = 7 * 24 * 3600  # the chain's clock is moved past it, never waited out
#: the stages summed into the end-to-end figure
E2E = ("propose", "tally", "quote", "start", "release", "claims")
TRAINING = "training (node: decrypt, train, value, submit)"
WORKERS = 2  # parties acting at once (one per core)


@dataclass
class Stage:
    """One stage: wall seconds, RPC calls made meanwhile (all parties), transactions, gas."""

    seconds: float
    rpcs: int
    get_logs: int
    txs: int = 0
    gas: int = 0


class Round:
    """Drives one round over ``names``' assets in ``world`` and records each :class:`Stage`;
    without ``full`` it stops after the quote (no training, release or claims)."""

    def __init__(self, world: World, names: list[str], *, full: bool = True) -> None:
        self.w = world
        self.names = names
        self.assets = sorted(world.asset_of[n] for n in names)
        self.full = full
        self.stages: dict[str, Stage] = {}
        self.rss_baseline = 0
        self.rss_peak = 0
        #: each provider's claim and withdrawal, as it waited for them
        self.claim_s: list[float] = []
        #: providers the payout did not name (their samples valued at nothing)
        self.unpaid = 0

    @property
    def samples(self) -> int:
        return self.w.samples * len(self.names) // self.w.providers

    def timed(self, name: str, fn: Callable[[], tuple[int, int]]) -> None:
        """Run ``fn`` (which returns its transactions and gas) as stage ``name``."""
        before = self.w.rpc_counts()
        start = time.perf_counter()
        txs, gas = fn()
        seconds = time.perf_counter() - start
        after = self.w.rpc_counts()
        delta = {m: n - before.get(m, 0) for m, n in after.items()}
        stage = Stage(seconds, sum(delta.values()), delta.get("eth_getLogs", 0), txs, gas)
        self.stages[name] = stage
        # a long run's figures survive an interrupted one
        print(f"#   {len(self.names)} providers, {name}: {stage}", file=sys.stderr, flush=True)

    def run(self) -> None:
        w = self.w
        assert w.node_proc is not None
        # this process's verified manifests and metadata: each round starts without them
        SHARED_CACHE.clear()
        sampler = RssSampler(w.node_proc.pid)
        time.sleep(1.0)
        self.rss_baseline = sampler.now()
        sampler.reset()
        try:
            self._run()
        finally:
            sampler.stop()
        self.rss_peak = sampler.peak

    def _run(self) -> None:
        w = self.w
        consumer = w.accounts["consumer"]
        val = load_fashion_mnist_subset("test", limit=200)
        pids: list[int] = []

        def propose() -> tuple[int, int]:
            made = workflow.propose(
                w.as_("consumer"),
                consumer,
                selection=self.assets,
                model_spec=SPEC,
                validation=val,
                classes=NAMES,
                offer=10**21,
                wtp_bps=100,
                node=w.accounts["node"].address,
                voting_period_s=VOTING_S,
            )
            pids.append(made.proposal_id)
            return len(made.transactions), sum(t.gas_used for t in made.transactions)

        self.timed("propose", propose)
        self.timed("propose (again, same selection)", propose)
        pid, direct = pids
        conn = connect_deployed(w.settings)
        client, dep = conn.client, conn.deployment
        admin = w.accounts["admin"]

        def collective_vote() -> tuple[int, int]:
            cast = collectives.cast_vote(client, dep, admin.local_account, w.collective, pid)
            return len(cast.transactions), sum(t.gas_used for t in cast.transactions)

        def direct_votes() -> tuple[int, int]:
            def one(name: str) -> int:
                return workflow.vote(w.as_(name), w.accounts[name], direct, 0).gas_used

            with ThreadPoolExecutor(WORKERS) as pool:
                gas = list(pool.map(one, self.names))
            return len(gas), sum(gas)

        self.timed("vote: the collective's one cast", collective_vote)
        self.timed("vote: one per provider", direct_votes)
        market = dep.training_market(client)
        ends = max(market.proposal(p).voting_deadline for p in pids)
        client.advance_time(ends - client.latest_timestamp() + 1)

        def tally(p: int) -> Callable[[], tuple[int, int]]:
            def run() -> tuple[int, int]:
                receipt = workflow.tally(w.as_("admin"), admin, p)
                return len(receipt.transactions), receipt.gas_used

            return run

        self.timed("tally", tally(pid))
        self.timed("tally (direct votes)", tally(direct))
        if market.proposal(pid).status is not ProposalStatus.APPROVED:
            raise RuntimeError(f"proposal {pid} was not approved: {market.proposal(pid).status}")
        offers: list[workflow.QuoteOffer] = []

        def quote() -> tuple[int, int]:
            offers.append(workflow.request_quote(w.as_("consumer"), pid, consumer=consumer))
            return 0, 0

        self.timed("quote", quote)
        if self.full:
            self._train_and_pay(pid, offers[0])

    def _train_and_pay(self, pid: int, offer: workflow.QuoteOffer) -> None:
        w = self.w
        conn = connect_deployed(w.settings)
        client, dep = conn.client, conn.deployment
        market = dep.training_market(client)
        consumer, admin = w.accounts["consumer"], w.accounts["admin"]

        def start() -> tuple[int, int]:
            cost = offer.quote.training_cost
            token = dep.payment_token(client)
            top_up_dev_tokens(client, dep, consumer.local_account, cost)
            a = token.approve(consumer.local_account, market.address, cost)
            s = market.start_training(consumer.local_account, pid, offer.quote, offer.signature)
            return 2, a.gas_used + s.gas_used

        self.timed("start", start)

        def training() -> tuple[int, int]:
            while market.proposal(pid).status is ProposalStatus.TRAINING:
                time.sleep(0.5)
            return 0, 0

        self.timed(TRAINING, training)
        record = market.proposal(pid)
        if record.status is not ProposalStatus.COMPLETED:
            tail = (w.home / "node.log").read_text()[-3000:]
            raise RuntimeError(f"proposal {pid} ended {record.status.name}: {tail}")

        def release() -> tuple[int, int]:
            if not record.deadline:  # no court: claims open at submission
                return 0, 0
            client.advance_time(max(0, record.deadline - client.latest_timestamp()) + 1)
            tx = workflow.release(w.as_("admin"), admin, pid)
            return 1, tx.gas_used

        self.timed("release", release)

        def claims() -> tuple[int, int]:
            def one(name: str) -> tuple[int, int]:
                start = time.perf_counter()
                receipts = workflow.claim(w.as_(name), w.accounts[name], [pid])
                self.claim_s.append(time.perf_counter() - start)
                paid = [r for r in receipts if r.tx_hash]
                if not paid:  # every sample valued at nothing (or a copy): no leaf to claim
                    if [r.note for r in receipts] != ["not a payee"]:
                        raise RuntimeError(f"{name} could not claim: {receipts}")
                    self.unpaid += 1
                    return 0, 0
                # claimMany, then withdraw (its gas is not in the receipt)
                return 2, sum(r.gas_used or 0 for r in paid)

            with ThreadPoolExecutor(WORKERS) as pool:
                done = list(pool.map(one, self.names))
            return sum(t for t, _ in done), sum(g for _, g in done)

        self.timed("claims", claims)


def rows_for(big: Round, small: Round, scale: int, world: World) -> list[Row]:
    rows: list[Row] = []
    peer = f"same stage at N/{scale} x {scale} (linear)"

    def add(metric: str, value: float, small_value: float | None, unit: str) -> None:
        peer_value = None if small_value is None else round(small_value * scale, 3)
        ratio = None if not peer_value or not value else round(peer_value / value, 3)
        rows.append(Row(metric, round(value, 3), unit, peer if ratio else None, peer_value, ratio))

    for name, stage in big.stages.items():
        other = small.stages.get(name)
        add(f"{name}: wall", stage.seconds, other and other.seconds, "s")
    for name, stage in big.stages.items():
        other = small.stages.get(name)
        add(f"{name}: RPC calls (all parties)", stage.rpcs, other and other.rpcs, "calls")
        add(f"{name}: eth_getLogs calls", stage.get_logs, other and other.get_logs, "calls")
        if stage.txs:
            add(f"{name}: transactions", stage.txs, other and other.txs, "txs")
            add(f"{name}: gas", stage.gas, other and other.gas, "gas")
    if big.claim_s:
        other_median = statistics.median(small.claim_s) if small.claim_s else None
        rows.append(
            Row(
                "one provider's claim and withdrawal (median)",
                round(statistics.median(big.claim_s), 3),
                "s",
                None if other_median is None else f"the same at N/{scale}",
                other_median and round(other_median, 3),
                other_median and round(other_median / statistics.median(big.claim_s), 3),
            )
        )
    rows.append(Row("providers the payout did not name", big.unpaid, "providers"))
    e2e = sum(big.stages[k].seconds for k in E2E)
    e2e_row = Row(
        f"round end to end at {len(big.names):,} providers / {big.samples:,} samples "
        f"({'+'.join(E2E)})",
        round(e2e, 2),
        "s",
        target=f"<= {TARGET_S:.0f} s",
        meets=e2e <= TARGET_S,
    )
    if small.full:
        e2e_small = sum(small.stages[k].seconds for k in E2E) * scale
        e2e_row.peer, e2e_row.peer_value = peer, round(e2e_small, 2)
        e2e_row.ratio = round(e2e_small / e2e, 3)
    rows.append(e2e_row)
    decrypted = big.samples * 28 * 28
    rows.append(
        Row(
            "node peak RSS during the round (process tree)",
            round(big.rss_peak / 2**20, 1),
            "MiB",
            "2 x decrypted selection (28x28 uint8 pixels)",
            round(2 * decrypted / 2**20, 1),
            round(2 * decrypted / big.rss_peak, 3),
            "<= 2 x decrypted selection",
            big.rss_peak <= 2 * decrypted,
        )
    )
    rows.append(Row("node RSS before the round (idle)", round(big.rss_baseline / 2**20, 1), "MiB"))
    for name, value in world.setup_s.items():
        rows.append(Row(f"setup: {name}", round(value, 2), "s"))
    return rows


def main() -> None:
    def extra(p: Any) -> None:
        p.add_argument("--providers", type=int, default=None)
        p.add_argument("--samples", type=int, default=None)
        p.add_argument("--scale", type=int, default=10, help="the peer runs at N/scale")

    args = parse_args(__doc__.splitlines()[0], extra=extra)
    # a terminated run still stops its node, proxy and anvil
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    providers = args.providers or (10 if args.quick else 1000)
    samples = args.samples or (200 if args.quick else 100_000)
    scale = args.scale
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"# {time.perf_counter() - started:7.1f} s  {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="visdm-crowd-") as tmp:
        world = World(Path(tmp), providers=providers, samples=samples)
        try:
            world.build(progress=say)
            names = world.names
            say(f"set up; the peer round over {len(names) // scale} providers' assets")
            small = Round(world, names[: max(1, len(names) // scale)], full=not args.quick)
            small.run()
            say(f"the round over all {len(names)} providers' assets")
            big = Round(world, names)
            big.run()
            say("done")
        finally:
            world.close()
    rows = rows_for(big, small, scale, world)
    emit(
        "crowd",
        rows,
        as_json=args.json,
        packages=["web3", "torch"],
        notes={
            "size": f"{providers} providers / {samples} samples; peer round "
            f"{len(small.names)} / {small.samples}" + ("" if small.full else " (up to its quote)"),
            "images": world.source,
            "repetitions": "1 per size",
            "total wall": f"{time.perf_counter() - started:.0f} s",
        },
    )


if __name__ == "__main__":
    main()
