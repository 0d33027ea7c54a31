"""A real IPFS node serving the Kubo HTTP RPC API on loopback, for the whole test session.

The node is js-ipfs 0.66.1 (npm ``ipfs``, a devDependency, so ``npm ci`` installs it). Kubo
itself cannot be installed from the package registries alone: npm ``kubo`` downloads its binary
from GitHub releases in a postinstall script. ``jsipfs daemon`` serves ``/api/v0`` through
``ipfs-http-server``, the same RPC API KuboStore speaks. It runs fully offline: a fresh repo in a
temporary directory, no swarm addresses, no bootstrap peers, no MDNS, no preload nodes, no
update check, the API on a free 127.0.0.1 port chosen by the kernel and read back from the
repo's ``api`` file. It is stopped by PID when the session ends. If it cannot start, the tests
fail (never skip): run ``npm ci`` first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
JSIPFS_CLI = REPO_ROOT / "node_modules" / "ipfs" / "src" / "cli.js"
START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class IpfsNode:
    """A running js-ipfs daemon: its RPC URL, repo directory and process."""

    url: str
    repo: Path
    pid: int
    log: Path


def _node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 20+ to run the IPFS integration tests")
    return node


def _jsipfs(repo: Path, *args: str) -> list[str]:
    if not JSIPFS_CLI.is_file():
        pytest.fail(
            f"{JSIPFS_CLI} is missing: run `npm ci` in {REPO_ROOT} (ipfs is a devDependency)"
        )
    return [_node_binary(), str(JSIPFS_CLI), *args]


def _offline_config(repo: Path) -> None:
    path = repo / "config"
    config = json.loads(path.read_text())
    config["Addresses"].update(
        {"Swarm": [], "Announce": [], "API": "/ip4/127.0.0.1/tcp/0", "Gateway": "", "RPC": ""}
    )
    config["Bootstrap"] = []
    config["Discovery"] = {"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}}
    config["Pubsub"] = {"Enabled": False}
    path.write_text(json.dumps(config, indent=2))


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.post(f"{url}/api/v0/version", timeout=2.0).status_code == 200
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsNode]:
    """Start js-ipfs offline on a free loopback port; stop it by PID at the end."""
    workdir = tmp_path_factory.mktemp("jsipfs")
    repo = workdir / "repo"
    log = workdir / "daemon.log"
    # NO_UPDATE_NOTIFIER: jsipfs would otherwise ask the npm registry for a newer version
    env = {**os.environ, "IPFS_PATH": str(repo), "NO_UPDATE_NOTIFIER": "1"}
    init = subprocess.run(
        _jsipfs(repo, "init", "--profile", "test", "--empty-repo"),
        env=env,
        capture_output=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    if init.returncode != 0:
        pytest.fail(f"jsipfs init failed ({init.returncode}): {init.stderr.decode()[-2000:]}")
    _offline_config(repo)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _jsipfs(repo, "daemon", "--offline", "--enable-preload=false"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        url = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    f"jsipfs daemon exited with {proc.returncode}: {log.read_text()[-2000:]}"
                )
            api_file = repo / "api"
            if url is None and api_file.is_file():
                # e.g. /ip4/127.0.0.1/tcp/34189/http
                parts = api_file.read_text().strip().split("/")
                if len(parts) >= 5 and parts[4].isdigit():
                    url = f"http://{parts[2]}:{parts[4]}"
            if url is not None and _answers(url):
                break
            time.sleep(0.2)
        else:
            pytest.fail(
                f"jsipfs daemon did not answer within {START_TIMEOUT_S} s: {log.read_text()}"
            )
        yield IpfsNode(url=url, repo=repo, pid=proc.pid, log=log)
    finally:
        _stop(proc)
