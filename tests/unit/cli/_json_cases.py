"""The registry of ``--json`` cases the CLI's scheme test runs, and the values they share:
each case fakes the SDK calls one command makes and returns its argv and an extra check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from visdm.chain.client import TxResult
from visdm.chain.contracts import ComputeNodeRecord
from visdm.types import Address

PASSWORD = "correct-horse"
#: an amount no JSON number holds exactly
BIG = 12_345_678_901_234_567_890_123
ADDRESS = Address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
TX = TxResult(tx_hash="0x" + "ab" * 32, block_number=7, gas_used=51_234, receipt={})  # type: ignore[arg-type]
NODE = ComputeNodeRecord(
    ADDRESS, ADDRESS, 0, True, False, bytes(range(32)), "http://127.0.0.1:8700"
)
Case = Callable[[pytest.MonkeyPatch, Path], tuple[list[str], Callable[[Any], None]]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


def nothing_more(_: Any) -> None:
    """The scheme check is all this command's case asserts."""
