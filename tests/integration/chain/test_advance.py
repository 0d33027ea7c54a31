"""``visdm chain advance``: moves a dev chain's clock by what it says, or refuses and moves nothing.

A private anvil: a test that moved the session chain's clock by years would leave every later
test's deadlines in the past.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from visdm.chain import anvil
from visdm.chain.anvil import MAX_ADVANCE_S, AnvilNode, advance_time, start_anvil
from visdm.chain.client import ChainClient
from visdm.cli import main
from visdm.errors import ChainError, InvalidInputError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    workdir = tmp_path_factory.mktemp("advance")
    node = start_anvil(state_file=None, log_file=workdir / "anvil.log")
    yield node
    node.stop()


@pytest.fixture
def client(own_anvil: AnvilNode) -> ChainClient:
    return ChainClient(own_anvil.rpc_url)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


def test_advance_moves_the_clock_by_what_it_says(
    client: ChainClient, visdm_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = client.latest_timestamp()
    code, out, err = run(capsys, "--rpc-url", client.rpc_url, "chain", "advance", "90")
    assert code == 0, err
    now = client.latest_timestamp()
    assert now >= before + 90
    assert out.strip() == f"chain time is now {now} (90 s later)"


@pytest.mark.parametrize("seconds", ["0", str(MAX_ADVANCE_S + 1), str(10**30)])
def test_a_step_out_of_range_is_refused_and_moves_nothing(
    client: ChainClient, visdm_home: Path, capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    block = client.w3.eth.block_number
    code, out, err = run(capsys, "--rpc-url", client.rpc_url, "chain", "advance", seconds)
    assert code == 2 and out == ""
    assert err.strip() == (
        f"error: cannot advance the chain by {seconds} s: give 1 to 315,360,000 s (ten years) "
        "at a time"
    )
    assert client.w3.eth.block_number == block  # nothing was mined


def test_a_step_the_chain_refuses_is_an_error_not_a_success(
    client: ChainClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """anvil answers a value past its integer type with a JSON-RPC error and would still mine
    on; with the local bound lifted, that error must surface instead of "success"."""
    monkeypatch.setattr(anvil, "MAX_ADVANCE_S", 2**80)
    before = client.latest_timestamp()
    with pytest.raises(ChainError, match=r"the chain refused to advance by 18446744073709551616 s"):
        advance_time(client, 2**64)
    assert client.latest_timestamp() == before
    with pytest.raises(InvalidInputError, match="cannot advance the chain by True s"):
        advance_time(client, True)
