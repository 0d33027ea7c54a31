"""Live status from real chain events: the time from a provider sending a vote on anvil to the
proposal page's event stream delivering the status that shows it.

The market is the demo's (quick size: its accounts, deployment, node, attested assets and a
proposal open for votes), built with the demo's own stage so that nothing here re-implements
a workflow. The web app is served by uvicorn on a loopback port as ``visdm web`` serves it,
and one client holds the proposal's event stream open while the providers vote one at a time
(``visdm market vote`` through the SDK, each transaction waited for). The latency includes the
transaction (signing, sending, anvil mining it at once), the app's poll (``poll_s``), its sync
of the index and its reads of the chain and the store.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import httpx

from visdm.chain.anvil import chain_down, chain_up
from visdm.config import Settings
from visdm.market import workflow
from visdm.web import BackgroundServer, create_app

__all__ = ["chain_vote_latencies"]


def chain_vote_latencies(poll_s: float = 0.25) -> tuple[list[float], float]:
    """Seconds from sending each vote to the event that shows it, and the set-up time."""
    from visdm.demo._cast import DemoConfig
    from visdm.demo._play import _Game
    from visdm.demo._report import DemoReport, Progress

    home = Path(tempfile.mkdtemp(prefix="visdm-web-chain-sse-"))
    settings = Settings(home=home)
    config = DemoConfig.for_size(True)
    game = _Game(settings, config, DemoReport(home=str(home), config={}), Progress())
    started = time.perf_counter()
    chain_up(settings.chain_dir)
    server: BackgroundServer | None = None
    try:
        game._accounts()
        game._deploy_and_register()
        game._assets()
        selection = game._search("bench")
        pid = game._propose(selection, config.offer_tokens * 10**18, config.wtp_bps).proposal_id
        setup_s = time.perf_counter() - started
        server = BackgroundServer(create_app(settings, poll_s=poll_s))
        url = server.start()
        voters = list(config.cast)
        return _latencies(url, pid, game, voters), setup_s
    finally:
        if server is not None:
            server.stop()
        game.close()
        chain_down(settings.chain_dir)


def _vote_rows(html: str) -> int:
    """How many votes a rendered status shows (rows of its votes table)."""
    if 'id="votes"' not in html:
        return 0
    return html.split('id="votes"', 1)[1].split("</table>", 1)[0].count("<tr><td>")


def _latencies(url: str, pid: int, game: object, voters: list[str]) -> list[float]:
    sent_at: list[float] = []
    failure: list[BaseException] = []

    def vote_one_by_one() -> None:
        try:
            for who in voters:
                time.sleep(0.6)  # let the stream settle on the previous status
                sent_at.append(time.perf_counter())
                workflow.vote(game.as_(who), game.people[who], pid, 0)  # type: ignore[attr-defined]
        except BaseException as exc:  # reported by the caller, not lost in the thread
            failure.append(exc)

    latencies: list[float] = []
    voting = threading.Thread(target=vote_one_by_one, daemon=True)
    # the status also changes as chain time passes (its "open until ..." sentence): an event
    # counts for vote k when it is the first to show k votes
    with (
        httpx.Client(base_url=url, timeout=60) as client,
        client.stream("GET", f"/proposals/{pid}/events") as events,
    ):
        data: list[str] = []
        for line in events.iter_lines():
            if line.startswith("data: "):
                data.append(line[6:])
                continue
            if line or not data:
                continue
            shown, data = _vote_rows("\n".join(data)), []
            arrived = time.perf_counter()
            if not voting.is_alive() and not sent_at:
                voting.start()  # the first event is the status before any vote
            while len(latencies) < min(shown, len(sent_at)):
                latencies.append(arrived - sent_at[len(latencies)])
            if len(latencies) == len(voters) or failure:
                break
    voting.join(timeout=120)
    if failure:
        raise failure[0]
    return latencies
