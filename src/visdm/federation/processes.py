"""Starting and stopping a round's Flower SuperLink and SuperNodes, each its own process.

:class:`Federation` is the coordinator's side of one round: it makes the round's CA
(:mod:`visdm.federation._pki`), starts ``flower-superlink`` with TLS and
``--enable-supernode-auth`` on a free loopback (or given) port, registers the SuperNode keys of
the nodes the proposal names and no other, starts one ``flower-supernode`` per regional node (in
a real deployment each node starts its own; the launcher does it for the demo and the tests),
submits the app with ``flwr run`` and waits for the run to finish. Every process gets its own
``FLWR_HOME`` and runs with runtime dependency installation disabled, the update check and
telemetry off; each is stopped by its PID, together with the helper processes Flower started
under it (SuperExec, ServerApp, ClientApp), which would otherwise outlive it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from visdm.errors import FederationProcessError, FederationRoundError, NodeNotInFederationError
from visdm.federation._pki import RoundTLS, SuperNodeKey, make_round_tls

__all__ = [
    "APPS",
    "APP_NAME",
    "Federation",
    "RunStatus",
    "SuperNodeProcess",
    "flower_env",
    "write_app",
]

APP_NAME = "visdm-federated-round"
_CONNECTION = "visdm"
_POLL_S = 0.25
# each `flwr ls` is a CLI process of its own (a second or more of CPU): ask seldom
_RUN_POLL_S = 3.0
ConfigValue = str | int | float | bool


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _executable(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FederationProcessError(
            f"{name} is not installed next to {sys.executable}: install the pinned Flower "
            "with `pip install flwr==1.42.0` (make test does)"
        )
    return str(path)


def flower_env(home: Path) -> dict[str, str]:
    """The environment of a Flower process: its own home, no update check, no telemetry, no
    dependency installation, and this interpreter's scripts first on ``PATH`` (SuperLink and
    SuperNode start ``flower-superexec`` by name)."""
    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(home),
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def _descendants(pid: int) -> list[int]:
    """PIDs whose parent chain leads to ``pid`` (Linux ``/proc``), deepest last."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields follow the last ')'
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop_tree(proc: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """SIGTERM the process and what it started, SIGKILL what is left after ``timeout_s``."""
    pids = [proc.pid, *_descendants(proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    while time.monotonic() < deadline and any(_alive(p) for p in pids[1:]):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _spawn(args: Sequence[str], *, home: Path, log: Path) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - fixed argv from this module, no shell
            list(args),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=flower_env(home),
            # its own process group: a SuperNode that exits by itself leaves its SuperExec
            # behind, orphaned, and only the group still finds it
            start_new_session=True,
        )


def _stop_group(proc: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """:func:`_stop_tree`, then whatever is left in the process's group (orphans included)."""
    _stop_tree(proc, timeout_s=timeout_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _toml_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a JSON string is a valid TOML basic string


#: the ServerApp and ClientApp of a round: plain FedAvg/FedProx with TKNN values, or SecAgg+
APPS = {
    "fedavg": ("visdm.federation.server_app:app", "visdm.federation.client_app:app"),
    "secagg": ("visdm.federation.secagg:server", "visdm.federation.secagg:client"),
}


def write_app(
    directory: Path,
    defaults: Mapping[str, ConfigValue],
    *,
    app: str = "fedavg",
    components: tuple[str, str] | None = None,
) -> Path:
    """The Flower app ``flwr run`` bundles: only its ``pyproject.toml``; the ServerApp and
    ClientApp are this package's modules, already installed on every node."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "[build-system]",
        'requires = ["setuptools>=68"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f'name = "{APP_NAME}"',
        'version = "1.0.0"',
        'description = "A ViSDM federated training round"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        'publisher = "visdm"',
        "",
        "[tool.flwr.app.components]",
        f'serverapp = "{(components or APPS[app])[0]}"',
        f'clientapp = "{(components or APPS[app])[1]}"',
        "",
        "[tool.flwr.app.config]",
        *(f"{key} = {_toml_value(value)}" for key, value in sorted(defaults.items())),
        "",
    ]
    (directory / "pyproject.toml").write_text("\n".join(lines))
    return directory


@dataclass
class SuperNodeProcess:
    """One regional node's ``flower-supernode``."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_supernode(
    workdir: Path,
    name: str,
    *,
    superlink: str,
    ca_cert: Path | None,
    key: SuperNodeKey | None,
    node_config: Mapping[str, ConfigValue],
    max_wait_s: float | None = None,
) -> SuperNodeProcess:
    """Start ``flower-supernode`` for one regional node against ``superlink`` (``host:port``),
    trusting only ``ca_cert`` (``None``: insecure, tests' controls only) and authenticating
    with ``key``; its home and log live under ``workdir``."""
    args = [_executable("flower-supernode"), "--superlink", superlink]
    args += ["--port", str(_free_port("127.0.0.1"))]  # its own runtime API, loopback only
    if ca_cert is not None:
        args += ["--root-certificates", str(ca_cert)]
    else:
        args.append("--insecure")
    if key is not None:
        args += ["--auth-supernode-private-key", str(key.private_key)]
    if max_wait_s is not None:
        args += ["--max-wait-time", str(max_wait_s)]
    if node_config:
        args += [
            "--node-config",
            " ".join(f"{k}={_toml_value(v)}" for k, v in sorted(node_config.items())),
        ]
    home = workdir / "supernodes" / name
    log = workdir / f"supernode-{name}.log"
    return SuperNodeProcess(name, _spawn(args, home=home, log=log), log)


def stop_supernode(node: SuperNodeProcess, *, timeout_s: float = 10.0) -> None:
    """Stop a SuperNode by its PID with what it started."""
    _stop_group(node.proc, timeout_s=timeout_s)


@dataclass(frozen=True, slots=True)
class RunStatus:
    """What ``flwr ls`` says of a finished run: status, seconds, bytes in and out."""

    run_id: str
    status: str
    elapsed_s: float
    bytes_in: int
    bytes_out: int
    raw: Mapping[str, Any] = field(default_factory=dict)


class Federation:
    """The coordinator's SuperLink for one round and the SuperNodes it launches.

    ::

        with Federation(workdir, named_keys=[eu.public_key, us.public_key]) as fed:
            fed.add_supernode("eu", key=eu, node_config={...})
            status = fed.run(run_config={...})

    Only the keys in ``named_keys`` are registered; with ``authenticate=False`` (a test's
    control with the defence off) the SuperLink still serves TLS but admits any SuperNode that
    presents a key.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        named_keys: Sequence[Path] = (),
        host: str = "127.0.0.1",
        authenticate: bool = True,
        startup_timeout_s: float = 60.0,
        tls: RoundTLS | None = None,
        port: int = 0,
    ) -> None:
        self.workdir = workdir
        self.named_keys = tuple(named_keys)
        self.host = host
        self.authenticate = authenticate
        self.startup_timeout_s = startup_timeout_s
        # an announced round's CA and port (members learnt them before the SuperLink started)
        self.port = port
        self.tls: RoundTLS | None = tls
        self.supernodes: dict[str, SuperNodeProcess] = {}
        self._superlink: subprocess.Popen[bytes] | None = None
        self._cli_home = workdir / "cli"

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def superlink_log(self) -> Path:
        return self.workdir / "superlink.log"

    def start(self) -> Self:
        """Make the round's CA, start the SuperLink, register the named nodes' keys."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port(self.host)
        args = [_executable("flower-superlink"), "--host", self.host, "--port", str(self.port)]
        args.append("--disable-runtime-dependency-installation")
        if self.tls is None:
            self.tls = make_round_tls(self.workdir / "tls", host=self.host)
        args += [
            "--ssl-ca-certfile",
            str(self.tls.ca_cert),
            "--ssl-certfile",
            str(self.tls.server_cert),
            "--ssl-keyfile",
            str(self.tls.server_key),
        ]
        if self.authenticate:
            args.append("--enable-supernode-auth")
        self._superlink = _spawn(args, home=self.workdir / "superlink", log=self.superlink_log)
        self._write_cli_config()
        try:
            self._wait_listening()
            for key in self.named_keys if self.authenticate else ():
                self._flwr("supernode", "register", str(key), _CONNECTION)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop every SuperNode, then the SuperLink, each by PID with what it started."""
        for node in self.supernodes.values():
            _stop_group(node.proc, timeout_s=timeout_s)
        if self._superlink is not None:
            _stop_group(self._superlink, timeout_s=timeout_s)
            self._superlink = None

    def _write_cli_config(self) -> None:
        self._cli_home.mkdir(parents=True, exist_ok=True)
        lines = ["[superlink]", f'default = "{_CONNECTION}"', "", f"[superlink.{_CONNECTION}]"]
        lines.append(f'address = "{self.address}"')
        if self.tls is not None:
            lines.append(f"root-certificates = {json.dumps(str(self.tls.ca_cert))}")
        else:
            lines.append("insecure = true")
        (self._cli_home / "config.toml").write_text("\n".join(lines) + "\n")

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._superlink is None or self._superlink.poll() is not None:
                raise FederationProcessError(
                    f"flower-superlink exited while starting on {self.address}: see "
                    f"{self.superlink_log}"
                )
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1):
                # the HTTP server answers only after its lifespan hook (and SuperExec) started
                if "Application startup complete" in self.superlink_log.read_text(errors="replace"):
                    return
            time.sleep(_POLL_S)
        raise FederationProcessError(
            f"flower-superlink did not listen on {self.address} within "
            f"{self.startup_timeout_s:.0f} s: see {self.superlink_log}"
        )

    # --- SuperNodes ---------------------------------------------------------------------------
    def add_supernode(
        self,
        name: str,
        *,
        key: SuperNodeKey | None,
        node_config: Mapping[str, ConfigValue],
        max_wait_s: float | None = None,
    ) -> SuperNodeProcess:
        """Start ``flower-supernode`` for one regional node, authenticating with ``key``."""
        if name in self.supernodes:
            raise FederationProcessError(f"a SuperNode named {name!r} is already running")
        node = start_supernode(
            self.workdir,
            name,
            superlink=self.address,
            ca_cert=self.tls.ca_cert if self.tls is not None else None,
            key=key,
            node_config=node_config,
            max_wait_s=max_wait_s,
        )
        self.supernodes[name] = node
        return node

    def kill_supernode(self, name: str) -> None:
        """Kill one SuperNode and its ClientApp at once (SIGKILL): a node dropping out."""
        node = self.supernodes[name]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(node.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.proc.wait(timeout=5)

    def connected_nodes(self) -> list[dict[str, Any]]:
        """``flwr supernode ls``: the SuperNodes the SuperLink knows, with their status."""
        out = self._flwr("supernode", "ls", _CONNECTION, "--format", "json")
        nodes = out.get("nodes", [])
        return list(nodes) if isinstance(nodes, list) else []

    def wait_for_nodes(self, count: int, *, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Wait until ``count`` registered SuperNodes are online."""
        deadline = time.monotonic() + timeout_s
        online: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            if not any(node.running() for node in self.supernodes.values()):
                break  # every SuperNode has exited: none will come online
            online = [n for n in self.connected_nodes() if n.get("status") == "online"]
            if len(online) >= count:
                return online
            time.sleep(_RUN_POLL_S)
        raise FederationProcessError(
            f"only {len(online)} of {count} SuperNodes came online within {timeout_s:.0f} s: "
            f"see the supernode-*.log files in {self.workdir}"
        )

    # --- runs ------------------------------------------------------------------------------
    def run(
        self,
        run_config: Mapping[str, ConfigValue],
        *,
        defaults: Mapping[str, ConfigValue] | None = None,
        app: str = "fedavg",
        components: tuple[str, str] | None = None,
        timeout_s: float = 600.0,
    ) -> RunStatus:
        """Submit the round's app (``fedavg`` or ``secagg``, see :data:`APPS`) with
        ``run_config`` and wait until the run has finished; ``components`` names another
        ``(serverapp, clientapp)`` pair, importable by the Flower processes."""
        if app not in APPS:
            raise FederationRoundError(f"unknown app {app!r}: use one of {', '.join(APPS)}")
        app_dir = write_app(
            self.workdir / f"app-{app}",
            defaults if defaults is not None else run_config,
            app=app,
            components=components,
        )
        # a TOML file, not key=value pairs: Flower's pair syntax cannot quote JSON values
        config_file = self.workdir / "run-config.toml"
        config_file.write_text(
            "".join(f"{k} = {_toml_value(v)}\n" for k, v in sorted(run_config.items()))
        )
        started = self._flwr(
            "run", str(app_dir), _CONNECTION, "--format", "json", "--run-config", str(config_file)
        )
        run_id = str(started.get("run-id") or "")
        if not run_id:
            raise FederationRoundError(f"the SuperLink did not start the run: {started}")
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.run_status(run_id)
            if status.status.startswith("finished"):
                return status
            if time.monotonic() > deadline:
                self._flwr("stop", run_id, _CONNECTION)
                raise FederationRoundError(
                    f"run {run_id} did not finish within {timeout_s:.0f} s and was stopped: "
                    f"see {self.superlink_log}"
                )
            time.sleep(_RUN_POLL_S)

    def run_status(self, run_id: str) -> RunStatus:
        """``flwr ls --run-id``: a run's status, its seconds and its bytes in and out."""
        out = self._flwr("ls", _CONNECTION, "--run-id", run_id, "--format", "json")
        runs = out.get("runs") or [{}]
        run = runs[0] if isinstance(runs, list) and runs else {}
        traffic = run.get("network-traffic", {})
        return RunStatus(
            run_id=run_id,
            status=str(run.get("status", "unknown")),
            elapsed_s=float(run.get("elapsed", 0.0)),
            bytes_in=int(traffic.get("inbound-bytes", 0)),
            bytes_out=int(traffic.get("outbound-bytes", 0)),
            raw=run,
        )

    def _flwr(self, *args: str) -> dict[str, Any]:
        """One ``flwr`` CLI call against this round's SuperLink, its JSON answer parsed."""
        done = subprocess.run(  # noqa: S603 - fixed argv from this module, no shell
            [_executable("flwr"), *args],
            capture_output=True,
            env=flower_env(self._cli_home),
            timeout=120,
            check=False,
        )
        text = done.stdout.decode(errors="replace")
        start = text.find("{")
        answer: dict[str, Any] = {}
        if start >= 0:
            with contextlib.suppress(json.JSONDecodeError):
                answer = json.loads(text[start:])
        if done.returncode != 0 or answer.get("success") is False:
            message = answer.get("error-message") or done.stderr.decode(errors="replace")[-400:]
            what = " ".join(args[:2])
            if args[:2] == ("supernode", "register"):
                raise NodeNotInFederationError(
                    f"the SuperLink refused to register the SuperNode key {args[2]}: "
                    f"{str(message).strip()}"
                )
            raise FederationProcessError(
                f"`flwr {what}` failed against {self.address}: {str(message).strip()}"
            )
        return answer
