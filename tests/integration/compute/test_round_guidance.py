"""Every step of a round taken too early, too late or by the wrong party says when it will
work and what to do instead; status says what comes next and that a refund waits; votes that
carry no weight are told so; the CLI names compute nodes by account and refuses short
addresses; ``model get`` never writes over a file or into a directory by accident."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from tests.integration.compute.roundkit import MLP_SPEC, NAMES, PASSWORD, VAL_X, VAL_Y, Round
from visdm.chain.contracts import ProposalStatus, ResultCommitment
from visdm.cli import main
from visdm.errors import InvalidInputError, VisdmError
from visdm.market import workflow
from visdm.market.workflow import NodeUnreachableError

pytestmark = pytest.mark.integration

_WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


@pytest.fixture
def images_per_provider() -> int:
    return 20


def test_early_and_late_steps_say_when_they_work(rnd: Round) -> None:
    stranger = rnd.accounts["stranger"]
    pid = rnd.propose(wtp_bps=1000)
    with pytest.raises(InvalidInputError) as info:
        workflow.tally(rnd.as_("stranger"), stranger, pid)
    assert re.fullmatch(
        rf"voting on proposal {pid} is open until {_WHEN} \(in 2 min \d+ s\): tally after that "
        r"\(on a local dev chain, `visdm chain advance \d+` ends it now\)",
        str(info.value),
    ), str(info.value)
    view = workflow.proposal_status(rnd.settings, pid)
    assert view["next"].startswith("voting is open until ") and view["consumerCreditWei"] == "0"

    rnd.chain.advance_time(131)
    with pytest.raises(InvalidInputError, match=rf"voting on proposal {pid} closed at {_WHEN}"):
        workflow.vote(rnd.as_("provider"), rnd.accounts["provider"], pid, 0)
    receipt = workflow.tally(rnd.as_("stranger"), stranger, pid)  # nobody voted: no quorum
    assert receipt.outcome.status == ProposalStatus.FAILED
    with pytest.raises(InvalidInputError) as again:
        workflow.tally(rnd.as_("stranger"), stranger, pid)
    assert str(again.value) == (
        f"the tally is done: proposal {pid} failed: too few votes for quorum: the offer was "
        "credited back to the consumer"
    )
    credit = rnd.market.credit_of(rnd.accounts["consumer"].address)
    assert credit >= 10**18
    view = workflow.proposal_status(rnd.settings, pid)
    assert view["consumerCreditWei"] == str(credit)
    assert view["next"].endswith(
        "wait in the consumer's credit on the market (this proposal's refund and any other): "
        "the consumer runs `visdm withdraw`"
    )
    with pytest.raises(InvalidInputError, match=f"nothing to reclaim: proposal {pid} failed"):
        workflow.reclaim(rnd.as_("consumer"), rnd.accounts["consumer"], pid)


def test_votes_know_their_weight(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    stranger = rnd.accounts["stranger"].address
    alone = workflow.voting_weight(rnd.settings, pid, stranger)
    assert (alone.own, alone.delegated, alone.assets) == (0, 0, 2)
    assert alone.warning(pid) == (
        f"{stranger} owns none of the 2 assets in proposal {pid}'s selection and no owner of "
        "one delegates to it: the vote was recorded but carries no weight unless a provider "
        "delegates to it before the voting deadline"
    )
    mine = workflow.voting_weight(rnd.settings, pid, rnd.accounts["provider"].address)
    assert (mine.own, mine.delegated) == (20, 0) and mine.warning(pid) is None
    workflow.delegate(rnd.as_("provider2"), rnd.accounts["provider2"], stranger)
    trusted = workflow.voting_weight(rnd.settings, pid, stranger)
    assert (trusted.own, trusted.delegated) == (0, 20) and trusted.warning(pid) is None


class _Refusing(BaseHTTPRequestHandler):
    """A node that refuses every quote, as one whose limits a spec exceeds would."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": "DesignLimitError", "detail": "epochs over max"}).encode()
        self.send_response(422)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def refusing_node() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_an_approved_proposal_says_when_its_escrow_comes_back(
    rnd: Round, refusing_node: str
) -> None:
    consumer = rnd.accounts["consumer"]
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    with pytest.raises(InvalidInputError) as early:
        workflow.reclaim(rnd.as_("consumer"), consumer, pid)
    assert re.fullmatch(
        rf"proposal {pid} can be reclaimed only after {_WHEN} \(in (7 d|6 d 23 h)\): until "
        rf"then its consumer can still start training \(`visdm train {pid}`\)",
        str(early.value),
    ), str(early.value)
    with pytest.raises(NodeUnreachableError) as refused:
        workflow.start_training(rnd.as_("consumer"), consumer, pid, node_url_override=refusing_node)
    assert (
        f"(422 DesignLimitError): epochs over max; nothing was paid for training, and the "
        f"consumer starts training with `visdm train {pid}` before"
    ) in str(refused.value)
    assert f"after that it can `visdm reclaim {pid}`" in str(refused.value)
    rnd.chain.advance_time(7 * 86_400 + 1)
    workflow.reclaim(rnd.as_("consumer"), consumer, pid)
    assert rnd.market.proposal(pid).status == ProposalStatus.CANCELLED


def test_model_get_refuses_a_directory_and_an_existing_file(rnd: Round, tmp_path: Path) -> None:
    consumer = rnd.accounts["consumer"]
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid)
    rnd.market.submit_result(
        rnd.accounts["node"].local_account,
        pid,
        ResultCommitment(accuracy_bps=9000, result_cid="missing", payout_root=b"\x01" * 32),
    )
    with pytest.raises(InvalidInputError, match="is a directory: name a file in it"):
        workflow.get_model(rnd.as_("consumer"), consumer, pid, tmp_path)
    existing = tmp_path / "model.safetensors"
    existing.write_bytes(b"keep me")
    with pytest.raises(InvalidInputError, match="already exists: pass --force to overwrite it"):
        workflow.get_model(rnd.as_("consumer"), consumer, pid, existing)
    with pytest.raises(VisdmError) as forced:  # --force passes on to the fetch
        workflow.get_model(rnd.as_("consumer"), consumer, pid, existing, force=True)
    assert "already exists" not in str(forced.value)
    assert existing.read_bytes() == b"keep me"  # nothing half-written over it


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_names_nodes_by_account_and_warns_weightless_votes(
    rnd: Round, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(MLP_SPEC))
    validation = tmp_path / "validation"
    validation.mkdir()
    rows = ["filename,label"]
    for i in range(40):
        Image.fromarray(VAL_X[i]).save(validation / f"v{i:03d}.png")
        if i < 30:
            rows.append(f"v{i:03d}.png,{NAMES[int(VAL_Y[i])]}")
    (validation / "labels.csv").write_text("\n".join(rows) + "\n")
    base = ["--home", str(rnd.settings.home), "--rpc-url", rnd.chain.rpc_url]
    propose = [
        *base,
        "--account",
        "consumer",
        "propose",
        *(a for asset in rnd.asset_ids for a in ("--asset", str(asset))),
        "--spec",
        str(spec),
        "--validation",
        str(validation),
        "--classes",
        ",".join(NAMES),
        "--offer",
        "1",
        "--wtp-bps",
        "1000",
        "--voting-period",
        "120",
    ]
    node = rnd.accounts["node"].address
    code, out, err = run(capsys, *propose, "--node", "0x12ab")
    assert code == 2 and out == ""
    assert err.strip() == (
        "error: compute node '0x12ab' is not a full address: give 0x and 40 hex digits, or the "
        f"name of an account in this data directory; active compute nodes: {node} "
        "(http://127.0.0.1:9/)"
    )
    code, out, err = run(capsys, *propose, "--node", "node")
    assert code == 0, err
    assert "note: validation set: 30 of 40 files scored; 10 skipped (10 no label" in out
    assert f"note: checked the spec against the default node limits, as compute node {node}" in out
    pid = rnd.market.proposal_count()
    code, out, err = run(capsys, *base, "--account", "stranger", "vote", str(pid), "accept")
    assert code == 0 and out.startswith(f"voted accept on proposal {pid}")
    assert "warning: " in err and "carries no weight unless a provider delegates" in err
    code, out, err = run(capsys, *base, "--account", "provider", "vote", str(pid), "accept")
    assert code == 0 and err == ""
    code, out, _ = run(capsys, *base, "status", str(pid), "--json")
    assert code == 0
    assert json.loads(out)["next"].startswith("voting is open until ")
