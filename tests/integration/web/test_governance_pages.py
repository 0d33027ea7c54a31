"""Governance through the web app on anvil (no browser): governance suspends and reinstates a
node from its page; a stranger's attempt is refused with the contract's one-line reason and
changes nothing; the node page shows each node's fees and attestations."""

from __future__ import annotations

import re
import warnings
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
