"""A real PostgreSQL server for the index tests, started for the session and stopped by PID.

The server is Debian's ``postgresql`` (``/usr/lib/postgresql/<version>/bin``, the newest found,
or ``initdb``/``postgres`` on ``PATH``). ``initdb`` makes a throw-away cluster in a fresh
temporary directory (trust authentication, superuser ``visdm``, C locale, no fsync), and
``postgres`` serves it on a free 127.0.0.1 port with its Unix socket in the same directory.

PostgreSQL refuses to run as root, and CI runs as root: there both programs run as the
``postgres`` system user (``setpriv``, which execs in place so the PID we hold is the server's)
in a directory that user owns. As any other user they run as that user.

Each test gets a new database from :meth:`PostgresServer.new_database`. When the server
cannot start, the tests are skipped on a developer's machine but **fail** when ``CI=true``:
CI must never silently skip the PostgreSQL backend.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
SUPERUSER = "visdm"


def _binaries() -> tuple[Path, Path] | None:
    """``initdb`` and ``postgres`` of the newest installed PostgreSQL."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        bindir = versions[-1].parent
        return bindir / "initdb", bindir / "postgres"
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres:
        return Path(initdb), Path(postgres)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server: where it listens, its files and its process."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; returns its URL."""
        name = f"visdm_index_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)  # "fast" shutdown
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        shutil.rmtree(self.root, ignore_errors=True)


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix that runs a program as a user PostgreSQL accepts, and its ids."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root and there is no 'postgres' user to run as") from None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("running as root and setpriv (util-linux) is missing")
    prefix = [setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    return prefix, user.pw_uid, user.pw_gid


def start_postgres() -> PostgresServer:
    """Initialise a cluster in a temporary directory and start a server on it."""
    binaries = _binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    initdb, postgres = binaries
    prefix, uid, gid = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="visdm-pg-"))  # directly under /tmp: traversable
    if uid is not None and gid is not None:
        os.chown(root, uid, gid)
    data, log = root / "data", root / "server.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    done = subprocess.run(
        [
            *prefix,
            str(initdb),
            *("-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"),
            *("--locale=C", "--no-sync"),
        ],
        env=env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *prefix,
                str(postgres),
                *("-D", str(data), "-p", str(port)),
                *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}"),
                *("-c", "fsync=off", "-c", "synchronous_commit=off"),
                *("-c", "full_page_writes=off"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = PostgresServer(port, root, process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text(errors="replace")[-2000:]
            server.stop()
            raise RuntimeError(f"postgres exited with status {process.returncode}: {text}")
        with contextlib.suppress(psycopg.OperationalError):
            psycopg.connect(server.url(), connect_timeout=2).close()
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"postgres did not accept connections within {START_TIMEOUT_S:.0f} s")


def start_or_give_up() -> PostgresServer:
    """A started server; else a skip on a developer's machine and a failure when CI=true."""
    try:
        return start_postgres()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        message = f"cannot start PostgreSQL for the index tests: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: the PostgreSQL backend must be tested)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (see :func:`start_or_give_up`)."""
    server = start_or_give_up()
    yield server
    server.stop()
