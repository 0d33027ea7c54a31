"""Governance changes market parameters on anvil: through the SDK and ``visdm governance
set-parameters``, only the named fields change and the chain holds the new values; an account
without GOVERNANCE_ROLE is refused before anything is sent (and, sending anyway, by the
contract); the SDK's rules are the contract's rules, case by case."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from visdm.accounts import import_account
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.cli import main
from visdm.cli._json import scheme_problems
from visdm.config import Settings
from visdm.errors import ContractRevertError, InvalidInputError
from visdm.governance import (
    check_parameters,
    scoring_fee_bps,
    set_market_parameters,
    set_scoring_fee,
)

pytestmark = pytest.mark.integration


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
    for name in ("governance", "stranger"):
        import_account(cfg.keystore_dir, name, bytes(funded_roles[name].key), "pw", scrypt_n=1024)
    monkeypatch.setenv("VISDM_PASSWORD", "pw")
    monkeypatch.setenv("VISDM_RPC_URL", chain.rpc_url)
    return cfg


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


def test_governance_changes_quorum_and_the_voting_period(
    home: Settings, deployment: Deployment, chain: ChainClient, governance: LocalAccount
) -> None:
    market = deployment.training_market(chain)
    before = market.parameters()
    done = set_market_parameters(
        home,
        governance,
        {"quorum_bps": "5000", "min_voting_period": "2h", "maxVotingPeriod": "14d"},
    )
    held = market.parameters()
    assert held == done.after
    assert (held.quorum_bps, held.min_voting_period, held.max_voting_period) == (
        5000,
        7200,
        14 * 86_400,
    )
    assert held == replace(
        before, quorum_bps=5000, min_voting_period=7200, max_voting_period=14 * 86_400
    )
    assert done.before == before
    assert done.changed == {
        "quorum_bps": (before.quorum_bps, 5000),
        "min_voting_period": (before.min_voting_period, 7200),
        "max_voting_period": (before.max_voting_period, 14 * 86_400),
    }
    (event,) = market.events("ParametersChanged", done.tx.receipt)
    assert event["args"]["parameters"]["quorumBps"] == 5000


@pytest.mark.attack
def test_an_account_without_the_governance_role_cannot_change_parameters(
    home: Settings,
    deployment: Deployment,
    chain: ChainClient,
    stranger: LocalAccount,
    governance: LocalAccount,
    funded_roles: dict[str, LocalAccount],
) -> None:
    """A stranger lowers the quorum to zero, so that a proposal passes with no vote at all."""
    market = deployment.training_market(chain)
    before, block = market.parameters(), chain.w3.eth.block_number
    with pytest.raises(InvalidInputError) as info:
        set_market_parameters(home, stranger, {"quorum_bps": "0"})
    message = str(info.value)
    assert message.startswith(f"{stranger.address} does not hold GOVERNANCE_ROLE")
    # it says who does hold it: the deployer (the registry's admin) and the governance account
    assert funded_roles["deployer"].address in message and governance.address in message
    assert message.endswith("nothing was sent") and "\n" not in message
    assert chain.w3.eth.block_number == block and market.parameters() == before
    # with the SDK's check switched off (sending straight to the contract) the contract refuses
    with pytest.raises(ContractRevertError) as reverted:
        market.set_parameters(stranger, replace(before, quorum_bps=0))
    assert reverted.value.error_name == "TrainingMarketNotGovernance"
    assert market.parameters() == before


# the same breaks of each rule the unit tests refuse, sent straight to the contract
_BROKEN = {
    "quorum": {"quorum_bps": 10_001},
    "voting periods": {"min_voting_period": 11, "max_voting_period": 10},
    "reply period": {"reply_period": 0},
    "start period": {"start_period": 0},
    "training period": {"max_training_period": 0},
    "batch": {"min_batch_size": 0},
    "samples": {"min_selection_samples": 0},
    "providers": {"min_selection_providers": 0},
    "treasury": {"treasury": "0x" + "00" * 20},
    "window without court": {"challenge_window": 60},
}


def test_the_sdk_refuses_exactly_what_the_contract_refuses(
    deployment: Deployment, chain: ChainClient, governance: LocalAccount
) -> None:
    market = deployment.training_market(chain)
    current = market.parameters()
    for case, fields_ in _BROKEN.items():
        bad = replace(current, **fields_)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            check_parameters(bad)
        with pytest.raises(ContractRevertError) as info:
            market.set_parameters(governance, bad)
        assert info.value.error_name == "TrainingMarketInvalidParameters", case
    # and the limits the SDK accepts, the contract accepts
    edge = replace(
        current,
        quorum_bps=10_000,
        min_voting_period=current.max_voting_period,
        reply_period=1,
        challenge_window=60,
        court=governance.address,
    )
    check_parameters(edge)
    market.set_parameters(governance, edge)
    assert market.parameters() == edge


def test_the_cli_shows_and_sets_parameters(
    home: Settings, deployment: Deployment, chain: ChainClient, capsys
) -> None:
    market = deployment.training_market(chain)
    code, out, err = run(capsys, "governance", "parameters", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert scheme_problems(shown) == []
    assert shown["quorumBps"] == market.parameters().quorum_bps
    code, out, err = run(
        capsys,
        "--account",
        "governance",
        "governance",
        "set-parameters",
        "quorum_bps=4000",
        "reply_period=1d",
        "--json",
    )
    assert code == 0, err
    done = json.loads(out)
    assert scheme_problems(done) == []
    assert [c["name"] for c in done["changed"]] == ["quorumBps", "replyPeriod"]
    assert done["parameters"]["quorumBps"] == 4000 and len(done["transactions"]) == 1
    held = market.parameters()
    assert (held.quorum_bps, held.reply_period) == (4000, 86_400)
    code, out, err = run(capsys, "governance", "parameters")
    assert code == 0, err
    assert "replyPeriod" in out and "86400 s (1d)" in out
    # a bad value and a stranger are each refused in one line, with nothing sent
    block = chain.w3.eth.block_number
    code, out, err = run(
        capsys, "--account", "governance", "governance", "set-parameters", "quorum_bps=12000"
    )
    assert (code, out) == (2, "")
    assert err.strip() == (
        "error: quorum_bps must be at most 10000, got 12000: it is basis points of the weight "
        "left in the round (10000 = all of it)"
    )
    code, out, err = run(
        capsys, "--account", "stranger", "governance", "set-parameters", "quorum_bps=0"
    )
    assert (code, out) == (2, "")
    assert "does not hold GOVERNANCE_ROLE" in err and len(err.strip().splitlines()) == 1
    assert chain.w3.eth.block_number == block and market.parameters() == held


def test_governance_sets_the_scoring_fee_once_and_within_the_cap(
    home: Settings,
    deployment: Deployment,
    chain: ChainClient,
    governance: LocalAccount,
    stranger: LocalAccount,
) -> None:
    assert scoring_fee_bps(home) == 0  # what deploy sets
    before, after, tx = set_scoring_fee(home, governance, "250")
    assert (before, after, scoring_fee_bps(home)) == (0, 250, 250) and tx.gas_used > 0
    block = chain.w3.eth.block_number
    for who, fee, says in (
        (governance, "250", "nothing to change: the scoring fee is already 250 bps"),
        (governance, "1001", "scoring fee 1001 bps is outside 0..1000"),
        (governance, "2.5", "scoring_fee_bps must be a whole number, got '2.5'"),
        (stranger, "0", f"{stranger.address} does not hold GOVERNANCE_ROLE, so the scoring fee"),
    ):
        with pytest.raises(InvalidInputError) as info:
            set_scoring_fee(home, who, fee)
        assert str(info.value).startswith(says), str(info.value)
    assert chain.w3.eth.block_number == block and scoring_fee_bps(home) == 250
