"""Shared plumbing for the scripts in ``benchmarks/`` (see shared/BENCHMARKS.md).

Each benchmark builds :class:`Row` objects and hands them to :func:`emit`, which prints a table
or, with ``--json``, one object ``{"benchmark", "machine", "rows"}``. ``ratio`` is ours versus
the peer in the direction where > 1 means we are better; absolute numbers are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["Row", "emit", "machine", "median_time", "parse_args"]


@dataclass
class Row:
    metric: str
    value: float
    unit: str
    peer: str | None = None
    peer_value: float | None = None
    ratio: float | None = None
    target: str | None = None
    meets: bool | None = None


def parse_args(
    description: str,
    argv: Sequence[str] | None = None,
    *,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The flags every benchmark takes: ``--quick``, ``--json``, ``--repeats``; ``extra`` adds
    a benchmark's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="the reduced size CI runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (median)")
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def machine(packages: Sequence[str] = ()) -> dict[str, Any]:
    """Cores, Python, platform and the versions of the named distributions."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def median_time(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Median wall-clock seconds of ``repeats`` calls, and the last call's result."""
    times: list[float] = []
    result: T | None = None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(times), result


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3g}"
    return f"{value:.4g}"


def emit(
    name: str,
    rows: Sequence[Row],
    *,
    as_json: bool,
    packages: Sequence[str] = (),
    notes: dict[str, Any] | None = None,
) -> None:
    """Print the rows as a table, or as one JSON object with ``--json``."""
    if as_json:
        out: dict[str, Any] = {
            "benchmark": name,
            "machine": machine(packages),
            "rows": [asdict(r) for r in rows],
        }
        if notes:
            out["notes"] = notes
        json.dump(out, sys.stdout)
        sys.stdout.write("\n")
        return
    header = ("metric", "value", "unit", "peer", "peer value", "ratio", "target", "meets")
    table = [
        (
            r.metric,
            _fmt(r.value),
            r.unit,
            r.peer or "-",
            _fmt(r.peer_value),
            _fmt(r.ratio),
            r.target or "-",
            "-" if r.meets is None else ("yes" if r.meets else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *table, strict=True)]
    print(f"# {name}  ({json.dumps(machine(packages))})")
    for line in (header, *table):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
    for key, value in (notes or {}).items():
        print(f"# {key}: {value}")
