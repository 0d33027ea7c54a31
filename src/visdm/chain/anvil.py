"""The embedded local chain: an anvil node started, found and stopped by ViSDM.

``visdm chain up`` starts anvil on a free loopback port with ``--state`` pointing into the data
directory, so a restart brings back every block, contract and balance. The running node is
described by ``chain/anvil.json`` (PID, URL, state file); ``down`` stops it by that PID after
checking the PID still belongs to anvil, so a recycled PID is never killed.

The state file, and what survives what. ``chain down`` sends SIGTERM, on which anvil writes its
whole state before it exits: nothing is lost. Between stops anvil also rewrites the file every
:data:`_STATE_INTERVAL_S` seconds, so a SIGKILL (or a power cut) loses at most that much — a
node or a provider that saw a later block notices the chain lost it and acts again. The
interval stays at 2 s rather than shorter because anvil rewrites the file in place (truncate,
then write the whole JSON; about 0.1 s for 10 MB of state): each dump costs a full rewrite even
when idle, and a kill during one tears the file, which loses far more than two seconds. So a
copy known whole — the file as a clean stop left it, or as a start read it — is kept beside
it (``state.saved.json``), and a torn file is replaced by that copy at the next ``chain up``,
with a warning saying how far back that goes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from visdm.chain.client import ChainClient
from visdm.errors import (
    ChainError,
    ChainNotRunningError,
    ChainTimeoutError,
    ConfigError,
    InvalidInputError,
)

__all__ = [
    "MAX_ADVANCE_S",
    "AnvilNode",
    "ChainStatus",
    "advance_time",
    "chain_down",
    "chain_status",
    "chain_up",
    "find_anvil",
    "start_anvil",
]

_LISTENING = re.compile(r"Listening on (\d+\.\d+\.\d+\.\d+):(\d+)")
_NODE_FILE = "anvil.json"
_STATE_FILE = "state.json"
#: the state file as last known whole (after a clean stop, or once anvil started from it)
_SAVED_FILE = "state.saved.json"
_LOG_FILE = "anvil.log"
#: anvil dumps its state this often as well as on a clean exit (see the module docstring)
_STATE_INTERVAL_S = 2
log = logging.getLogger("visdm.chain")
_CHAIN_ID = 31337
#: the most one ``chain advance`` moves the clock: ten years covers every market period, and
#: the contracts keep deadlines as uint48 (now + a period), which a clock near 2^48 would wrap
MAX_ADVANCE_S = 10 * 365 * 86_400
#: Popen handles of nodes this process started, so they are reaped, not leaked
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def find_anvil() -> Path:
    """Locate the anvil binary: ``$VISDM_ANVIL``, npm's platform package, then ``PATH``."""
    explicit = os.environ.get("VISDM_ANVIL")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"VISDM_ANVIL={explicit!r} is not a file")
        return path
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    package = f"anvil-{platform.system().lower()}-{arch}"
    for root in _node_modules_roots():
        candidate = root / "@foundry-rs" / package / "bin" / "anvil"
        if candidate.is_file():
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise ConfigError(
        "anvil not found: run `npm ci` in the ViSDM checkout (it installs @foundry-rs/anvil), "
        "or set VISDM_ANVIL to the binary"
    )


def _node_modules_roots() -> list[Path]:
    here = Path(__file__).resolve()
    roots = [Path.cwd() / "node_modules"]
    roots += [parent / "node_modules" for parent in here.parents]
    return roots


@dataclass(frozen=True, slots=True)
class AnvilNode:
    """A running anvil process."""

    pid: int
    host: str
    port: int
    state_file: str | None
    log_file: str

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def is_alive(self) -> bool:
        return _is_anvil_pid(self.pid)

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop by PID (SIGTERM lets anvil dump its state; SIGKILL if it hangs)."""
        _terminate(self.pid, timeout_s=timeout_s)


def start_anvil(
    *,
    state_file: Path | None,
    log_file: Path,
    host: str = "127.0.0.1",
    chain_id: int = _CHAIN_ID,
    startup_timeout_s: float = 30.0,
    extra_args: tuple[str, ...] = (),
) -> AnvilNode:
    """Start anvil on a free port of ``host`` and wait until it answers JSON-RPC."""
    binary = find_anvil()
    args = [str(binary), "--host", host, "--port", "0", "--chain-id", str(chain_id)]
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        args += ["--state", str(state_file), "--state-interval", str(_STATE_INTERVAL_S)]
    args += list(extra_args)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the CLI process that started it
        )
    _CHILDREN[proc.pid] = proc
    port = wait_for_rpc(proc, log_file, host, _LISTENING, "anvil", timeout_s=startup_timeout_s)
    if port is None:
        _terminate(proc.pid, timeout_s=5)
        raise ChainTimeoutError(
            f"anvil did not answer within {startup_timeout_s:.0f} s; see {log_file}"
        )
    return AnvilNode(
        pid=proc.pid,
        host=host,
        port=port,
        state_file=str(state_file) if state_file else None,
        log_file=str(log_file),
    )


def wait_for_rpc(
    proc: subprocess.Popen[bytes],
    log_file: Path,
    host: str,
    listening: re.Pattern[str],
    name: str,
    *,
    timeout_s: float,
) -> int | None:
    """The port a dev node just started (``proc``, logging to ``log_file``) answers JSON-RPC
    on, read from its log's ``listening`` line; ``None`` if it does not answer in time.
    Raises :class:`ChainError` with the log's tail if the node exits first."""
    deadline = time.monotonic() + timeout_s
    port: int | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace")[-1500:]
            raise ChainError(f"{name} exited with status {proc.returncode} at start:\n{tail}")
        if port is None:
            match = listening.search(log_file.read_text(errors="replace"))
            if match:
                port = int(match.group(2))
        if port is not None and _answers(f"http://{host}:{port}"):
            return port
        time.sleep(0.05)
    return None


def _answers(url: str) -> bool:
    try:
        response = httpx.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and "result" in response.json()


def _is_anvil_pid(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if not cmdline:  # a zombie: the process has exited
        return False
    return Path(cmdline.split(b"\0", 1)[0].decode(errors="replace")).name == "anvil"


def _terminate(pid: int, *, timeout_s: float) -> None:
    _reap(pid)
    if not _is_anvil_pid(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not _is_anvil_pid(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:  # our own child: wait for the kill, or it lingers as a zombie
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)
    _reap(pid)


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for a node started by another CLI call this is a no-op.
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# --- the `visdm chain` commands ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """What ``visdm chain status`` reports."""

    running: bool
    rpc_url: str | None
    pid: int | None
    chain_id: int | None
    block_number: int | None
    state_file: str | None


def _node_file(chain_dir: Path) -> Path:
    return chain_dir / _NODE_FILE


def read_node(chain_dir: Path) -> AnvilNode | None:
    """The node described by ``chain_dir/anvil.json`` if it is still running, else ``None``."""
    path = _node_file(chain_dir)
    try:
        data = json.loads(path.read_text())
        node = AnvilNode(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ChainError(f"{path} is corrupt ({exc}): delete it and run `visdm chain up`") from exc
    return node if node.is_alive() else None


def chain_up(chain_dir: Path) -> tuple[AnvilNode, bool]:
    """Start the local chain unless it runs already; return it and whether it was started now."""
    existing = read_node(chain_dir)
    if existing is not None:
        return existing, False
    _repair_torn_state(chain_dir)
    node = start_anvil(state_file=chain_dir / _STATE_FILE, log_file=chain_dir / _LOG_FILE)
    path = _node_file(chain_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(node), indent=1))
    tmp.replace(path)
    _save_whole_state(chain_dir)  # anvil just read it: it is whole
    return node, True


def chain_down(chain_dir: Path) -> bool:
    """Stop the local chain; its state stays in the data directory. False if none was running."""
    node = read_node(chain_dir)
    _node_file(chain_dir).unlink(missing_ok=True)
    if node is None:
        return False
    node.stop()
    if _whole(chain_dir / _STATE_FILE):  # written on SIGTERM; not if anvil had to be killed
        _save_whole_state(chain_dir)
    return True


def _whole(path: Path) -> bool:
    """Whether ``path`` holds one complete JSON document (a torn dump does not parse)."""
    try:
        with path.open("rb") as handle:
            json.load(handle)
    except (OSError, ValueError):
        return False
    return True


def _save_whole_state(chain_dir: Path) -> None:
    state = chain_dir / _STATE_FILE
    if not state.is_file():
        return
    tmp = chain_dir / (_SAVED_FILE + ".tmp")
    shutil.copyfile(state, tmp)
    tmp.replace(chain_dir / _SAVED_FILE)


def _repair_torn_state(chain_dir: Path) -> None:
    """Before a start: a state file cut short by a kill during a dump is put aside and the
    copy saved whole takes its place; without a copy, say what to do."""
    state = chain_dir / _STATE_FILE
    saved = chain_dir / _SAVED_FILE
    if not state.exists():  # a fresh chain: a copy left from an earlier one is not its past
        saved.unlink(missing_ok=True)
        return
    if _whole(state):
        return
    torn = state.with_name(f"state.torn-{int(time.time())}.json")
    if not _whole(saved):
        raise ChainError(
            f"the local chain's state {state} is damaged (anvil was killed while writing it) "
            f"and no whole copy was saved: move it away (e.g. to {torn.name}) and run "
            "`visdm chain up` for a fresh chain, then `visdm deploy`"
        )
    state.replace(torn)
    shutil.copyfile(saved, state)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved.stat().st_mtime))
    log.warning(
        "the local chain's state was damaged (anvil was killed while writing it): starting "
        "from the copy saved at %s, so what happened since is gone; the damaged file is %s",
        when,
        torn,
    )


def chain_status(chain_dir: Path) -> ChainStatus:
    """Whether the local chain runs, and where."""
    node = read_node(chain_dir)
    if node is None:
        state = chain_dir / _STATE_FILE
        return ChainStatus(False, None, None, None, None, str(state) if state.exists() else None)
    try:
        chain_id = _rpc(node.rpc_url, "eth_chainId")
        block = _rpc(node.rpc_url, "eth_blockNumber")
    except ChainNotRunningError:
        return ChainStatus(False, node.rpc_url, node.pid, None, None, node.state_file)
    return ChainStatus(
        True, node.rpc_url, node.pid, int(chain_id, 16), int(block, 16), node.state_file
    )


def local_rpc_url(chain_dir: Path) -> str:
    """The URL of the local chain, or a clear error saying how to start one."""
    node = read_node(chain_dir)
    if node is None:
        raise ChainNotRunningError(
            "no local chain is running: start one with `visdm chain up`, or pass --rpc-url"
        )
    return node.rpc_url


def _rpc(url: str, method: str) -> str:
    try:
        response = httpx.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=3
        )
        result: str = response.json()["result"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise ChainNotRunningError(f"the chain at {url} does not answer ({exc})") from exc
    return result


def advance_time(client: ChainClient, seconds: int) -> int:
    """Move a local dev chain's clock forward by ``seconds`` and mine a block; return the new
    chain time.

    Refuses a step outside ``1..MAX_ADVANCE_S`` before sending anything, and checks that the
    clock really moved: anvil answers a value it cannot take with an error that a plain RPC
    call would pass over, mining a block at the old time.
    """
    if isinstance(seconds, bool) or not 1 <= seconds <= MAX_ADVANCE_S:
        raise InvalidInputError(
            f"cannot advance the chain by {seconds} s: give 1 to {MAX_ADVANCE_S:,} s (ten "
            "years) at a time"
        )
    if not client.is_dev_chain:
        raise InvalidInputError(f"{client.rpc_url} is not a local dev chain: time cannot be moved")
    before = client.latest_timestamp()
    answer = client.rpc(
        lambda: client.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    )
    if answer.get("error"):
        raise ChainError(
            f"the chain refused to advance by {seconds} s: {answer['error'].get('message')}"
        )
    client.rpc(lambda: client.w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
    now = client.latest_timestamp()
    if now < before + seconds:
        raise ChainError(
            f"the chain's clock moved from {before} to {now}, not by the {seconds} s asked: "
            "check the chain's log"
        )
    return now
