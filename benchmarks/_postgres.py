"""A throw-away PostgreSQL server for the index benchmark, started and stopped by PID.

The same recipe as the index tests' fixture (``tests/integration/index/conftest.py``), without
pytest, which the benchmarks' environment does not install: the newest Debian ``postgresql``
(or ``initdb``/``postgres`` on ``PATH``), a cluster in a fresh temporary directory (trust
authentication, C locale, no fsync), served on a free 127.0.0.1 port; as root, both programs
run as the ``postgres`` user through ``setpriv``, which execs in place so the PID held is the
server's.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

SUPERUSER = "visdm"
START_TIMEOUT_S = 60.0


@dataclass
class Server:
    port: int
    root: Path
    process: subprocess.Popen[bytes]

    def new_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)  # "fast" shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        shutil.rmtree(self.root, ignore_errors=True)


def _binaries() -> tuple[str, str]:
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return str(versions[-1]), str(versions[-1].parent / "postgres")
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if not (initdb and postgres):
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return initdb, postgres


def start() -> Server:
    """Initialise a cluster and serve it; raises ``RuntimeError`` saying why it could not."""
    initdb, postgres = _binaries()
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="visdm-bench-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = pwd.getpwnam("postgres")
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise RuntimeError("running as root and setpriv (util-linux) is missing")
        prefix = [setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        os.chown(root, user.pw_uid, user.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    data = root / "data"
    done = subprocess.run(
        [
            *prefix,
            *(initdb, "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"),
            *("--locale=C", "--no-sync"),
        ],
        env=env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-500:]}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [
            *prefix,
            *(postgres, "-D", str(data), "-p", str(port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}"),
            *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    server = Server(port, root, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"postgres exited with status {process.returncode}")
        with contextlib.suppress(psycopg.OperationalError):
            psycopg.connect(server.url("postgres"), connect_timeout=2).close()
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"postgres did not accept connections within {START_TIMEOUT_S:.0f} s")
