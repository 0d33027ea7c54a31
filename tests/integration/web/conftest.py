"""Shared set-up of the browser tests: Debian's chromium-headless-shell driven by Playwright,
the round's cast with the node's real API and the web app on loopback ports, a local login,
and a test EIP-1193 wallet injected into the page that announces itself with EIP-6963 and
signs with eth-account on the Python side (the server never sees its key)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.compute.roundkit import PASSWORD, Round
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.compute.api import create_app as node_app
from visdm.web import BackgroundServer, Sessions, create_app

CHROMIUM = Path("/usr/bin/chromium-headless-shell")
#: how long an action may wait on a busy machine (the node quotes, the chain mines)
SLOW_MS = 180_000

INJECTED = """
(() => {
  const provider = {
    async request({ method, params }) {
      const answer = JSON.parse(await window.visdmTestWallet(method, JSON.stringify(params || [])));
      if (answer.error) { const e = new Error(answer.error); e.code = 4001; throw e; }
      return answer.result;
    },
    on() {},
    removeListener() {},
  };
  const info = Object.freeze({
    uuid: "5f0d2b38-6d1e-4c1a-9b7e-3f1f3f0c0001",
    name: "Test Wallet",
    icon: "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'/>",
    rdns: "org.visdm.testwallet",
  });
  const announce = () => window.dispatchEvent(
    new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
"""


def wallet_handler(
    chain: ChainClient,
    signer: LocalAccount,
    *,
    claims: str | None = None,
    typed_by: LocalAccount | None = None,
) -> Callable[[str, str], str]:
    """What the injected provider calls: eth-account signs with ``signer``'s key; ``claims``
    is the address the wallet says it has (default: its own); ``typed_by`` signs every typed
    data but the session challenge (a wallet that connects honestly, then swaps keys)."""
    address = claims or signer.address

    def handle(method: str, params_json: str) -> str:
        params: list[Any] = json.loads(params_json)
        if method in ("eth_requestAccounts", "eth_accounts"):
            return json.dumps({"result": [address]})
        if method == "eth_chainId":
            return json.dumps({"result": hex(chain.chain_id)})
        if method == "eth_signTypedData_v4":
            typed = json.loads(params[1])
            key = (
                signer.key
                if typed_by is None or typed["primaryType"] == "Connect"
                else typed_by.key
            )
            signed = Account.sign_typed_data(key, full_message=typed)
            return json.dumps({"result": "0x" + signed.signature.hex()})
        if method == "eth_sendTransaction":
            tx = dict(params[0])
            w3 = chain.w3
            fields = {
                "to": tx["to"],
                "data": tx["data"],
                "value": int(tx.get("value", "0x0"), 16),
                "gas": int(tx["gas"], 16),
                "chainId": int(tx["chainId"], 16),
                "nonce": w3.eth.get_transaction_count(signer.address),
                "maxFeePerGas": 2 * w3.eth.gas_price + 1,
                "maxPriorityFeePerGas": 1,
            }
            raw = Account.sign_transaction(fields, signer.key).raw_transaction
            return json.dumps({"result": "0x" + w3.eth.send_raw_transaction(raw).hex()})
        return json.dumps({"error": f"the test wallet does not do {method}"})

    return handle


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
    expect.set_options(timeout=SLOW_MS)  # a busy machine: the chain mines, the node quotes
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
    """A new browser profile that opens the launch URL and unlocks the local ``account``."""
    page = browser.new_context(accept_downloads=True).new_page()
    page.set_default_timeout(SLOW_MS)
    page.goto(f"{url}/login?token={sessions.launch_token}")
    page.goto(f"{url}/account")
    page.select_option("#account-select", account)
    page.fill("#password", PASSWORD)
    page.click("#unlock-submit")
    expect(page.locator(".flash")).to_contain_text(f"{account} (")
    return page


def wallet_page(
    browser: Browser, url: str, sessions: Sessions, handler: Callable[[str, str], str]
) -> Page:
    """A new browser profile with the test wallet injected, on the Account page of a session."""
    context = browser.new_context()
    context.add_init_script(INJECTED)
    context.expose_function("visdmTestWallet", handler)
    page = context.new_page()
    page.set_default_timeout(SLOW_MS)
    page.goto(f"{url}/login?token={sessions.launch_token}")
    page.goto(f"{url}/account")
    return page


def connect_wallet(page: Page, address: str) -> None:
    """Connect the injected wallet (found through EIP-6963) to the page's session."""
    page.click("#wallet-connect-0")
    expect(page.locator("#who")).to_contain_text(f"wallet {address[:6]}")
