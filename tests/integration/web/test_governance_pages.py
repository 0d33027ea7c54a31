"""Governance through the web app on anvil (no browser): governance suspends and reinstates a
node from its page; a stranger's attempt is refused with the contract's one-line reason and
changes nothing; the node page shows each node's fees and attestations."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.roundkit import PASSWORD, Round
from visdm.accounts import import_account
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.web import Sessions, create_app

with warnings.catch_warnings():  # Starlette asks for httpx2, which is not installed here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

HTML = {"accept": "text/html"}


@pytest.fixture
def web(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
) -> tuple[Round, Sessions, TestClient]:
    rnd = Round(chain, deployment, tmp_path / "home", dict(funded_roles))
    key = bytes(funded_roles["governance"].key)
    import_account(rnd.settings.keystore_dir, "governance", key, PASSWORD, scrypt_n=1024)
    sessions = Sessions()
    app = create_app(rnd.settings, sessions=sessions)
    return rnd, sessions, TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)


def unlocked_as(client: TestClient, sessions: Sessions, account: str) -> str:
    """Log the client in, unlock ``account``; its CSRF token."""
    client.get(f"/login?token={sessions.launch_token}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/account").text)
    assert csrf is not None
    response = client.post(
        "/account/unlock", data={"account": account, "password": PASSWORD, "csrf": csrf[1]}
    )
    assert response.status_code == 303
    return csrf[1]


def test_governance_suspends_and_reinstates_a_node(
    web: tuple[Round, Sessions, TestClient],
) -> None:
    rnd, sessions, client = web
    node = rnd.accounts["node"].address
    csrf = unlocked_as(client, sessions, "governance")
    response = client.post(
        "/governance/suspend", data={"node": node, "action": "suspend", "csrf": csrf}
    )
    assert response.status_code == 303
    assert rnd.registry.compute_node(node).suspended
    assert f"node {node} is suspended" in client.get("/governance").text
    client.post("/governance/suspend", data={"node": node, "action": "reinstate", "csrf": csrf})
    assert not rnd.registry.compute_node(node).suspended
    page = client.get("/node", headers=HTML).text
    assert "fees credited, not withdrawn" in page and node in page


@pytest.mark.attack
def test_a_stranger_cannot_suspend_a_node(web: tuple[Round, Sessions, TestClient]) -> None:
    rnd, sessions, client = web
    node = rnd.accounts["node"].address
    csrf = unlocked_as(client, sessions, "stranger")
    response = client.post(
        "/governance/suspend",
        data={"node": node, "action": "suspend", "csrf": csrf},
        headers=HTML,
    )
    assert response.status_code == 400
    lines = [line for line in response.text.splitlines() if "error:" in line]
    assert len(lines) == 1 and "suspend" in lines[0].lower()
    assert not rnd.registry.compute_node(node).suspended


def test_governance_changes_market_parameters_from_its_page(
    web: tuple[Round, Sessions, TestClient],
) -> None:
    rnd, sessions, client = web
    before = rnd.market.parameters()
    # a stranger's page shows the parameters but no form to change them
    unlocked_as(client, sessions, "stranger")
    page = client.get("/governance", headers=HTML).text
    assert "replyPeriod" not in page and "reply_period" in page and "259200 s (3d)" in page
    assert 'action="/governance/parameters"' not in page
    csrf = unlocked_as(client, sessions, "governance")
    page = client.get("/governance", headers=HTML).text
    assert 'action="/governance/parameters"' in page and 'placeholder="3d"' in page
    # only the fields filled in are changes; the blank ones keep their values
    blank = {name: "" for name in ("min_voting_period", "treasury", "court")}
    response = client.post(
        "/governance/parameters",
        data={"quorum_bps": "4500", "max_voting_period": "10d", **blank, "csrf": csrf},
    )
    assert response.status_code == 303
    held = rnd.market.parameters()
    assert held == replace(before, quorum_bps=4500, max_voting_period=10 * 86_400)
    page = client.get("/governance", headers=HTML).text
    assert "market parameters changed: quorum_bps 3000 → 4500, max_voting_period 30d → 10d" in page
    # a value the contract would refuse is the SDK's one line, and changes nothing
    response = client.post(
        "/governance/parameters", data={"quorum_bps": "12000", "csrf": csrf}, headers=HTML
    )
    assert response.status_code == 400
    lines = [line for line in response.text.splitlines() if "error:" in line]
    assert len(lines) == 1 and "quorum_bps must be at most 10000, got 12000" in lines[0]
    # and so is a form without the session's CSRF token
    response = client.post("/governance/parameters", data={"quorum_bps": "100"}, headers=HTML)
    assert response.status_code in (400, 403)
    assert rnd.market.parameters() == held
    # the scoring fee has its own form, checked as `visdm scoring fee` checks it
    assert "<code>0 bps</code>" in client.get("/governance", headers=HTML).text
    response = client.post("/governance/scoring-fee", data={"scoring_fee_bps": "300", "csrf": csrf})
    assert response.status_code == 303
    assert "scoring fee 0 → 300 bps" in client.get("/governance", headers=HTML).text
    response = client.post(
        "/governance/scoring-fee", data={"scoring_fee_bps": "5000", "csrf": csrf}, headers=HTML
    )
    assert (
        response.status_code == 400 and "scoring fee 5000 bps is outside 0..1000" in response.text
    )
    assert "<code>300 bps</code>" in client.get("/governance", headers=HTML).text


@pytest.mark.attack
def test_a_stranger_cannot_change_market_parameters(
    web: tuple[Round, Sessions, TestClient],
) -> None:
    rnd, sessions, client = web
    before, block = rnd.market.parameters(), rnd.chain.w3.eth.block_number
    stranger = rnd.accounts["stranger"].address
    csrf = unlocked_as(client, sessions, "stranger")
    response = client.post(
        "/governance/parameters", data={"quorum_bps": "0", "csrf": csrf}, headers=HTML
    )
    assert response.status_code == 400
    lines = [line for line in response.text.splitlines() if "error:" in line]
    assert len(lines) == 1 and f"{stranger} does not hold GOVERNANCE_ROLE" in lines[0]
    assert rnd.market.parameters() == before and rnd.chain.w3.eth.block_number == block
