"""A scoring round from the CLI on anvil, with the real node and sandbox: governance publishes
the reference and sets the fee, a consumer funds the pool, ``node serve --once --score`` scores
a batch, the index ranks by expected value, the node withdraws its pay; every ``--json`` keeps
the one language."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.roundkit import NAMES, PASSWORD, Round
from tests.integration.scoring.conftest import RATE
from visdm.accounts import import_account
from visdm.cli import main
from visdm.cli._json import scheme_problems

pytestmark = pytest.mark.integration


def test_a_scoring_round_from_the_cli(
    rnd: Round,
    governance: LocalAccount,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    import_account(
        rnd.settings.keystore_dir, "governance", bytes(governance.key), PASSWORD, scrypt_n=1024
    )
    home, url = str(rnd.settings.home), rnd.settings.rpc_url

    def visdm(account: str, *argv: str) -> Any:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(["--home", home, "--rpc-url", url, "--account", account, *argv, "--json"])
        printed = capsys.readouterr()
        assert done.value.code in (0, None), printed.err
        data = json.loads(printed.out)
        assert scheme_problems(data) == []
        return data

    def refused(account: str, *argv: str) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(["--home", home, "--rpc-url", url, "--account", account, *argv, "--json"])
        assert done.value.code == 2
        return capsys.readouterr().err

    classes = ",".join(NAMES)
    published = visdm("governance", "scoring", "reference", "--classes", classes,
                      "--validation", "150", "--anchors", "150")  # fmt: skip
    assert published["validation"]["samples"] == 150 and published["classes"] == NAMES
    assert "GOVERNANCE_ROLE" in refused("consumer", "scoring", "fee", "200")
    assert "outside 0..1000" in refused("governance", "scoring", "fee", "5000")
    assert visdm("governance", "scoring", "fee", "200")["feeBps"] == 200
    nine = refused("governance", "scoring", "reference", "--classes", "a,b,c,d,e,f,g,h,i")
    assert "9 names were given" in nine
    visdm("consumer", "scoring", "fund", "0.5")
    status = visdm("node", "scoring", "status")
    assert status["availableWei"] == str(5 * 10**17) and status["feeBps"] == 200
    assert status["referenceHash"] == published["referenceHash"]
    assert "give a batch id" in refused("node", "scoring", "show")

    done = visdm("node", "node", "serve", "--once", "--score")
    assert done["scoringBatches"] == 1
    shown = visdm("node", "scoring", "show", "1")
    assert (shown["status"], shown["scored"], shown["paidWei"]) == ("published", 60, str(60 * RATE))
    visdm("stranger", "market", "sync")
    ranked = visdm("stranger", "market", "search", "--rank", "expected-value", "--limit", "5")
    first = ranked["samples"][0]
    assert first["scoringRounds"] == 1 and 0 < first["confidence"] < 1
    asset = visdm("stranger", "scoring", "show", "--asset", str(rnd.asset_ids[0]))
    assert asset["scoringRounds"] == 1 and asset["scoredSamples"] == 30
    paid = visdm("node", "scoring", "withdraw")
    assert paid["amountWei"] == str(60 * RATE) and paid["transactions"]
