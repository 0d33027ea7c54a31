"""A whole training round through the web app in a real browser (Debian's chromium-headless-shell
driven by Playwright) on anvil, with the node's real API, asset worker and training worker:
a stranger registers, a provider adds an asset from a folder (a broken file reported by name),
the node attests, a consumer searches, saves a selection, proposes, providers vote, the
consumer tallies, reads the node's quote and design check, pays and watches training finish
live (server-sent events), downloads the model; the provider claims. Every page is saved as
a screenshot under the test's tmp dir (and under ``$VISDM_SCREENSHOT_DIR`` when set)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.compute.roundkit import (
    MLP_SPEC,
    NAMES,
    NO_DP_LICENCE,
    PASSWORD,
    VAL_X,
    VAL_Y,
    Round,
    write_folder,
)
from visdm.assets import add_asset
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.compute.api import create_app as node_app
from visdm.market import workflow
from visdm.web import BackgroundServer, Sessions, create_app

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium-headless-shell")
#: how long an action may wait on a busy machine (the node quotes, the chain mines)
_SLOW_MS = 180_000
PER_PROVIDER = 20


#: form controls a screen reader cannot name, and pictures that say nothing
UNNAMED = """() => [
  ...[...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
    .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                   && !(e.tagName === "BUTTON" && e.textContent.trim())),
  ...[...document.querySelectorAll("svg, img")]
    .filter((e) => !e.getAttribute("aria-label") && !e.getAttribute("alt")),
].map((e) => e.outerHTML.slice(0, 100))"""


#: axe-core (npm, pinned in package.json): the accessibility rules browsers' audits use
AXE = Path(__file__).resolve().parents[3] / "node_modules" / "axe-core" / "axe.min.js"
#: axe's serious and critical violations on the page: rule id and the first offending node
SERIOUS = """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
  .filter((v) => v.impact === "serious" || v.impact === "critical")
  .map((v) => `${v.id}: ${v.nodes[0].html.slice(0, 100)}`)"""


class Shots:
    """Numbered full-page screenshots; each page is also checked for unnamed controls and for
    axe-core's serious and critical violations."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.copy_to = os.environ.get("VISDM_SCREENSHOT_DIR")
        self.count = 0

    def __call__(self, page: Page, name: str) -> None:
        assert page.evaluate(UNNAMED) == [], name
        # through the DevTools protocol: the app's CSP rightly refuses an injected script tag
        page.evaluate("() => { " + AXE.read_text(encoding="utf-8") + "\n}")
        assert page.evaluate(SERIOUS) == [], name
        assert page.locator("main h1").count() == 1, name
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if self.copy_to:
            Path(self.copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(self.copy_to) / f"web-{name}.png")


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium-headless-shell "
            "(scripts/install-system-deps.sh does)"
        )
    expect.set_options(timeout=180_000)  # a busy machine: the chain mines, the node quotes
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def market(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
) -> Iterator[tuple[Round, str, Sessions]]:
    """The round's cast, the node's API on a loopback port (admitted with that endpoint), and
    the web app served on another; both stopped at the end."""
    rnd = Round(chain, deployment, tmp_path / "home", dict(funded_roles))
    rnd.settings.node_dir.mkdir(parents=True, exist_ok=True)
    api = BackgroundServer(node_app(rnd.quotes(), rnd.settings.node_dir / "jobs.sqlite3"))
    node_url = api.start()
    node = rnd.accounts["node"]
    rnd.registry.admit_node(
        funded_roles["governance"],
        node.address,
        signer=node.address,
        region="local",
        encryption_key=node.x25519_public,
        endpoint=node_url,
    )
    sessions = Sessions()
    web = BackgroundServer(create_app(rnd.settings, sessions=sessions, poll_s=0.3))
    url = web.start()
    try:
        yield rnd, url, sessions
    finally:
        web.stop()
        api.stop()


def login(browser: Browser, url: str, sessions: Sessions, account: str) -> Page:
    """A new browser profile that opens the launch URL and unlocks ``account``."""
    page = browser.new_context().new_page()
    page.set_default_timeout(_SLOW_MS)  # quotes and uploads wait for the node and the chain
    page.goto(f"{url}/login?token={sessions.launch_token}")
    page.goto(f"{url}/account")
    page.select_option("#account-select", account)
    page.fill("#password", PASSWORD)
    page.click("#unlock-submit")
    expect(page.locator(".flash")).to_contain_text(f"{account} (")
    return page


def flash(page: Page) -> str:
    return " | ".join(page.locator(".flash").all_inner_texts())


def test_a_round_through_the_browser(
    market: tuple[Round, str, Sessions], browser: Browser, tmp_path: Path
) -> None:
    rnd, url, sessions = market
    shots = Shots(tmp_path / "screens")

    # anyone reads the market without a session
    public = browser.new_context().new_page()
    public.goto(url)
    expect(public.locator("#who")).to_contain_text("read-only")
    expect(public.locator("main")).to_contain_text("TrainingMarket")
    shots(public, "market")
    # the keyboard reaches the content first: Tab lands on the skip link, Enter moves to main
    public.keyboard.press("Tab")
    assert public.evaluate("document.activeElement.textContent") == "Skip to content"
    public.keyboard.press("Enter")
    assert public.evaluate("document.activeElement.id") == "main"

    # a stranger registers as a provider through the page
    stranger = login(browser, url, sessions, "stranger")
    stranger.check("#role-provider")
    stranger.click("#register-submit")
    expect(stranger.locator(".flash")).to_contain_text("registered as provider")
    expect(stranger.locator("#whoami")).to_contain_text("provider")
    shots(stranger, "account")

    # the provider adds a folder with one broken file; the page names it with its reason
    folder = write_folder(tmp_path / "mine", list(range(PER_PROVIDER)))
    (folder / "broken.png").write_bytes(b"not an image")
    with (folder / "labels.csv").open("a") as labels:
        labels.write("broken.png,bag\n")
    provider = login(browser, url, sessions, "provider")
    provider.goto(f"{url}/provider")
    provider.fill("#directory", str(folder))
    provider.check("input[name=dp][value=optional]")
    provider.click("#add-submit")
    expect(provider.locator("#error")).to_contain_text("pass --partial")
    expect(provider.locator("#rejected")).to_contain_text("broken.png")
    shots(provider, "asset-refused")
    provider.go_back()
    provider.check("input[name=partial]")
    provider.click("#add-submit")
    expect(provider.locator("#added")).to_contain_text(f"{PER_PROVIDER} samples")
    expect(provider.locator("#rejected")).to_contain_text("broken.png")
    shots(provider, "asset-added")
    # a second provider adds through the SDK, and the node attests both
    other = write_folder(tmp_path / "other", list(range(PER_PROVIDER, 2 * PER_PROVIDER)))
    add_asset(rnd.as_("provider2"), rnd.accounts["provider2"], other, licence=NO_DP_LICENCE)
    rnd.attest()
    provider.goto(f"{url}/provider")
    expect(provider.locator("#my-assets")).to_contain_text("active")
    shots(provider, "provider")

    # the consumer searches with a facet, saves every match, and proposes
    consumer = login(browser, url, sessions, "consumer")
    consumer.goto(f"{url}/search")
    expect(consumer.locator("#total")).to_contain_text(str(2 * PER_PROVIDER))
    assert consumer.locator("svg.chart").count() >= 3
    shots(consumer, "search")
    consumer.fill("#selection-name", "everything")
    consumer.click("#save-submit")
    expect(consumer.locator(".flash")).to_contain_text(
        f"saved {2 * PER_PROVIDER} samples as the selection 'everything'"
    )
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(MLP_SPEC))
    validation = tmp_path / "validation"
    validation.mkdir()
    rows = ["filename,label"]
    for i in range(60):
        Image.fromarray(VAL_X[i]).save(validation / f"v{i:03d}.png")
        rows.append(f"v{i:03d}.png,{NAMES[int(VAL_Y[i])]}")
    (validation / "labels.csv").write_text("\n".join(rows) + "\n")
    consumer.select_option("#selection", "everything")
    consumer.fill("#spec", str(spec))
    consumer.fill("#validation", str(validation))
    consumer.fill("input[name=classes]", ",".join(NAMES))
    consumer.fill("#offer", "1")
    consumer.fill("#wtp", "1000")
    consumer.fill("input[name=voting_period]", "120")
    shots(consumer, "consumer")
    consumer.click("#propose-submit")
    expect(consumer.locator(".flash").first).to_contain_text("created")
    pid = int(consumer.url.rstrip("/").rsplit("/", 1)[1])
    expect(consumer.locator("#proposal-status")).to_have_text("voting")

    # the provider accepts on the proposal page; provider2 through the SDK
    provider.goto(f"{url}/proposals/{pid}")
    provider.click("#vote-submit")
    expect(provider.locator(".flash").first).to_contain_text(f"voted accept on proposal {pid}")
    workflow.vote(rnd.as_("provider2"), rnd.accounts["provider2"], pid, 0)
    rnd.chain.advance_time(131)

    # the consumer tallies, reads the quote and design check, and pays
    consumer.goto(f"{url}/proposals/{pid}")
    expect(consumer.locator("#votes")).to_contain_text("accept")
    consumer.click("#tally-submit")
    expect(consumer.locator(".flash")).to_contain_text("tallied: approved")
    consumer.click("#quote-submit")
    expect(consumer.locator("#quote")).to_contain_text("training cost")
    shots(consumer, "quote")
    consumer.click("#train-submit")
    expect(consumer.locator(".flash")).to_contain_text("training started")
    expect(consumer.locator("#proposal-status")).to_have_text("training")

    # the node trains while the page is open; the status arrives by server-sent events
    worker = rnd.trainer()
    try:
        assert worker.poll() == 1
    finally:
        worker.close()
    assert rnd.market.proposal(pid).status == ProposalStatus.COMPLETED
    expect(consumer.locator("#proposal-status")).to_have_text("completed", timeout=60_000)
    assert int(consumer.locator("#live").get_attribute("data-updates") or 0) >= 1
    expect(consumer.locator("#result")).to_contain_text("WTP met")
    shots(consumer, "proposal")

    # the consumer decrypts the model into a file; the provider claims
    consumer.reload()
    out = tmp_path / "model" / "model.safetensors"
    out.parent.mkdir()
    consumer.fill("input[name=out]", str(out))
    consumer.click("#model-submit")
    expect(consumer.locator(".flash")).to_contain_text(f"model written to {out}")
    assert out.stat().st_size > 0 and (out.parent / "model-card.json").exists()
    before = rnd.token.balance_of(rnd.accounts["provider"].address)
    provider.goto(f"{url}/provider")
    provider.click("#claim-all")
    expect(provider.locator(".flash").first).to_contain_text(f"proposal {pid}:")
    assert rnd.token.balance_of(rnd.accounts["provider"].address) > before
    provider.goto(f"{url}/provider")
    expect(provider.locator("#my-proposals")).to_contain_text(str(pid))
    expect(provider.locator("#my-proposals")).to_contain_text("accept")
    shots(provider, "earnings")

    public.goto(f"{url}/proposals")
    expect(public.locator("#proposals")).to_contain_text("completed")
    shots(public, "proposals")
    for page_name in ("node", "governance"):
        public.goto(f"{url}/{page_name}")
        shots(public, page_name)
