"""The compute node as a service: ``visdm node serve`` in its own process, its HTTP API, and a
SIGKILL in the middle of training — the restarted node retrains and posts the result once;
an asset registered during training is attested before the job ends.
Then the consumer and the providers finish the round from the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.compute.roundkit import MLP_SPEC, PASSWORD, Round, write_folder
from visdm.assets import add_asset
from visdm.chain.contracts import AssetStatus, ProposalStatus
from visdm.cli import main
from visdm.cli._json import scheme_problems
from visdm.compute import JobJournal

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], object], timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class NodeProcess:
    """``visdm node serve`` as the node account, in a subprocess."""

    def __init__(self, rnd: Round, port: int, log: Path) -> None:
        self.rnd, self.port, self.log = rnd, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "VISDM_HOME": str(self.rnd.settings.home),
            "VISDM_RPC_URL": self.rnd.chain.rpc_url,
            "VISDM_ACCOUNT": "node",
            "VISDM_PASSWORD": PASSWORD,
        }
        with self.log.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "visdm",
                    "node",
                    "serve",
                    "--api-port",
                    str(self.port),
                    "--poll",
                    "0.2",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for("the node API", self.healthy, timeout=60)

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"node exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def node_process(rnd: Round, tmp_path: Path) -> Iterator[NodeProcess]:
    node = NodeProcess(rnd, free_port(), tmp_path / "node.log")
    yield node
    if node.proc is not None and node.proc.poll() is None:
        node.kill(signal.SIGKILL)


def cli(rnd: Round, who: str, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    os.environ["VISDM_PASSWORD"] = PASSWORD
    try:
        with pytest.raises(SystemExit) as done:
            main(
                [
                    "--home",
                    str(rnd.settings.home),
                    "--rpc-url",
                    rnd.chain.rpc_url,
                    "--account",
                    who,
                    *args,
                ]
            )
    finally:
        del os.environ["VISDM_PASSWORD"]
    captured = capsys.readouterr()
    assert done.value.code in (0, None), captured.err + captured.out
    return captured.out


def job_state(rnd: Round, pid: int) -> tuple[str, int] | None:
    path = rnd.settings.node_dir / "jobs.sqlite3"
    if not path.exists():
        return None
    journal = JobJournal(path, read_only=True)
    try:
        job = journal.get(pid)
    except Exception:  # the node may be creating the schema right now
        return None
    finally:
        journal.close()
    return None if job is None else (job.state, job.attempts)


def test_sigkill_mid_training_then_restart_submits_once(
    rnd: Round, node_process: NodeProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {**MLP_SPEC, "epochs": 8}
    pid = rnd.propose(wtp_bps=2000, spec=spec)
    rnd.approve(pid)
    node_process.start()

    out = cli(
        rnd, "consumer", "train", str(pid), "--node-url", node_process.url, "--json", capsys=capsys
    )
    started = json.loads(out)
    assert scheme_problems(started) == []
    assert started["design"]["params"] > 0 and int(started["trainingCostWei"]) > 0
    assert [t["txHash"] for t in started["transactions"]] != []
    assert rnd.market.proposal(pid).status == ProposalStatus.TRAINING

    wait_for("training to start", lambda: (job_state(rnd, pid) or ("", 0))[0] == "training")
    # a provider's asset registered now is attested while the node trains, not after
    registry = rnd.deployment.asset_registry(rnd.chain)
    added = add_asset(
        rnd.as_("provider"), rnd.accounts["provider"], write_folder(tmp_path / "x", [398, 399])
    )
    wait_for(
        "the new asset attested",
        lambda: registry.asset(added.asset_id).status == AssetStatus.ACTIVE,
    )
    assert job_state(rnd, pid) == ("training", 1)
    assert rnd.market.logs("ResultSubmitted", where={"proposalId": pid}) == []
    assert node_process.kill(signal.SIGKILL) == -signal.SIGKILL
    assert rnd.market.logs("ResultSubmitted", where={"proposalId": pid}) == []

    node_process.start()  # same data directory: the journal says the job was interrupted
    wait_for(
        "the result on chain",
        lambda: rnd.market.proposal(pid).status == ProposalStatus.COMPLETED,
        timeout=240,
    )
    wait_for("the journal to settle", lambda: job_state(rnd, pid) == ("submitted", 2))
    assert len(rnd.market.logs("ResultSubmitted", where={"proposalId": pid})) == 1
    job = httpx.get(f"{node_process.url}/jobs/{pid}", timeout=5).json()
    assert (job["state"], job["attempts"]) == ("submitted", 2)
    assert node_process.kill(signal.SIGTERM) == 0  # a clean stop on SIGTERM

    # the consumer gets the model, providers claim, anyone reads the status — from the CLI
    model_out = tmp_path / "model.safetensors"
    got = json.loads(
        cli(
            rnd,
            "consumer",
            "model",
            "get",
            str(pid),
            "--out",
            str(model_out),
            "--json",
            capsys=capsys,
        )
    )
    assert scheme_problems(got) == []
    assert got["accuracyBps"] == rnd.market.proposal(pid).accuracy_bps
    assert model_out.stat().st_size > 0
    for who in ("provider", "provider2"):
        claimed = json.loads(cli(rnd, who, "claim", "--json", capsys=capsys))
        assert scheme_problems(claimed) == []
        assert [c["note"] for c in claimed["claims"]] == ["claimed"]
        assert claimed["withdrawnWei"] == claimed["claims"][0]["amountWei"] != "0"
        assert len(claimed["transactions"]) == 2  # one claimMany, one withdraw
    assert rnd.market.proposal(pid).unclaimed == 0
    view = json.loads(cli(rnd, "stranger", "status", str(pid), "--json", capsys=capsys))
    assert scheme_problems(view) == []
    assert view["status"] == "completed"
    assert view["result"]["wtpMet"] is True
    paid = sum(int(p["amountWei"]) for p in view["result"]["payouts"])
    assert paid == int(view["priceWei"]) > 0
