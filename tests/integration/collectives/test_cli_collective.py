"""``visdm collective`` on a real chain: create, join, settle, vote, show, list, leave — each
``--json`` in the CLI's one language, each refusal one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.market.conftest import Market
from visdm.accounts import import_account
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.cli import main
from visdm.cli._json import scheme_problems
from visdm.config import Settings

pytestmark = pytest.mark.integration

NAMES = ("deployer", "provider", "provider2", "stranger")


@pytest.fixture
def home(
    chain: ChainClient,
    deployment: Deployment,
    visdm_home: Path,
    funded_roles: dict[str, LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    cfg = Settings(home=visdm_home, rpc_url=chain.rpc_url)
    deployment.save(cfg.deployments_dir)
    for name in NAMES:
        import_account(cfg.keystore_dir, name, bytes(funded_roles[name].key), "pw", scrypt_n=1024)
    monkeypatch.setenv("VISDM_PASSWORD", "pw")
    monkeypatch.setenv("VISDM_RPC_URL", chain.rpc_url)
    return cfg


def run(capsys: pytest.CaptureFixture[str], account: str, *args: str) -> Any:
    """Run a command with ``--json``; its output, checked against the JSON language."""
    capsys.readouterr()
    try:
        main(["--account", account, "collective", *args, "--json"])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert scheme_problems(data) == []
    return data


def refused(capsys: pytest.CaptureFixture[str], account: str, *args: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["--account", account, "collective", *args])
    assert info.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_a_collective_from_the_command_line(
    home: Settings, chain: ChainClient, deployment: Deployment, funded_roles, capsys
) -> None:
    mk = Market(chain, deployment, dict(funded_roles))
    ada, bob = funded_roles["provider"], funded_roles["provider2"]
    a, b = mk.add_asset(ada, 100), mk.add_asset(bob, 100)
    created = run(
        capsys, "deployer", "create", "potters", "--fee-bps", "100", "--policy-delay", "0"
    )
    assert (created["name"], created["feeBps"], created["policyDelay"]) == ("potters", 100, 0)
    joined = run(capsys, "provider", "join", "potters", "--floor", "10wei", "--deposit", "1000wei")
    assert (joined["weight"], joined["floorWei"]) == (100, "10")
    assert len(joined["transactions"]) >= 3  # delegate, join, the deposit (and its approval)
    run(capsys, "provider2", "join", created["address"], "--floor", "30wei")
    policy = run(capsys, "stranger", "policy", "potters", "--settle")
    assert (policy["policyFloorWei"], policy["policyWeight"]) == ("10", 200)
    pid = mk.propose([(a, 100), (b, 100)], offer=1000)  # 5 wei per sample
    voted = run(capsys, "stranger", "vote", "potters", str(pid))
    assert (voted["vote"], voted["askWei"], voted["selectedSamples"]) == ("ask", "2000", 200)
    assert mk.market.vote_of(pid, created["address"]) == 2000
    again = run(capsys, "stranger", "vote", "potters", str(pid))
    assert again["transactions"] == []
    shown = run(capsys, "stranger", "show", "potters")
    assert [m["member"] for m in shown["members"]] == [ada.address, bob.address]
    assert shown["levels"] == [{"floorWei": "10", "weight": 100}, {"floorWei": "30", "weight": 100}]
    assert shown["stats"]["proposalsVoted"] == 1 and shown["stats"]["acceptanceRate"] == 0.0
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["collective", "show", "potters"])  # for people: the same names, one per line
    assert done.value.code in (0, None)
    text = capsys.readouterr().out
    assert "policyFloorWei" in text and ada.address in text
    listed = run(capsys, "stranger", "list")
    assert [(c["name"], c["members"], c["proposalsVoted"]) for c in listed] == [("potters", 2, 1)]
    left = run(capsys, "provider2", "leave", "potters")
    assert len(left["transactions"]) == 2
    assert mk.delegations.delegate_of(bob.address) is None

    assert "no collective is named 'nobody'" in refused(
        capsys, "provider", "join", "nobody", "--floor", "1"
    )
    assert "say what to do" in refused(capsys, "provider", "policy", "potters")
    assert "is not a token amount" in refused(
        capsys, "provider", "join", "potters", "--floor", "ten"
    )
    assert "outside 0..1000" in refused(capsys, "deployer", "create", "x", "--fee-bps", "1001")
    assert "is taken by" in refused(capsys, "deployer", "create", "potters")
    assert "not the steward" in refused(capsys, "provider", "fee", "potters", "5")
    assert "is not a member" in refused(capsys, "stranger", "policy", "potters", "--floor", "1")
