"""``visdm federation`` on a real anvil: a coordinator creates a federation, members join after
checking it, ``show`` reports who joined; every refusal is one line that names the problem, and a
member refuses to join a contract that is not the shipped federation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.chain.test_cli_governance import run
from tests.integration.federation.fedkit import FederatedMarket
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.cli._json import scheme_problems
from visdm.errors import NodeNotInFederationError
from visdm.federation.membership import join_federation

pytestmark = pytest.mark.integration


@pytest.fixture
def fm(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
) -> FederatedMarket:
    market = FederatedMarket(chain, deployment, tmp_path / "home", dict(funded_roles))
    monkeypatch.setenv("VISDM_PASSWORD", "pw")
    monkeypatch.setenv("VISDM_RPC_URL", chain.rpc_url)
    monkeypatch.setenv("VISDM_HOME", str(market.settings.home))
    return market


def test_create_join_and_show(fm: FederatedMarket, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "--account", "stranger", "federation", "create", "--member", "node-eu"
    )
    assert code != 0 and "is not an active compute node" in err, err
    code, out, err = run(
        capsys,
        "--account", "node", "federation", "create",
        "--member", "node-eu", "--member", "node-us", "--json",
    )  # fmt: skip
    assert code == 0, err
    fed = json.loads(out)["federation"]
    assert json.loads(out)["coordinator"] == fm.accounts["node"].address
    assert scheme_problems(json.loads(out)) == []

    code, _, err = run(capsys, "--account", "stranger", "federation", "join", fed)
    assert code != 0 and "does not list" in err and "\n" not in err.strip(), err
    code, out, err = run(capsys, "--account", "node-eu", "federation", "join", fed, "--json")
    assert code == 0, err
    assert scheme_problems(json.loads(out)) == []
    code, out, err = run(capsys, "federation", "show", fed, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert scheme_problems(shown) == []
    assert shown["active"] is False  # node-us has not joined
    assert [m["joined"] for m in shown["members"]] == [True, False]
    code, _, err = run(capsys, "--account", "node-us", "federation", "join", fed)
    assert code == 0, err
    code, out, _ = run(capsys, "federation", "show", fed, "--json")
    shown = json.loads(out)
    assert shown["active"] is True and shown["regions"] == "eu, us"

    # nothing owed, no such round: the contract's reasons, in one line
    code, _, err = run(capsys, "--account", "node-eu", "federation", "withdraw", fed)
    assert code != 0 and "owes" in err and "nothing" in err, err
    code, _, err = run(capsys, "--account", "node", "federation", "collect", fed, "999")
    assert code != 0 and "proposal 999 is not this federation's" in err, err
    # serve: only the federation's own nodes have a part to play
    code, _, err = run(capsys, "--account", "stranger", "federation", "serve", fed)
    assert code != 0 and "neither coordinates nor is a member" in err, err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("join", "0x12"), "is not an address"),
        (("show", "0x" + "12" * 20), "is not a registered federation"),
        (("serve", "0x" + "12" * 20), "is not a registered federation"),
        (("create", "--member", "nobody"), "is neither an address"),
        (("bond", "0x" + "12" * 20, "ten"), "amount"),
    ],
)
def test_bad_input_is_refused_in_one_line(
    fm: FederatedMarket, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], expected: str
) -> None:
    block = fm.chain.w3.eth.block_number
    code, _, err = run(capsys, "--account", "node", "federation", *args)
    assert code != 0 and expected in err, err
    assert fm.chain.w3.eth.block_number == block  # nothing was sent


@pytest.mark.attack
def test_a_member_refuses_a_contract_that_is_not_the_shipped_federation(
    fm: FederatedMarket,
) -> None:
    """The attack: the coordinator registers a contract of its own as the federation, one that
    could keep the members' fees. The member's check refuses it; without the check the registry
    would let the member join."""
    token = fm.deployment.address_of("PaymentToken")
    eu = fm.members["eu"]
    fm.registry.register_federation(fm.accounts["node"].local_account, token, [eu.address])
    with pytest.raises(NodeNotInFederationError, match="does not run the shipped Federation code"):
        join_federation(fm.chain, fm.deployment, eu.local_account, token)
    assert not fm.registry.federation_of(token).joined(eu.address)
    fm.registry.join_federation(eu.local_account, token)  # the defence off
    assert fm.registry.federation_of(token).joined(eu.address)
