"""``visdm status``'s view of where a result's accuracy claim stands, and ``visdm
overturn-unproven`` overturns a result whose proof failed, refusing in one line, before
anything is sent, what the court would refuse. On anvil with the tests' small circuit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import role_account
from tests.integration.compute.roundkit import PASSWORD
from tests.integration.verify.conftest import BOND, Court
from tests.integration.verify.test_zk_court import COST, OFFER, mine_past_expiry, proving
from tests.integration.verify.zkkit import Kit
from visdm.accounts import import_account
from visdm.chain.contracts import ProposalStatus
from visdm.cli import main
from visdm.config import Settings
from visdm.verify._claims import proposal_claim

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Cli:
    """``visdm`` as the stranger, on the test's chain."""

    def __init__(self, ct: Court, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.settings = Settings(home=tmp / "home", rpc_url=ct.mk.chain.rpc_url)
        ct.mk.deployment.save(self.settings.deployments_dir)
        key = bytes(role_account("stranger").key)
        import_account(self.settings.keystore_dir, "stranger", key, PASSWORD, scrypt_n=1024)
        self.capsys = capsys

    def run(self, *args: str) -> tuple[int, str, str]:
        home, url = str(self.settings.home), str(self.settings.rpc_url)
        self.capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(["--home", home, "--rpc-url", url, "--account", "stranger", *args])
        printed = self.capsys.readouterr()
        return int(done.value.code or 0), printed.out, printed.err

    def claim(self, pid: int) -> Any:
        """What ``visdm status`` shows under ``court.accuracyClaim`` (its result documents are
        stand-ins here: the command itself runs in ``test_zk_node.py``)."""
        claim = proposal_claim(self.settings, pid)
        return None if claim is None else claim.to_json()

    def refused(self, *args: str) -> str:
        code, out, err = self.run("overturn-unproven", *args)
        assert code != 0 and out == "", out
        assert len(err.strip().splitlines()) == 1, err
        return err


def test_the_claim_is_shown_and_overturn_unproven_refuses_until_the_proof_failed(
    ct: Court, kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    before = ct.completed()  # started before any check was named
    p = proving(ct, kit, accuracy_bps=kit.accuracy_bps)
    cli = Cli(ct, tmp_path, capsys)
    mk, court = ct.mk, ct.court
    assert cli.claim(before) is None
    assert "started without an accuracy check" in cli.refused(str(before))
    shown = cli.claim(p.pid)
    assert (shown["state"], shown["check"]) == ("none", p.check.contract.address)
    assert "may still commit its accuracy claim until the window ends" in cli.refused(str(p.pid))
    p.commit(kit.circuit, kit)
    assert cli.claim(p.pid)["state"] == "committed"
    mk.chain.advance_time(1)
    mk.chain.advance_time(1)  # the block whose hash draws, and one that reads it
    drawn = cli.claim(p.pid)
    assert drawn["state"] == "drawn" and drawn["accuracyBps"] == kit.accuracy_bps
    assert "is drawn and its node may still prove it" in cli.refused(str(p.pid))
    mine_past_expiry(ct)
    assert cli.claim(p.pid)["state"] == "expired"
    consumer = mk.roles["consumer"].address
    credit, tokens = mk.market.credit_of(consumer), mk.token.balance_of(consumer)
    code, out, err = cli.run("overturn-unproven", str(p.pid), "--json")
    assert code == 0, err
    assert json.loads(out)["proposalId"] == p.pid
    record = mk.market.proposal(p.pid)
    assert record.status is ProposalStatus.CANCELLED
    assert mk.market.credit_of(consumer) == credit + OFFER + COST  # price and training cost
    assert mk.token.balance_of(consumer) == tokens + BOND  # the node's bond
    assert court.proof_of(p.pid).status == "expired"
    assert "no held WTP-met result" in cli.refused(str(p.pid))  # a second time


@pytest.mark.parametrize(
    ("arg", "says"),
    [("0", "positive integer"), ("999", "does not exist"), ("x", "is not a valid integer")],
)
def test_overturn_unproven_refuses_a_bad_proposal_id(
    ct: Court, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, arg: str, says: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    cli = Cli(ct, tmp_path, capsys)
    code, out, err = cli.run("overturn-unproven", arg)
    assert code != 0 and out == ""
    assert says in err
