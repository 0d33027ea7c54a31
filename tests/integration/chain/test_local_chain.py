"""`visdm chain up|down|status`: free port, state kept across restarts, PID safety."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import role_account
from visdm.chain.anvil import chain_down, chain_status, chain_up, local_rpc_url, read_node
from visdm.chain.client import ChainClient
from visdm.chain.contracts import StakeholderRegistry
from visdm.errors import ChainError, ChainNotRunningError
from visdm.types import Role

pytestmark = pytest.mark.integration


def test_up_status_down_and_state_survives_restart(tmp_path: Path) -> None:
    chain_dir = tmp_path / "chain"
    node, started = chain_up(chain_dir)
    try:
        assert started and node.host == "127.0.0.1" and node.port > 0
        again, started_again = chain_up(chain_dir)
        assert not started_again and again.pid == node.pid
        status = chain_status(chain_dir)
        assert status.running and status.chain_id == 31337 and status.rpc_url == node.rpc_url

        client = ChainClient(node.rpc_url)
        deployer = role_account("restart")
        client.fund_from_dev_faucet(deployer.address)
        address, deployed = client.deploy(deployer, "StakeholderRegistry", deployer.address)
        registry = StakeholderRegistry(client, address)
        registry.register(deployer, Role.CONSUMER, b"\x07" * 32)
        block = client.w3.eth.block_number
    finally:
        assert chain_down(chain_dir)
    assert not chain_status(chain_dir).running
    assert not chain_down(chain_dir), "a second down finds nothing to stop"
    assert not node.is_alive()

    node2, started = chain_up(chain_dir)
    try:
        assert started and node2.pid != node.pid
        client2 = ChainClient(node2.rpc_url)
        assert client2.w3.eth.block_number >= block
        record = StakeholderRegistry(client2, address).stakeholder(deployer.address)
        assert record.roles == Role.CONSUMER and record.encryption_key == b"\x07" * 32
        # history survives too: the deployment receipt and the registration event
        receipt = client2.w3.eth.get_transaction_receipt(deployed.tx_hash)  # type: ignore[arg-type]
        assert receipt["contractAddress"] == address
    finally:
        chain_down(chain_dir)


def test_local_rpc_url_without_chain_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(ChainNotRunningError, match="visdm chain up"):
        local_rpc_url(tmp_path / "chain")


def test_stale_pid_file_is_ignored_and_never_kills_a_stranger(tmp_path: Path) -> None:
    chain_dir = tmp_path / "chain"
    chain_dir.mkdir()
    # our own PID: alive, but not anvil; `down` must not signal it
    (chain_dir / "anvil.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": "127.0.0.1",
                "port": 1,
                "state_file": None,
                "log_file": "x",
            }
        )
    )
    assert read_node(chain_dir) is None
    assert chain_down(chain_dir) is False
    assert not chain_status(chain_dir).running


def test_corrupt_node_file_is_reported(tmp_path: Path) -> None:
    chain_dir = tmp_path / "chain"
    chain_dir.mkdir()
    (chain_dir / "anvil.json").write_text("{not json")
    with pytest.raises(ChainError, match="corrupt"):
        read_node(chain_dir)
