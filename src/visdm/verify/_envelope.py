"""The determinism envelope: what two machines must share for a re-execution to match bit for bit.

Training, evaluation and valuation are deterministic given the job's seed
(:mod:`visdm.training._rng`): torch runs with deterministic algorithms on one intra-op thread
and every random draw comes from the seed. What can still change a float is the code that does
the arithmetic: the library versions, and the SIMD kernels torch and NumPy dispatch to, which
follow the CPU's instruction-set extensions (torch picks ``AVX512``, ``AVX2`` or ``DEFAULT``
kernels; ``ATEN_CPU_CAPABILITY`` overrides it). The result document records this envelope, and
a verifier re-executes a result only inside the same one — outside it a mismatch proves nothing.

This module does not import torch: it reads the CPU's flags from ``/proc/cpuinfo``.
"""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ENVELOPE_KEYS", "TRAINING_THREADS", "cpu_capability", "determinism_envelope"]

#: intra-op threads of every training job (``visdm.training.train``'s default)
TRAINING_THREADS = 1
#: the fields that must be equal for results to be comparable bit for bit
ENVELOPE_KEYS = ("machine", "cpuCapability", "threads", "versions")
#: the extensions torch's and NumPy's kernel dispatch looks at
_SIMD = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq")
_AVX512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}


def _cpu_flags(cpuinfo: Path) -> tuple[str, frozenset[str]]:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return "", frozenset()
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in {"flags", "Features"} and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_capability(flags: frozenset[str], environ: Mapping[str, str] | None = None) -> str:
    """The kernel family torch dispatches to on a CPU with ``flags`` (x86 names)."""
    forced = (os.environ if environ is None else environ).get("ATEN_CPU_CAPABILITY")
    if forced:
        return forced.upper()
    if flags >= _AVX512:
        return "AVX512"
    if {"avx2", "fma"} <= flags:
        return "AVX2"
    return "DEFAULT"


def determinism_envelope(
    versions: Mapping[str, str], *, cpuinfo: Path = Path("/proc/cpuinfo")
) -> dict[str, Any]:
    """This machine's envelope for a job that ran with ``versions`` (the job's own report of
    Python's and the libraries' versions)."""
    model, flags = _cpu_flags(cpuinfo)
    return {
        "machine": platform.machine(),
        "cpuModel": model,
        "cpuCapability": cpu_capability(flags),
        "simd": sorted(flags & set(_SIMD)),
        "cpuFlagsHash": "0x" + hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest(),
        "threads": TRAINING_THREADS,
        "versions": dict(sorted(versions.items())),
    }
