"""Load: many providers and consumers driving whole rounds at once on one anvil and one node.

A :class:`_rounds.World` on loopback — anvil, the contracts, providers with real
Fashion-MNIST assets attested by a ``visdm node serve`` process, consumers — runs R rounds at
once (one thread per round; one lock per account serialises its transactions, as one wallet
would): search the index, propose, every provider votes, tally after the voting deadline,
quote over the node's HTTP API, start training, poll the job over HTTP until the node posts
the result, providers claim and withdraw. The second of every three rounds asks for an
accuracy the model cannot reach, so refunds are exercised beside payouts. An indexer thread
syncs the index incrementally all the while.

The node serves with a budget of :data:`JOBS` training jobs at once in :data:`MEMORY_GIB` GiB
(``visdm node serve --jobs --memory``; the CPUs are the machine's). After the rounds above, it
is restarted at one job at a time and the same concurrent rounds run again: the peer of the
node's own concurrency. The node's process tree (the node and every sandbox below it) is
sampled for its peak resident memory while it runs jobs at once, against the budget.

Rows: rounds per hour and transactions per second under concurrency, beside the peer — the
same rounds driven one at a time on the same world (ratio > 1: concurrency pays); rounds per
hour of the concurrent rounds against the node at one job (ratio > 1: the node's concurrency
pays) and the node tree's peak RSS against its memory budget; p50/p99 of
each HTTP endpoint the rounds used and of index search; then the books
(:mod:`visdm.market.books`: every escrowed token paid, refunded, claimable or held, nothing
double-paid, no proposal stuck) and the incrementally synced index against one rebuilt from
block 0. The script exits non-zero when either does not hold, or a round ends otherwise than
completed or with its WTP missed.

``--quick``: 3 providers × 16 images, 2 consumers, 2 rounds at once, 1 round serially, and
not the node at one job (the full run's peer for the node's concurrency).
Full: 6 providers, 4 consumers, 12 rounds at once, 3 serially. One repetition (a run is its
own sample of hundreds of requests); seeds fixed by the data (the first images of the
shipped Fashion-MNIST subset) — the node draws each job's training seed itself.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _harness import Row, emit, parse_args
from _rounds import PeakRss, RoundLog, World
from visdm.chain.contracts import ProposalStatus
from visdm.index import open_database, parse_index_url, sync_index
from visdm.market.books import BooksReport, index_differences

_MISS_EVERY = 3  # the second of every three rounds cannot meet its WTP: a refund
#: the node's budget: two small jobs (about 2.1 GiB of address space each) fit, three do not
JOBS, MEMORY_GIB = 2, 6


def _blocks_and_txs(world: World, first: int, last: int) -> int:
    client = world.client()
    return sum(
        len(client.rpc(lambda n=n: client.w3.eth.get_block(n))["transactions"])
        for n in range(first + 1, last + 1)
    )


def _head(world: World) -> int:
    client = world.client()
    return int(client.rpc(lambda: client.w3.eth.block_number))


def _rounds(world: World, count: int, *, parallel: bool, index_url: str) -> list[RoundLog]:
    logs = [RoundLog(world.consumers[i % len(world.consumers)]) for i in range(count)]

    def one(i: int) -> RoundLog:
        wtp = 9900 if i % _MISS_EVERY == 1 else 500
        # long enough for every provider's vote to land while the other rounds send theirs
        voting = 2 + count if parallel else 2
        return world.run_round(
            logs[i].consumer, wtp_bps=wtp, voting_s=voting, index_url=index_url, log=logs[i]
        )

    if parallel:
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(one, range(count)))
    else:
        for i in range(count):
            one(i)
    return logs


class _Indexer(threading.Thread):
    """Syncs the index incrementally every half second while the rounds run."""

    def __init__(self, world: World, url: str) -> None:
        super().__init__(name="indexer", daemon=True)
        self.world, self.url = world, url
        self.stop = threading.Event()
        self.syncs = 0

    def run(self) -> None:
        while not self.stop.wait(0.5):
            sync_index(self.world.settings, url=self.url)
            self.syncs += 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    quick = args.quick
    providers, consumers = (3, 2) if quick else (6, 4)
    concurrent, serial = (2, 1) if quick else (12, 3)
    with tempfile.TemporaryDirectory(prefix="visdm-load-") as tmp:
        world = World(
            Path(tmp),
            providers=providers,
            consumers=consumers,
            images=16,
            node_args=("--jobs", str(JOBS), "--memory", str(MEMORY_GIB)),
        )
        try:
            world.setup()
            world.add_assets()
            world.start_node()
            world.wait_attested()
            assert world.node_proc is not None
            peak = PeakRss(world.node_proc.pid)
            peak.start()
            index_url = f"sqlite:///{tmp}/index.sqlite3"
            sync_index(world.settings, url=index_url)
            indexer = _Indexer(world, index_url)
            indexer.start()

            b0, t0 = _head(world), time.perf_counter()
            together = _rounds(world, concurrent, parallel=True, index_url=index_url)
            b1, t1 = _head(world), time.perf_counter()
            peak.stop.set()
            peak.join()
            alone = _rounds(world, serial, parallel=False, index_url=index_url)
            b2, t2 = _head(world), time.perf_counter()
            # the peer of the node's concurrency: the same concurrent rounds, one job at a time
            # (not at --quick: a second node start and round set, 75 s of CI's wall time)
            one_job: list[RoundLog] = []
            if not quick:
                world.stop_node()
                world.node_args = ("--jobs", "1", "--memory", str(MEMORY_GIB))
                world.start_node()
                one_job = _rounds(world, concurrent, parallel=True, index_url=index_url)
            t3 = time.perf_counter()
            indexer.stop.set()
            indexer.join()

            world.withdraw_all()
            sync_index(world.settings, url=index_url)
            fresh_url = f"sqlite:///{tmp}/fresh.sqlite3"
            sync_index(world.settings, url=fresh_url, rebuild=True)
            with (
                open_database(parse_index_url(index_url)) as synced,
                open_database(parse_index_url(fresh_url)) as fresh,
            ):
                differences = index_differences(synced, fresh)
            books = world.books()
            tx_together, tx_alone = _blocks_and_txs(world, b0, b1), _blocks_and_txs(world, b1, b2)
        finally:
            world.close()
    rows = _rows(
        together=(len(together), t1 - t0, tx_together),
        alone=(len(alone), t2 - t1, tx_alone),
        one_job=(len(one_job), t3 - t2) if one_job else None,
        peak_rss=peak.peak,
        world=world,
        books=books,
        differences=differences,
    )
    statuses = [log.status.name for log in (*together, *alone, *one_job)]
    emit(
        "load",
        rows,
        as_json=args.json,
        packages=("web3", "fastapi", "torch"),
        notes={
            "rounds": f"{concurrent} at once, then {serial} one at a time"
            + (f", then {concurrent} at once with the node at one job" if one_job else "")
            + f"; outcomes {statuses}",
            "node": f"--jobs {JOBS} --memory {MEMORY_GIB} (CPUs: the machine's)"
            + (", peer --jobs 1" if one_job else ""),
            "cast": f"{providers} providers × 16 images, {consumers} consumers, 1 node",
            "books": books.violations[0] if books.violations else "balanced",
            "index": differences[0] if differences else "equal to a rebuild from block 0",
        },
    )
    ok = books.balanced and not differences
    ok = ok and all(
        s in {ProposalStatus.COMPLETED, ProposalStatus.WTP_MISSED}
        for s in [log.status for log in (*together, *alone, *one_job)]
    )
    return 0 if ok else 1


def _rows(
    *,
    together: tuple[int, float, int],
    alone: tuple[int, float, int],
    one_job: tuple[int, float] | None,
    peak_rss: int,
    world: World,
    books: BooksReport,
    differences: list[str],
) -> list[Row]:
    (n1, s1, tx1), (n2, s2, tx2) = together, alone
    per_hour, peer_per_hour = n1 / s1 * 3600, n2 / s2 * 3600
    tps, peer_tps = tx1 / s1, tx2 / s2
    peer = "the same rounds one at a time"
    rows = [
        Row("rounds per hour", per_hour, "rounds/h", peer, peer_per_hour, per_hour / peer_per_hour),
        Row("transactions per second", tps, "tx/s", peer, peer_tps, tps / peer_tps),
    ]
    if one_job is not None:
        n3, s3 = one_job
        one_per_hour = n3 / s3 * 3600
        rows.append(
            Row(
                f"rounds per hour, node at {JOBS} jobs at once",
                per_hour,
                "rounds/h",
                "the same concurrent rounds, node at one job at a time",
                one_per_hour,
                per_hour / one_per_hour,
            )
        )
    budget = MEMORY_GIB * 2**30
    rows.append(
        Row(
            f"node process tree peak RSS, {JOBS} jobs at once",
            peak_rss / 2**30,
            "GiB",
            target=f"<= {MEMORY_GIB} GiB (the node's memory budget)",
            meets=peak_rss <= budget,
        )
    )
    for name in sorted(world.latencies.samples):
        count = len(world.latencies.samples[name])
        for q in (50, 99):
            value = world.latencies.percentile(name, q) * 1000
            rows.append(Row(f"{name} p{q} (n={count})", value, "ms"))
    rows += [
        Row("proposals on chain", len(books.proposals), "count"),
        Row("escrowed", books.escrowed / 1e18, "tokens"),
        Row("paid (providers, node, scoring pool)", books.paid / 1e18, "tokens"),
        Row("refunded", books.refunded / 1e18, "tokens"),
        Row("still held (claimable or pending)", books.held / 1e18, "tokens"),
        Row("books balance", float(books.balanced), "1 = yes", target="1", meets=books.balanced),
        Row(
            "index equal to a fresh sync",
            float(not differences),
            "1 = yes",
            target="1",
            meets=not differences,
        ),
    ]
    return rows


if __name__ == "__main__":
    sys.exit(main())
