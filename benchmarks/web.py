"""The web app: search page latency over a large index, and live-status push latency.

The app (``visdm.web.create_app``) is served by uvicorn on a loopback port, exactly as
``visdm web`` serves it, over a synthetic SQLite index of N verified samples (100,000; 10,000
with ``--quick``) in 200 assets from 40 providers, seeded: ten labels, four resolutions, two
formats, three regions, two licence purposes, a quarter of the samples scored, a tenth in
near-duplicate clusters.

1. **Search page, no filter**: time to first byte and to the last byte (the page with its
   facet counts, four histograms and the first 50 rows), p50 and p95 over R requests; and the
   CPU seconds per request of this process (server and client), which a loaded machine
   changes less than the wall-clock figures.
2. **Search with three facets** (two labels, a format, a minimum brightness): p95 to the last
   byte. Peer: the CLI's ``visdm market search`` for the same query with ``--json`` (a new
   process, as a user runs it), median over three runs (one with ``--quick``); ratio = CLI
   time / page time. The in-process SDK call (``search_index`` + the facet pass) is shown
   beside it, as the floor.
3. **Time to interactive** of the search page in Debian's chromium-headless-shell through
   Playwright (``load`` event, scripts run), p50 — only where Playwright and the browser are
   installed (the dev extra and ``scripts/install-system-deps.sh``); otherwise the row is
   left out and a note says so.
4. **Server-sent event latency, stubbed source**: the time from a proposal's status
   changing to the page's event stream delivering the new status, p50/p95 over K changes. The
   status source is stubbed here (the chain's RPC time is not in the figure; the app polls the
   SDK every ``poll_s`` = 0.25 s, so the expected mean is about half of that plus rendering).
5. **Server-sent event latency from the chain**: on anvil, with the demo's quick market and a
   proposal open for votes, the time from a provider sending a vote to the page's event
   stream showing it, p50/p95 over the cast's votes (``_web_chain_sse.py``): the transaction,
   the poll, the index sync and the chain and store reads together.

Usage: ``python benchmarks/web.py [--quick] [--json] [--repeats K]``.
Absolute numbers are reported, never asserted; the machine is shared and noisy.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from _harness import Row, emit, parse_args
from _web_chain_sse import chain_vote_latencies
from visdm.config import Settings
from visdm.index import (
    SCHEMA_VERSION,
    SearchFilters,
    open_database,
    parse_index_url,
    search_index,
)
from visdm.index._schema import create_schema
from visdm.web import BackgroundServer, Sessions, create_app
from visdm.web._facets import facets

LABELS = [f"class{i}" for i in range(10)]
SIZES = [(28, 28), (64, 64), (128, 96), (256, 256)]
FACET_QUERY = "label=class1&label=class2&format=PNG&min_brightness=60"
CHROMIUM = Path("/usr/bin/chromium-headless-shell")


ASSET_COLUMNS = (
    "asset_id, owner, status, manifest_hash, samples_root, sample_count, region_mask, "
    "manifest_cid, registered_block, manifest_status, manifest_detail, licence_expires, "
    "attested_by, metadata_hash, metadata_cid, accepted_count, attested_block, metadata_status, "
    "metadata_detail, duplicate_radius, withdrawn_block"
)
SAMPLE_COLUMNS = (
    "asset_id, sample_index, sample_id, label, width, height, channels, mode, format, "
    "byte_size, phash, brightness, contrast, blur, cluster_size"
)
SCORE_COLUMNS = (
    "proposal_id, asset_id, sample_index, sample_id, provider, value, cluster_founder, "
    "cluster_size, flags, flag_noisy, flag_copied, flag_duplicate, evidence"
)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def build_index(home: Path, samples: int, seed: int = 7) -> None:
    """A verified index of ``samples`` synthetic samples (no chain needed to search it)."""
    rng = random.Random(seed)
    db = open_database(parse_index_url(f"sqlite:///{home / 'index.sqlite3'}"))
    assets = 200
    try:
        with db.transaction():
            create_schema(db)
            db.execute("INSERT INTO index_meta (key, value) VALUES (?, ?)",
                       ("schema_version", str(SCHEMA_VERSION)))  # fmt: skip
            db.executemany("INSERT INTO regions (region, name) VALUES (?, ?)",
                           [(0, "local"), (1, "eu"), (2, "us")])  # fmt: skip
            asset_rows, region_rows, purpose_rows = [], [], []
            for a in range(1, assets + 1):
                owner = "0x" + f"{a % 40:040x}"
                asset_rows.append((a, owner, "active", "0x", "0x", samples // assets, "1", "cid",
                                   1, "indexed", "", None, "0xnode", "0x", "cid", samples // assets,
                                   2, "indexed", "", 8, None))  # fmt: skip
                region_rows.append((a, a % 3))
                purpose_rows.append((a, "training"))
                if a % 4 == 0:
                    purpose_rows.append((a, "research"))
            db.executemany(
                f"INSERT INTO assets ({ASSET_COLUMNS}) VALUES ({_marks(21)})", asset_rows
            )
            db.executemany("INSERT INTO asset_regions VALUES (?, ?)", region_rows)
            db.executemany("INSERT INTO asset_purposes VALUES (?, ?)", purpose_rows)
            rows, scores = [], []
            for i in range(samples):
                a, index = 1 + i % assets, i // assets
                w, h = rng.choice(SIZES)
                sid = f"0x{i:064x}"
                rows.append((a, index, sid, rng.choice(LABELS), w, h, 1, "L",
                             rng.choice(("PNG", "JPEG")), 800 + i % 500, f"{i:016x}",
                             rng.uniform(10, 240), rng.uniform(5, 120),
                             rng.lognormvariate(8, 1), 1 if rng.random() > 0.1 else 3))  # fmt: skip
                if rng.random() < 0.25:
                    scores.append((1, a, index, sid, "0xp", rng.gauss(0.001, 0.002), None, None,
                                   "[]", 0, 0, 0, None))  # fmt: skip
            db.executemany(f"INSERT INTO samples ({SAMPLE_COLUMNS}) VALUES ({_marks(15)})", rows)
            db.executemany(
                f"INSERT INTO sample_scores ({SCORE_COLUMNS}) VALUES ({_marks(13)})", scores
            )
    finally:
        db.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed_get(client: httpx.Client, path: str) -> tuple[float, float]:
    """Seconds to the first byte and to the last byte of one GET."""
    start = time.perf_counter()
    with client.stream("GET", path, headers={"accept": "text/html"}) as response:
        first = None
        for _chunk in response.iter_raw():
            if first is None:
                first = time.perf_counter() - start
        assert response.status_code == 200, response.status_code
    return first or 0.0, time.perf_counter() - start


def cli_search(home: Path, query: str) -> float:
    args = [sys.executable, "-m", "visdm", "--home", str(home), "market", "search", "--json"]
    for pair in query.split("&"):
        key, value = pair.split("=")
        args += [f"--{key.replace('_', '-')}", value]
    start = time.perf_counter()
    subprocess.run(
        args, check=True, capture_output=True, env={**os.environ, "VISDM_HOME": str(home)}
    )
    return time.perf_counter() - start


def interactive_times(url: str, repeats: int) -> list[float] | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not CHROMIUM.exists():
        return None
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page()
        for _ in range(repeats):
            start = time.perf_counter()
            page.goto(f"{url}/search", wait_until="load")
            page.wait_for_function("document.readyState === 'complete' && window.htmx")
            times.append(time.perf_counter() - start)
        browser.close()
    return times


def sse_latencies(changes: int) -> list[float]:
    """Stub the status source, flip it ``changes`` times, time each event's arrival."""
    from visdm.web import public

    state: dict[str, Any] = {"status": "voting", "n": 0}

    def fake_status(_request: Any, pid: int) -> dict[str, Any]:
        return {"proposalId": pid, "status": state["status"], "n": state["n"], "votes": [],
                "tally": None, "job": None, "result": None, "offerWei": "1", "priceWei": "0",
                "clearingPriceWei": "0", "wtpBps": 0, "votingDeadline": 0, "deadline": 0,
                "totalWeight": 0, "next": "", "consumerCreditWei": "0", "consumer": "0x",
                "node": "0x"}  # fmt: skip

    original = public._status
    public._status = fake_status  # type: ignore[assignment]
    home = Path(tempfile.mkdtemp(prefix="visdm-web-sse-"))
    server = BackgroundServer(create_app(Settings(home=home), poll_s=0.25))
    url = server.start()
    latencies: list[float] = []
    try:
        with (
            httpx.Client(base_url=url, timeout=30) as client,
            client.stream("GET", f"/proposals/1/events?max_events={changes + 1}") as response,
        ):
            lines = response.iter_lines()
            changed_at: list[float] = []

            def flip() -> None:
                for n in range(1, changes + 1):
                    time.sleep(0.4 + 0.05 * (n % 3))
                    state["n"] = n
                    changed_at.append(time.perf_counter())

            threading.Thread(target=flip, daemon=True).start()
            seen = 0
            for line in lines:
                if line == "event: status":
                    if seen > 0:
                        latencies.append(time.perf_counter() - changed_at[seen - 1])
                    seen += 1
                if line == "event: end" or seen > changes:
                    break
    finally:
        server.stop()
        public._status = original  # type: ignore[assignment]
    return latencies


def main() -> None:
    args = parse_args(__doc__ or "")
    samples = 10_000 if args.quick else 100_000
    requests = 10 if args.quick else 40
    home = Path(tempfile.mkdtemp(prefix="visdm-web-bench-"))
    started = time.perf_counter()
    build_index(home, samples)
    build_s = time.perf_counter() - started
    settings = Settings(home=home)
    server = BackgroundServer(create_app(settings, sessions=Sessions()))
    url = server.start()
    rows: list[Row] = []
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            timed_get(client, "/search")  # warm: imports, first connection
            cpu = time.process_time()
            plain = [timed_get(client, "/search") for _ in range(requests)]
            cpu_per_page = (time.process_time() - cpu) / requests
            faceted = [timed_get(client, f"/search?{FACET_QUERY}") for _ in range(requests)]
        ttfb = [t[0] for t in plain]
        full = [t[1] for t in plain]
        facet_full = [t[1] for t in faceted]
        cli = statistics.median(
            cli_search(home, FACET_QUERY) for _ in range(1 if args.quick else 3)
        )
        filters = SearchFilters(labels=("class1", "class2"), formats=("PNG",), min_brightness=60)
        sdk_start = time.perf_counter()
        for _ in range(5):
            search_index(settings, filters)
            facets(settings, filters)
        sdk = (time.perf_counter() - sdk_start) / 5
        interactive = interactive_times(url, 5 if args.quick else 15)
    finally:
        server.stop()
    sse = sse_latencies(5 if args.quick else 20)
    from_chain, chain_setup_s = chain_vote_latencies()
    n = f"{samples // 1000}k samples"
    rows += [
        Row(f"search page TTFB p50 ({n})", percentile(ttfb, 0.5), "s"),
        Row(f"search page TTFB p95 ({n})", percentile(ttfb, 0.95), "s"),
        Row(f"search page full p50 ({n})", percentile(full, 0.5), "s"),
        Row(f"search page full p95 ({n})", percentile(full, 0.95), "s"),
        Row(f"search page CPU per request, server and client ({n})", cpu_per_page, "s"),
        Row(
            f"3-facet search page p95 ({n})",
            percentile(facet_full, 0.95),
            "s",
            peer="visdm market search (CLI process)",
            peer_value=cli,
            ratio=cli / percentile(facet_full, 0.95),
        ),
        Row(f"3-facet search+facets in-process SDK ({n})", sdk, "s"),
        Row("SSE status push latency p50 (poll 0.25 s)", percentile(sse, 0.5), "s"),
        Row("SSE status push latency p95 (poll 0.25 s)", percentile(sse, 0.95), "s"),
        Row("SSE vote sent on anvil to page p50 (poll 0.25 s)", percentile(from_chain, 0.5), "s"),
        Row("SSE vote sent on anvil to page p95 (poll 0.25 s)", percentile(from_chain, 0.95), "s"),
    ]
    notes: dict[str, Any] = {
        "index build s": round(build_s, 2),
        "requests": requests,
        "votes timed on anvil": len(from_chain),
        "demo market set-up s": round(chain_setup_s, 1),
    }
    if interactive is None:
        notes["time to interactive"] = "not measured: Playwright or chromium-headless-shell missing"
    else:
        rows.append(Row(f"search page to interactive p50 ({n})", percentile(interactive, 0.5), "s"))
        rows.append(
            Row(f"search page to interactive p95 ({n})", percentile(interactive, 0.95), "s")
        )
    emit("web", rows, as_json=args.json, packages=("fastapi", "uvicorn", "jinja2"), notes=notes)


if __name__ == "__main__":
    main()
