"""A web app over an empty data directory with one local account, and clients with or without
a session: no chain, no node (the pages that need them show their one-line error)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from visdm.accounts import import_account
from visdm.config import Settings
from visdm.web import Sessions, create_app

with warnings.catch_warnings():  # Starlette asks for httpx2, which is not installed here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
BASE = "http://127.0.0.1"


@dataclass
class Web:
    settings: Settings
    sessions: Sessions
    app: Any

    def client(self, *, login: bool = True) -> TestClient:
        """A browser: with ``login`` it opened the launch URL, so it holds a session."""
        client = TestClient(self.app, base_url=BASE, follow_redirects=False)
        if login:
            response = client.get(f"/login?token={self.sessions.launch_token}")
            assert response.status_code == 303
        return client


def csrf_of(client: TestClient, page: str = "/account") -> str:
    """The CSRF token a page's forms carry for this client's session."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(page).text)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@pytest.fixture
def web(tmp_path: Path) -> Web:
    settings = Settings(home=tmp_path / "home", rpc_url="http://127.0.0.1:9")
    import_account(settings.keystore_dir, "alice", KEY, PASSWORD, scrypt_n=1024)
    sessions = Sessions("launch-token-for-tests")
    return Web(settings, sessions, create_app(settings, sessions=sessions, max_body=64 * 1024))
