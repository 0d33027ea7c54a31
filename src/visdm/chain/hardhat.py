"""A second EVM for the tests: Hardhat's node (EDR) started, found and stopped like anvil.

The contracts and one full round are also run on Hardhat's node, so that nothing the market does
depends on anvil's own behaviour. :func:`start_hardhat` mirrors
:func:`visdm.chain.anvil.start_anvil`: a free loopback port, a log file, a wait until JSON-RPC
answers, and a stop by PID that checks the PID is still this node's.

Hardhat insists on a local installation next to its config, so the node runs in a fresh
directory holding a generated ``hardhat.config.js`` and a link to the checkout's
``node_modules``. Nothing is compiled (an empty source folder: ViSDM deploys its own
artifacts) and nothing is fetched: the telemetry prompt is switched off.

What differs from anvil, and how the client copes (``docs/portability.md``):

- the faucet is ``hardhat_setBalance`` instead of ``anvil_setBalance``, and the client version
  reads ``HardhatNetwork/...``; :class:`~visdm.chain.client.ChainClient` picks the method by it;
- ``evm_snapshot``, ``evm_revert``, ``evm_increaseTime`` and ``evm_mine`` behave the same.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from visdm.chain.anvil import _node_modules_roots, wait_for_rpc
from visdm.errors import ChainError, ChainTimeoutError, ConfigError

__all__ = ["HardhatNode", "find_hardhat", "start_hardhat"]

_LISTENING = re.compile(r"JSON-RPC server at http://(\d+\.\d+\.\d+\.\d+):(\d+)/")
_CHAIN_ID = 31337
#: the config Hardhat reads: the chain id anvil uses, and an empty source folder so that the
#: compile step ``hardhat node`` runs first finds nothing (and downloads no compiler)
_CONFIG = """\
module.exports = {{
  paths: {{ sources: "./no-sources" }},
  networks: {{ hardhat: {{ chainId: {chain_id} }} }},
}};
"""
#: no telemetry question (stdin is not a terminal either, so Hardhat could not ask it)
_QUIET_ENV = {"HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
#: Popen handles of nodes this process started, so they are reaped, not leaked
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def find_hardhat() -> Path:
    """The ``node_modules`` folder holding Hardhat (installed by ``npm ci``)."""
    for root in _node_modules_roots():
        if (root / "hardhat" / "internal" / "cli" / "cli.js").is_file():
            return root
    raise ConfigError(
        "Hardhat not found: run `npm ci` in the ViSDM checkout (it installs hardhat as a dev "
        "dependency)"
    )


@dataclass(frozen=True, slots=True)
class HardhatNode:
    """A running Hardhat node."""

    pid: int
    host: str
    port: int
    project_dir: str
    log_file: str

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def is_alive(self) -> bool:
        return _is_hardhat_pid(self.pid, Path(self.project_dir))

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop by PID (SIGTERM, then SIGKILL if it hangs)."""
        _terminate(self.pid, Path(self.project_dir), timeout_s=timeout_s)


def start_hardhat(
    *,
    log_file: Path,
    host: str = "127.0.0.1",
    chain_id: int = _CHAIN_ID,
    startup_timeout_s: float = 60.0,
) -> HardhatNode:
    """Start ``hardhat node`` on a free port of ``host`` and wait until it answers JSON-RPC."""
    modules = find_hardhat()
    project = Path(tempfile.mkdtemp(prefix="visdm-hardhat-"))
    (project / "hardhat.config.js").write_text(_CONFIG.format(chain_id=int(chain_id)))
    (project / "package.json").write_text('{"private": true}\n')
    (project / "no-sources").mkdir()
    (project / "node_modules").symlink_to(modules, target_is_directory=True)
    cli = modules / "hardhat" / "internal" / "cli" / "cli.js"
    args = ["node", str(cli), "node", "--hostname", host, "--port", "0"]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args,
            cwd=project,
            env={**os.environ, **_QUIET_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    try:
        port = wait_for_rpc(
            proc, log_file, host, _LISTENING, "hardhat node", timeout_s=startup_timeout_s
        )
    except ChainError:
        _terminate(proc.pid, project, timeout_s=5)
        raise
    if port is None:
        _terminate(proc.pid, project, timeout_s=5)
        raise ChainTimeoutError(
            f"hardhat node did not answer within {startup_timeout_s:.0f} s; see {log_file}"
        )
    return HardhatNode(
        pid=proc.pid, host=host, port=port, project_dir=str(project), log_file=str(log_file)
    )


def _is_hardhat_pid(pid: int, project: Path) -> bool:
    # a recycled PID is never this node: it must still run in the node's own project folder
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return bool(cmdline) and b"hardhat" in cmdline and cwd == project


def _terminate(pid: int, project: Path, *, timeout_s: float) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None and child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
    elif child is None and _is_hardhat_pid(pid, project):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _remove_project(project)


def _remove_project(project: Path) -> None:
    # the link to node_modules goes first, so nothing below it is ever walked
    with contextlib.suppress(OSError):
        (project / "node_modules").unlink()
    shutil.rmtree(project, ignore_errors=True)
