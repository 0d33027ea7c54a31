"""The node itself: Hardhat's node is what these tests think it is, and the dev methods the
tests and ``visdm chain advance`` rely on work on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from visdm.chain import hardhat
from visdm.chain.client import ChainClient
from visdm.chain.hardhat import HardhatNode, start_hardhat
from visdm.errors import ConfigError

pytestmark = pytest.mark.integration


def test_the_chain_under_this_folder_is_hardhat(session_chain: ChainClient) -> None:
    assert session_chain.w3.client_version.startswith("HardhatNetwork/")
    assert session_chain.is_dev_chain
    assert session_chain.w3.eth.chain_id == 31337


def test_faucet_snapshot_and_clock_work_on_hardhat(
    chain: ChainClient, stranger: LocalAccount
) -> None:
    w3 = chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    fresh = "0x000000000000000000000000000000000000bEEF"
    assert chain.fund_from_dev_faucet(fresh)
    assert chain.balance(fresh) == 100 * 10**18
    assert not chain.fund_from_dev_faucet(fresh)  # it has enough now
    before = chain.latest_timestamp()
    assert chain.advance_time(3600) >= before + 3600
    assert w3.provider.make_request("evm_revert", [snapshot])["result"]  # type: ignore[arg-type]
    assert chain.balance(fresh) == 0
    assert chain.latest_timestamp() < before + 3600


def test_each_block_gets_a_later_second_than_the_one_before(chain: ChainClient) -> None:
    # anvil gives blocks mined within one second the same timestamp; Hardhat moves each one a
    # second on, so a burst of transactions runs the chain's clock ahead of the wall clock.
    # The market's deadlines and the node's quote expiries are read from the chain's clock.
    w3 = chain.w3
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    latest = w3.eth.block_number
    stamps = [w3.eth.get_block(n)["timestamp"] for n in range(latest - 2, latest + 1)]
    assert stamps[0] < stamps[1] < stamps[2]


def test_a_stopped_node_leaves_no_process_and_no_folder(tmp_path: Path) -> None:
    node: HardhatNode = start_hardhat(log_file=tmp_path / "hh.log")
    assert node.is_alive()
    node.stop()
    assert not node.is_alive()
    assert not Path(f"/proc/{node.pid}").exists()
    assert not Path(node.project_dir).exists()


def test_without_hardhat_installed_the_start_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hardhat, "_node_modules_roots", lambda: [tmp_path / "node_modules"])
    with pytest.raises(ConfigError, match=r"Hardhat not found: run `npm ci`"):
        start_hardhat(log_file=tmp_path / "hh.log")
    assert not (tmp_path / "hh.log").exists()  # refused before anything started
