"""The local chain through ``chain down`` / ``chain up`` and through a kill: a clean stop keeps
the very last transaction, a state file torn by a kill during a dump falls back to the copy
last known whole (with a warning), and a client follows the chain to its new port."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from visdm.chain.anvil import chain_down, chain_up
from visdm.config import Settings
from visdm.errors import ChainError, ChainNotRunningError
from visdm.session import connect

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    s = Settings(home=tmp_path / "home")
    yield s
    chain_down(s.chain_dir)


def _mine(settings: Settings, blocks: int) -> int:
    client = connect(settings)
    for _ in range(blocks):
        client.rpc(lambda: client.w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
    return int(client.rpc(lambda: client.w3.eth.block_number))


def test_a_clean_stop_keeps_the_last_block(settings: Settings) -> None:
    chain_up(settings.chain_dir)
    head = _mine(settings, 3)  # and stop at once, well inside the dump interval
    assert chain_down(settings.chain_dir)
    chain_up(settings.chain_dir)
    assert _mine(settings, 0) == head


def test_a_torn_state_file_falls_back_to_the_copy_known_whole(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    chain_up(settings.chain_dir)
    kept = _mine(settings, 2)
    chain_down(settings.chain_dir)  # a clean stop: its dump is saved as whole
    node, _ = chain_up(settings.chain_dir)
    assert _mine(settings, 4) == kept + 4
    os.kill(node.pid, signal.SIGKILL)  # killed while writing its dump: the file is cut short
    state = settings.chain_dir / "state.json"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="visdm.chain"):
        chain_up(settings.chain_dir)
    assert _mine(settings, 0) == kept  # back to the copy: later blocks are gone, said so
    assert "state was damaged" in caplog.text and "state.torn-" in caplog.text
    assert len(list(settings.chain_dir.glob("state.torn-*.json"))) == 1


def test_a_torn_state_without_a_whole_copy_says_what_to_do(settings: Settings) -> None:
    settings.chain_dir.mkdir(parents=True)
    (settings.chain_dir / "state.json").write_text('{"block": {"number": "0x')
    with pytest.raises(ChainError, match=r"is damaged .* run `visdm chain up` for a fresh chain"):
        chain_up(settings.chain_dir)
    # a fresh chain does not inherit a whole copy left from an earlier one
    (settings.chain_dir / "state.json").unlink()
    (settings.chain_dir / "state.saved.json").write_text(json.dumps({"old": "chain"}))
    chain_up(settings.chain_dir)
    assert not (settings.chain_dir / "state.saved.json").exists()


def test_a_client_follows_the_local_chain_to_its_new_port(settings: Settings) -> None:
    first, _ = chain_up(settings.chain_dir)
    client = connect(settings)
    head = _mine(settings, 2)
    chain_down(settings.chain_dir)
    with pytest.raises(ChainNotRunningError, match=r"is not running: start it again with"):
        client.rpc(lambda: client.w3.eth.block_number)
    second, _ = chain_up(settings.chain_dir)
    assert client.rpc(lambda: client.w3.eth.block_number) == head
    assert client.rpc_url == second.rpc_url
    # an explicit --rpc-url is never swapped for another
    fixed = connect(Settings(home=settings.home, rpc_url=second.rpc_url))
    chain_down(settings.chain_dir)
    chain_up(settings.chain_dir)
    if connect(settings).rpc_url != second.rpc_url:
        with pytest.raises(ChainNotRunningError, match="no chain answers at"):
            fixed.rpc(lambda: fixed.w3.eth.block_number)
    assert first.pid != second.pid
