"""The chain commands from the CLI, and each way they can go wrong: one clear line, exit code."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from visdm.chain.anvil import AnvilNode, chain_down, start_anvil
from visdm.cli import main
from visdm.cli._json import scheme_problems

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(visdm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("VISDM_PASSWORD", "pw-1")
    yield visdm_home
    chain_down(visdm_home / "chain")


@pytest.fixture
def alice(home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, err = run(capsys, "account", "new", "alice", "--scrypt-n", "1024")
    assert code == 0, err
    return home


def test_round_trip(alice: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "chain", "up")[0] == 0
    code, out, _ = run(capsys, "chain", "status", "--json")
    assert code == 0 and json.loads(out)["running"] is True
    assert scheme_problems(json.loads(out)) == []
    code, out, err = run(capsys, "deploy", "--json")
    assert code == 0, err
    deployed = json.loads(out)
    assert scheme_problems(deployed) == []
    assert "StakeholderRegistry" in [c["name"] for c in deployed["contracts"]]
    assert deployed["gasUsed"] == sum(t["gasUsed"] for t in deployed["transactions"]) > 0
    code, out, err = run(capsys, "register", "--role", "provider,consumer", "--json")
    assert code == 0, err
    registered = json.loads(out)
    assert scheme_problems(registered) == []
    assert registered["roles"] == ["provider", "consumer"]
    assert len(registered["transactions"]) == 1 and registered["gasUsed"] > 0
    code, out, _ = run(capsys, "whoami", "--json")
    me = json.loads(out)
    assert scheme_problems(me) == [] and me["keyMatches"] is True
    assert int(me["balanceWei"]) > 2**53  # the dev faucet's ether: exact as a string
    code, out, _ = run(capsys, "whoami")
    assert re.search(r"^keyMatches +True$", out, re.MULTILINE)
    # registering again with the same roles is a no-op, not an error, and sends nothing
    code, out, _ = run(capsys, "register", "--role", "provider", "--json")
    assert code == 0 and json.loads(out)["transactions"] == []


def test_wrong_password(alice: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISDM_PASSWORD", "not-the-password")
    code, _, err = run(capsys, "deploy")
    assert code == 3
    assert "password" in err.lower() and "alice" in err


def test_missing_keystore(home: Path, capsys) -> None:
    code, _, err = run(capsys, "whoami")
    assert code == 3
    assert "visdm account new" in err
    code, _, err = run(capsys, "--account", "nobody", "whoami")
    assert code == 3
    assert "nobody" in err


def test_chain_not_running(alice: Path, capsys) -> None:
    code, _, err = run(capsys, "whoami")
    assert code == 6
    assert "no local chain is running" in err and "visdm chain up" in err


def test_unknown_deployment_then_reset_chain(alice: Path, capsys) -> None:
    run(capsys, "chain", "up")
    code, _, err = run(capsys, "whoami")
    assert code == 6
    assert "nothing is deployed on chain 31337" in err and "visdm deploy" in err
    assert run(capsys, "deploy")[0] == 0
    # a new chain in the same data directory: the deployment file now points at nothing
    run(capsys, "chain", "down")
    (alice / "chain" / "state.json").unlink()
    run(capsys, "chain", "up")
    code, _, err = run(capsys, "whoami")
    assert code == 6
    assert "has no code there" in err


@pytest.fixture
def other_chain(tmp_path: Path) -> Iterator[AnvilNode]:
    node = start_anvil(state_file=None, log_file=tmp_path / "other.log", chain_id=999)
    yield node
    node.stop()


def test_wrong_chain_id(alice: Path, capsys, other_chain: AnvilNode) -> None:
    run(capsys, "chain", "up")
    assert run(capsys, "deploy")[0] == 0
    code, _, err = run(capsys, "--rpc-url", other_chain.rpc_url, "whoami")
    assert code == 6
    assert "serves chain id 999" in err and "31337" in err


def test_rpc_timeout(alice: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISDM_RPC_TIMEOUT", "0.5")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        code, _, err = run(capsys, "--rpc-url", url, "whoami")
    assert code == 6
    assert "did not answer in time" in err


def test_bad_role_and_usage_errors(alice: Path, capsys) -> None:
    code, _, err = run(capsys, "register", "--role", "admin")
    assert code == 2
    assert "unknown role 'admin'" in err
    code, _, err = run(capsys, "deploy", "--password", "x")
    assert code == 2
    assert "No such option" in err
