"""Wallet mode in a real browser: a test EIP-1193 provider injected into the page announces
itself with EIP-6963 and signs with eth-account on the Python side (the server never sees the
key). The provider connects by signing the session's EIP-712 challenge, votes, delegates and
undelegates with transactions the server prepared; a wallet that signs with another key than
the address it claims is refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.compute.roundkit import Round
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.web import BackgroundServer, Sessions, create_app

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium-headless-shell")

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
    chain: ChainClient, signer: LocalAccount, *, claims: str | None = None
) -> Callable[[str, str], str]:
    """What the injected provider calls: eth-account signs with ``signer``'s key; ``claims``
    is the address the wallet says it has (default: its own)."""
    address = claims or signer.address

    def handle(method: str, params_json: str) -> str:
        params: list[Any] = json.loads(params_json)
        if method in ("eth_requestAccounts", "eth_accounts"):
            return json.dumps({"result": [address]})
        if method == "eth_chainId":
            return json.dumps({"result": hex(chain.chain_id)})
        if method == "eth_signTypedData_v4":
            signed = Account.sign_typed_data(signer.key, full_message=json.loads(params[1]))
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


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium-headless-shell")
    expect.set_options(timeout=180_000)  # a busy machine: the chain mines, the node quotes
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def voting(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
) -> Iterator[tuple[Round, int, str, Sessions]]:
    """Two small attested assets, a proposal in its voting period, the web app serving."""
    rnd = Round(chain, deployment, tmp_path / "home", dict(funded_roles))
    rnd.add_assets(tmp_path, per_provider=10)
    pid = rnd.propose(wtp_bps=1000)
    sessions = Sessions()
    web = BackgroundServer(create_app(rnd.settings, sessions=sessions))
    url = web.start()
    try:
        yield rnd, pid, url, sessions
    finally:
        web.stop()


def wallet_page(
    browser: Browser, url: str, sessions: Sessions, handler: Callable[[str, str], str]
) -> Page:
    context = browser.new_context()
    context.add_init_script(INJECTED)
    context.expose_function("visdmTestWallet", handler)
    page = context.new_page()
    page.set_default_timeout(180_000)  # a busy machine: the chain mines, the app answers
    page.goto(f"{url}/login?token={sessions.launch_token}")
    page.goto(f"{url}/account")
    return page


def test_a_browser_wallet_connects_and_votes(
    voting: tuple[Round, int, str, Sessions],
    browser: Browser,
    funded_roles: dict[str, LocalAccount],
) -> None:
    rnd, pid, url, sessions = voting
    provider = funded_roles["provider"]
    page = wallet_page(browser, url, sessions, wallet_handler(rnd.chain, provider))
    page.click("#wallet-connect-0")  # found through EIP-6963
    expect(page.locator("#who")).to_contain_text(f"wallet {provider.address[:6]}")
    page.goto(f"{url}/proposals/{pid}")
    expect(page.locator("#vote-submit")).to_have_text("Vote with the wallet")
    page.check("input[name=vote][value=reject]")
    with page.expect_navigation():  # the wallet sent it and the server saw it mined
        page.click("#vote-submit")
    expect(page.locator(".flash")).to_contain_text("the wallet's transaction 0x")
    assert rnd.market.vote_of(pid, provider.address) == 2**256 - 1  # reject, as sent
    expect(page.locator("#votes")).to_contain_text("reject")
    # the wallet delegates and takes it back, each a transaction the server prepared
    delegation = rnd.deployment.delegation_registry(rnd.chain)
    other = funded_roles["provider2"].address
    page.goto(f"{url}/provider")
    page.fill("#delegate-to", other)
    with page.expect_navigation():
        page.click("#delegate-submit")
    expect(page.locator("#delegate")).to_contain_text(other)
    assert delegation.delegate_of(provider.address) == other
    with page.expect_navigation():
        page.click("#undelegate-submit")
    expect(page.locator(".flash")).to_contain_text("the wallet's transaction 0x")
    expect(page.locator("#delegate")).to_contain_text("no delegate")
    assert delegation.delegate_of(provider.address) is None


@pytest.mark.attack
def test_a_wallet_signing_for_another_address_is_refused(
    voting: tuple[Round, int, str, Sessions],
    browser: Browser,
    funded_roles: dict[str, LocalAccount],
) -> None:
    rnd, _pid, url, sessions = voting
    liar = wallet_handler(
        rnd.chain, funded_roles["stranger"], claims=funded_roles["provider"].address
    )
    page = wallet_page(browser, url, sessions, liar)
    page.click("#wallet-connect-0")
    expect(page.locator("#wallet-error")).to_contain_text(
        f"the challenge was signed by {funded_roles['stranger'].address}"
    )
    page.reload()
    expect(page.locator("#who")).to_contain_text("no account unlocked")
