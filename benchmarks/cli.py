"""CLI start-up: what a command costs before it does anything (see shared/BENCHMARKS.md).

Every ``visdm`` command is a fresh process, and a round from the command line is dozens of them
(the README's walk-through runs 45). Measured: ``visdm --help`` and ``visdm account list`` (no
chain, an empty data directory) as shipped, beside the peer: the same command in a process that
first imports what start-up used to load (py_ecc's BLS modules, which eth-keyfile imports for
BLS keystores and whose import precomputes pairing tables, and FastAPI, which registering the
``web`` command loaded). Runs alternate ours/peer; the median of each is reported, as CPU
seconds of the child (user + system, from ``wait4``: the machine is shared, so CPU is steadier
than wall time) and as wall seconds.

Usage: ``python benchmarks/cli.py [--quick] [--json] [--repeats K]`` (default 15 runs each;
``--quick``: ``account list`` only, 3 runs).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import Row, emit, parse_args

#: what start-up loaded before the stand-ins (``visdm._deferred_imports``) and the lazy web app
EAGER = "import py_ecc.bls, py_ecc.bls12_381, fastapi"
COMMANDS = {"visdm --help": ["--help"], "visdm account list": ["account", "list"]}


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(child CPU seconds, wall seconds) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    if proc.stderr is not None:
        proc.stderr.close()
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    args = parse_args(__doc__ or "", extra=None)
    runs = 3 if args.quick else max(args.repeats, 15)
    commands = dict(list(COMMANDS.items())[1:]) if args.quick else COMMANDS
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "VISDM_HOME": str(Path(home) / "visdm")}
        for name, cli_args in commands.items():
            ours_argv = [sys.executable, "-m", "visdm", *cli_args]
            code = f"{EAGER}; import sys; sys.argv = ['visdm', *{cli_args!r}]; "
            code += "from visdm.cli import main; main()"
            peer_argv = [sys.executable, "-c", code]
            _run(ours_argv, env)  # warm the file cache for both
            ours: list[tuple[float, float]] = []
            peer: list[tuple[float, float]] = []
            for _ in range(runs):
                ours.append(_run(ours_argv, env))
                peer.append(_run(peer_argv, env))
            for i, (what, unit) in enumerate((("CPU", "s"), ("wall time", "s"))):
                value = statistics.median(r[i] for r in ours)
                peer_value = statistics.median(r[i] for r in peer)
                rows.append(
                    Row(
                        f"{name}: {what} of the process",
                        value,
                        unit,
                        peer="same command with BLS and FastAPI loaded at start-up",
                        peer_value=peer_value,
                        ratio=peer_value / value,
                    )
                )
    emit(
        "cli",
        rows,
        as_json=args.json,
        packages=("visdm", "eth-account", "eth-keyfile", "py-ecc"),
        notes={"runs": runs, "load": os.getloadavg()[0]},
    )


if __name__ == "__main__":
    main()
