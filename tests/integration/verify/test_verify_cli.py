"""``visdm node serve --verify`` from the command line: wired beside training, refused in one
line without a court or with a share outside 0..1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.roundkit import PASSWORD, Round
from tests.integration.verify.conftest import Checked
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.cli import main

pytestmark = pytest.mark.integration


def _serve(rnd: Round, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    home, url = str(rnd.settings.home), rnd.settings.rpc_url
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--home", home, "--rpc-url", url, "--account", "node", "node", "serve", "--once",
              *extra])  # fmt: skip
    printed = capsys.readouterr()
    return int(done.value.code or 0), printed.out, printed.err


def test_serve_once_with_verify_follows_results_beside_training(
    vr: Checked, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    code, out, err = _serve(vr.rnd, capsys, "--verify", "--verify-share", "0.5", "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["verificationTransactions"] == 0 and done["trainingJobs"] == 0
    assert (vr.rnd.settings.node_dir / "verify" / "verify.sqlite3").exists()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--verify",), "the market has no court"),
        (("--verify", "--verify-share", "2"), "share of results to verify must be a number"),
    ],
)
def test_serve_with_verify_refuses_in_one_line(
    chain: ChainClient,
    deployment: Deployment,
    funded_roles: dict[str, LocalAccount],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: tuple[str, ...],
    says: str,
) -> None:
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    rnd = Round(chain, deployment, tmp_path / "home", dict(funded_roles))
    code, _, err = _serve(rnd, capsys, *extra)
    assert code != 0
    assert says in err and len(err.strip().splitlines()) == 1, err
