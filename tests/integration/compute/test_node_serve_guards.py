"""`visdm node serve` as a real process on a local chain of its own data directory: a second
node on the same directory, or under the same account from another directory, is refused
(naming the first), a huge request body is refused
unread and costs the node no memory, and ``chain down`` / ``chain up`` — anvil back on another
port — does not stop it: it says the chain went away once, finds it again and attests an asset
registered after the restart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from tests.conftest import RELAXED_PARAMETERS, role_account
from tests.integration.compute.test_asset_flow import write_folder
from tests.integration.compute.test_node_service import free_port, wait_for
from visdm.accounts import UnlockedAccount, import_account, load_account
from visdm.assets import add_asset
from visdm.chain.anvil import chain_down, chain_up
from visdm.chain.contracts import AssetStatus
from visdm.chain.deployment import deploy_marketplace
from visdm.cli import main
from visdm.compute._serve import ServeLock
from visdm.config import Settings
from visdm.session import connect, connect_deployed
from visdm.types import Role

pytestmark = pytest.mark.integration

PASSWORD = "pw"
#: what the node's API accepts at most (the default limits), far below what is sent here
SENT_BYTES = 64 << 20


@dataclass
class LocalMarket:
    settings: Settings
    provider: UnlockedAccount


@pytest.fixture
def market(tmp_path: Path) -> Iterator[LocalMarket]:
    """A data directory whose own local chain (``chain up``) holds a market with an admitted
    node and a provider, both with keystores there."""
    settings = Settings(home=tmp_path / "home")
    chain_up(settings.chain_dir)
    try:
        client = connect(settings)
        people = {n: role_account(f"serve-guards/{n}") for n in ("deployer", "provider", "node")}
        for account in people.values():
            client.fund_from_dev_faucet(account.address)
        deployment = deploy_marketplace(client, people["deployer"], parameters=RELAXED_PARAMETERS)
        deployment.save(settings.deployments_dir)
        unlocked = {}
        for name in ("provider", "node"):
            key = bytes(people[name].key)
            import_account(settings.keystore_dir, name, key, PASSWORD, scrypt_n=1024)
            unlocked[name] = load_account(settings.keystore_dir, name, PASSWORD)
        registry = deployment.stakeholder_registry(client)
        provider = unlocked["provider"]
        registry.register(people["provider"], Role.PROVIDER, provider.x25519_public)
        registry.admit_node(
            people["deployer"],
            unlocked["node"].address,
            signer=unlocked["node"].address,
            region="local",
            encryption_key=unlocked["node"].x25519_public,
            endpoint="http://127.0.0.1:9/",
        )
        yield LocalMarket(replace(settings, account="provider"), provider)
    finally:
        chain_down(settings.chain_dir)


def _serve(market: LocalMarket, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VISDM_HOME": str(market.settings.home),
        "VISDM_ACCOUNT": "node",
        "VISDM_PASSWORD": PASSWORD,
    }
    env.pop("VISDM_RPC_URL", None)  # the local chain of the data directory, wherever it is
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "visdm",
                "node",
                "serve",
                "--api-port",
                str(port),
                "--poll",
                "0.2",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _declared_post(port: int, path: str, length: int) -> bytes:
    """Announce a ``length``-byte body, send a few bytes of it and return the answer's start:
    a node that waits for the body before refusing never answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n{{}}".encode()
        )
        return sock.recv(200)


def _chunked_post(port: int, path: str, total: int) -> bytes:
    """POST ``total`` bytes with chunked encoding (no Content-Length to refuse up front) and
    return the start of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"[" * (1 << 20)
        try:
            for _ in range(total // len(chunk)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the node closed the connection once the limit was passed: what we want
        return sock.recv(200)


def test_one_node_per_directory_bounded_bodies_and_a_chain_restart(
    market: LocalMarket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    log = tmp_path / "node.log"
    node = _serve(market, port, log)
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if node.poll() is not None:
                raise AssertionError(f"node exited {node.returncode}: {log.read_text()}")
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the node API", healthy, timeout=90)

        # a second node on the same data directory is refused before it asks for anything
        with pytest.raises(SystemExit) as second:
            main(["--home", str(market.settings.home), "--account", "node", "node", "serve"])
        err = capsys.readouterr().err.strip().splitlines()
        assert second.value.code == 2 and len(err) == 1
        assert f"another `visdm node serve` (pid {node.pid}) already runs" in err[0]
        # and so is the same account from another data directory on this machine (a copy
        # of its keystore): both would take the same jobs
        other = Settings(home=tmp_path / "home2")
        shutil.copytree(market.settings.keystore_dir, other.keystore_dir)
        shutil.copytree(market.settings.deployments_dir, other.deployments_dir)
        rpc_url = connect(market.settings).rpc_url
        home, rpc = ["--home", str(other.home)], ["--rpc-url", rpc_url]
        os.environ["VISDM_PASSWORD"] = PASSWORD
        try:
            with pytest.raises(SystemExit) as third:
                main([*home, *rpc, "--account", "node", "node", "serve", "--once"])
        finally:
            del os.environ["VISDM_PASSWORD"]
        err = capsys.readouterr().err.strip().splitlines()
        assert third.value.code == 2 and len(err) == 1, err
        assert f"(pid {node.pid}) already runs as " in err[0]
        assert "from another data directory" in err[0]

        # bodies: a declared size over the limit is refused unread, a chunked one at the limit
        before = _rss_kib(node.pid)
        assert _declared_post(port, "/quotes", 300 << 20).startswith(b"HTTP/1.1 413")
        assert _chunked_post(port, "/quotes", SENT_BYTES).startswith(b"HTTP/1.1 413")
        assert healthy()
        assert _rss_kib(node.pid) - before < 16 << 10  # KiB: the 64 MiB never landed in memory

        # the chain goes down and comes back on another port
        old_url = connect(market.settings).rpc_url
        chain_down(market.settings.chain_dir)
        wait_for("the node to notice", lambda: "the chain went away" in log.read_text())
        back, started = chain_up(market.settings.chain_dir)
        assert started
        added = add_asset(market.settings, market.provider, write_folder(tmp_path / "a", [1, 2]))
        conn = connect_deployed(market.settings)
        assets = conn.deployment.asset_registry(conn.client)
        wait_for(
            "the node to attest after the restart",
            lambda: assets.asset(added.asset_id).status == AssetStatus.ACTIVE,
            timeout=90,
        )
        back_line = f"the chain is back at {back.rpc_url}"
        wait_for("the node to say so", lambda: back_line in log.read_text())
        text = log.read_text()
        assert text.count("the chain went away") == 1  # said once, not every poll
        if back.rpc_url != old_url:  # the usual case: anvil took another free port
            # nothing is sent to the old URL any more; each of the node's clients (training
            # and attestation) may still say that it followed the move
            moved = f"moved from {old_url} to {back.rpc_url}: following it"
            after = text.split(back_line, 1)[1].replace(moved, "")
            assert old_url not in after
        assert healthy()
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=30) == 0
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(timeout=30)
    # the lock went with the process
    with ServeLock(market.settings.node_dir / "serve.lock"):
        pass
