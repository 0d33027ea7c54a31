"""The load benchmark's marketplace on loopback (``benchmarks/_rounds.py``), loaded by path:
``benchmarks/`` is a folder of scripts, not a package, and the name is taken on PyPI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[3] / "benchmarks" / "_rounds.py"
_spec = importlib.util.spec_from_file_location("visdm_benchmark_rounds", _PATH)
assert _spec is not None and _spec.loader is not None
rounds = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = rounds  # dataclasses look their module up by name
_spec.loader.exec_module(rounds)

World = rounds.World
FINAL = rounds.FINAL
ProposalLostError = rounds.ProposalLostError
