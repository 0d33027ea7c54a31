"""Every ``visdm`` command's ``--json`` speaks one language (:mod:`visdm.cli._json`): camelCase
keys, token amounts as decimal strings of wei under keys ending in ``Wei``, no integer past
2^53 as a JSON number, rows instead of maps keyed by data, and the transactions a write
command sent.

Each command runs through the real entry point. Keystores, the data directory, the sample data
and the market index are real; the SDK calls that need a chain or a compute node are replaced
by fakes that return the SDK's own result types, with amounts past 2^53, so what is checked is
what the CLI makes of them. On a real chain the same checks run in
``tests/integration/chain/test_cli_chain.py``, ``compute/test_asset_add.py``,
``compute/test_node_service.py`` and ``index/test_chain_index.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer

import visdm.assets
import visdm.demo
import visdm.governance
import visdm.index
import visdm.session

# the collective and scoring commands' cases register themselves on import
from tests.unit.cli import _json_cases_pools  # noqa: F401
from tests.unit.cli._json_cases import ADDRESS, BIG, CASES, NODE, PASSWORD, TX, case, nothing_more
from tests.unit.index._world import World, build_market
from visdm.accounts import MIN_SCRYPT_N, create_account
from visdm.assets import AddedAsset, AssetCheck, AssetView
from visdm.chain import anvil
from visdm.chain.anvil import AnvilNode
from visdm.chain.client import TxResult
from visdm.chain.contracts import (
    REJECT_ASK,
    MarketParameters,
    ProposalStatus,
    Quote,
    StakeholderRecord,
)
from visdm.chain.deployment import DeployedContract, Deployment
from visdm.cli import app, main
from visdm.cli import chain as chain_cli
from visdm.cli._json import MAX_SAFE_INTEGER, json_view, scheme_problems
from visdm.compute import JobJournal
from visdm.config import Settings
from visdm.demo import DemoReport, DemoStep
from visdm.index import SyncReport, open_database
from visdm.market import workflow
from visdm.market.tally import TallyOutcome, TallyReceipt
from visdm.market.workflow import ClaimReceipt, QuoteOffer
from visdm.proposals import CreatedProposal
from visdm.session import WhoAmI
from visdm.types import AssetId, Cid, Role

pytestmark = pytest.mark.unit

#: commands whose output is a document with its own format, not a report
NO_JSON = {
    "data model-spec": "prints the model spec document itself (the schema's names)",
    "web": "serves the web app and prints the URL to open until Ctrl-C: there is no result",
    "federation serve": "runs the node's part in the federation's rounds until stopped: no result",
}
#: commands that need a running node and chain: checked in the integration tests
ON_A_REAL_CHAIN = {
    "node serve": "tests/integration/compute/test_asset_add.py",
    **{
        f"federation {c}": "tests/integration/federation/test_cli_federation.py"
        for c in ("create", "join", "show", "bond", "collect", "withdraw")
    },
}


def commands() -> dict[str, Any]:
    """Every command of the CLI by its path (``asset add``), from the app itself."""
    from visdm.cli import groups

    groups.register(app)
    found: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, command in group.commands.items():
            path = f"{prefix} {name}".strip()
            if hasattr(command, "commands"):  # a group (Typer's click, not necessarily ours)
                walk(command, path)
            else:
                found[path] = command

    walk(typer.main.get_command(app), "")
    return found


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory with one real account, alice, chosen and unlockable."""
    root = tmp_path / "home"
    monkeypatch.setenv("VISDM_HOME", str(root))
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    monkeypatch.setenv("VISDM_ACCOUNT", "alice")
    for name in ("VISDM_RPC_URL", "VISDM_INDEX_URL", "VISDM_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    create_account(Settings(home=root).keystore_dir, "alice", PASSWORD, scrypt_n=MIN_SCRYPT_N)
    return root


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The unit tests' hand-made market, indexed once for the search commands."""
    url = f"sqlite:///{tmp_path_factory.mktemp('index') / 'index.sqlite3'}"
    world = World()
    build_market(world)
    with open_database(url) as db:
        world.indexer(db).sync()
    return url


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    capsys.readouterr()
    try:
        main([*argv, "--json"])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    out = capsys.readouterr().out
    return json.loads(out)


def test_the_cases_cover_every_command() -> None:
    """A new command needs a case here (or a reason it cannot have one)."""
    assert set(CASES) | set(NO_JSON) | set(ON_A_REAL_CHAIN) == set(commands())


def test_every_command_takes_json() -> None:
    missing = [
        path
        for path, command in commands().items()
        if path not in NO_JSON and not any("--json" in p.opts for p in command.params)
    ]
    assert missing == []


def test_the_checker_finds_each_kind_of_break() -> None:
    """Without the language (the old output), the checker says where each break is."""
    old = {
        "asset_id": 1,
        "balance_wei": BIG,
        "amount": "2.5 (2500000000000000000 wei)",
        "clearingPrice": "100",
        "offerWei": 10.5,
        "gas": 2**60,
    }
    where = {p.split(":")[0] for p in scheme_problems(old)}
    assert where == {f"$.{key}" for key in old}
    view = json_view({"balance_wei": BIG, "byte_size": 3, "flops": 2**60, "nan": float("nan")})
    assert view == {"balanceWei": str(BIG), "byteSize": 3, "flops": str(2**60), "nan": None}
    assert scheme_problems(view) == [] and MAX_SAFE_INTEGER == 2**53 - 1


# --- accounts and the local chain -------------------------------------------------------------
@case("account new")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    return ["account", "new", "carol", "--scrypt-n", "1024"], lambda d: "x25519Public" in d


@case("account import")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setenv("VISDM_PRIVATE_KEY", "0x" + "11" * 32)
    return ["account", "import", "dave", "--scrypt-n", "1024"], nothing_more


@case("account list")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    return ["account", "list"], lambda d: [a["name"] for a in d] == ["alice"]


@case("account show")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    return ["account", "show", "alice"], nothing_more


@case("account export-public")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    return ["account", "export-public", "alice"], nothing_more


@case("chain up")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    node = AnvilNode(pid=1, host="127.0.0.1", port=8545, state_file=None, log_file="anvil.log")
    mp.setattr(chain_cli, "chain_up", lambda _dir: (node, True))

    def check(d: Any) -> None:
        assert d == {"rpcUrl": node.rpc_url, "pid": 1, "started": True}

    return ["chain", "up"], check


@case("chain down")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(chain_cli, "chain_down", lambda _dir: False)
    return ["chain", "down"], lambda d: d == {"stopped": False}


@case("chain status")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    return ["chain", "status"], lambda d: d["running"] is False


@case("chain advance")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(visdm.session, "connect", lambda _cfg: object())
    mp.setattr(anvil, "advance_time", lambda _client, seconds: 1_700_000_000 + seconds)
    expected = {"chainTime": 1_700_000_090, "advancedSeconds": 90}
    return ["chain", "advance", "90"], lambda d: d == expected


@case("deploy")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    contracts = {
        name: DeployedContract(ADDRESS, 3, "0x" + f"{i:02x}" * 32, 1_000_000)
        for i, name in enumerate(("StakeholderRegistry", "AssetRegistry"))
    }
    deployed = Deployment(31337, "http://127.0.0.1:8545", ADDRESS, "0.8.28", 1.7e9, contracts)
    mp.setattr(visdm.session, "deploy", lambda *_a, **_k: deployed)

    def check(d: Any) -> None:
        assert [c["name"] for c in d["contracts"]] == list(contracts)
        assert d["gasUsed"] == 2_000_000 and len(d["transactions"]) == 2

    return ["deploy"], check


@case("register")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    record = StakeholderRecord(ADDRESS, Role.PROVIDER, bytes(32), 5)
    mp.setattr(visdm.session, "register", lambda *_a: (record, TX))

    def check(d: Any) -> None:
        assert d["transactions"] == [{"txHash": TX.tx_hash, "blockNumber": 7, "gasUsed": 51_234}]

    return ["register", "--role", "provider"], check


@case("whoami")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    me = WhoAmI(ADDRESS, 31337, "http://x", True, ["provider"], None, "0x00", False, 5, BIG)
    mp.setattr(visdm.session, "whoami", lambda *_a: me)
    return ["whoami"], lambda d: d["balanceWei"] == str(BIG)


# --- governance -------------------------------------------------------------------------------
@case("governance add-region")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(visdm.governance, "add_region", lambda *_a: (["local", "eu"], TX))
    return ["governance", "add-region", "eu"], lambda d: d["regions"] == ["local", "eu"]


@case("governance admit-node")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(visdm.governance, "admit_node", lambda *_a, **_k: (NODE, TX))
    argv = ["governance", "admit-node", "alice", "--region", "local"]
    return [*argv, "--endpoint", "http://127.0.0.1:8700"], lambda d: d["active"] is True


@case("governance suspend-node")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(visdm.governance, "resolve_node", lambda *_a, **_k: NODE)
    mp.setattr(visdm.governance, "set_node_suspended", lambda *_a, **_k: (NODE, None))
    # already in that state: nothing was sent, and the output says so
    return ["governance", "suspend-node", ADDRESS], lambda d: d["transactions"] == []


@case("governance reinstate-node")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(visdm.governance, "resolve_node", lambda *_a, **_k: NODE)
    mp.setattr(visdm.governance, "set_node_suspended", lambda *_a, **_k: (NODE, TX))
    return ["governance", "reinstate-node", ADDRESS], lambda d: d["gasUsed"] == TX.gas_used


@case("governance parameters")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    params = MarketParameters(treasury=ADDRESS, claim_period=BIG)
    mp.setattr(visdm.governance, "market_parameters", lambda *_a: params)
    return ["governance", "parameters"], lambda d: d["claimPeriod"] == str(BIG)


@case("governance set-parameters")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    before = MarketParameters(treasury=ADDRESS)
    done = visdm.governance.ParameterChange(before, replace(before, quorum_bps=5000), TX)
    mp.setattr(visdm.governance, "set_market_parameters", lambda *_a, **_k: done)
    changed = [{"name": "quorumBps", "before": 3000, "after": 5000}]
    return ["governance", "set-parameters", "quorumBps=5000"], lambda d: d["changed"] == changed


# --- assets and sample data -------------------------------------------------------------------
@case("asset add")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    added = AddedAsset(
        asset_id=AssetId(4),
        manifest_cid=Cid("b" + "a" * 58),
        sample_count=2,
        rejected=[{"file": "broken.png", "reason": "not an image"}],
        label_problems=[{"file": "labels.csv", "line": 3, "reason": "no label"}],
        already_registered=[{"asset_id": 1, "files": 1, "directory": "/photos"}],
        nodes=[ADDRESS],
        regions=["local"],
        gas_used=TX.gas_used,
        tx_hash=TX.tx_hash,
        block_number=TX.block_number,
    )
    mp.setattr(visdm.assets, "add_asset", lambda *_a, **_k: added)

    def check(d: Any) -> None:
        assert d["alreadyRegistered"] == [{"assetId": 1, "files": 1, "directory": "/photos"}]
        assert d["transactions"][0]["txHash"] == TX.tx_hash and "txHash" not in d

    return ["asset", "add", str(tmp)], check


@case("asset withdraw")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(visdm.assets, "withdraw_asset", lambda *_a: ("withdrawn", TX))
    return ["asset", "withdraw", "4"], lambda d: d["status"] == "withdrawn"


@case("asset list")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    row = {"asset_id": 4, "owner": ADDRESS, "status": "active", "sample_count": 2}
    mp.setattr(visdm.assets, "list_assets", lambda *_a, **_k: [row])
    return ["asset", "list"], lambda d: d[0]["sampleCount"] == 2


@case("asset show")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    sample = {"index": 0, "sampleId": "0x01", "label": "t_shirt", "width": 28, "height": 28}
    sample |= {"channels": 1, "format": "PNG", "byteSize": 300, "phash": "00ff00ff00ff00ff"}
    sample |= {"brightness": 90.5, "contrast": 40.0, "blur": 1234.5}
    view = AssetView(4, ADDRESS, "active", 2, 2, ["local"], "bafy", "bafk", ADDRESS)
    view.labels["t_shirt"] = 2
    view.samples.append(sample)
    mp.setattr(visdm.assets, "show_asset", lambda *_a, **_k: view)

    def check(d: Any) -> None:
        # the name the search filters use; a label is data, never renamed
        assert d["samples"][0]["sharpness"] == 1234.5 and "blur" not in d["samples"][0]
        assert d["labels"] == [{"label": "t_shirt", "samples": 2}]

    return ["asset", "show", "4"], check


@case("data fashion-mnist")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    out = tmp / "fm"
    return ["data", "fashion-mnist", str(out), "--count", "2"], lambda d: d["images"] == 2


# --- the market index -------------------------------------------------------------------------
@case("market sync")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    report = SyncReport("sqlite:///x", 31337, 9, 0, None, 9, 12, 0, 3, 9, 1, 4, {"missing": 0})
    mp.setattr(visdm.index, "sync_index", lambda *_a, **_k: report)
    return ["market", "sync"], lambda d: d["cursorBefore"] is None and d["scoredSamples"] == 4


@case("market search")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    url = os.environ["TEST_INDEX_URL"]

    def check(d: Any) -> None:
        assert {"assetId", "sampleId", "byteSize", "sharpness"} <= set(d["samples"][0])
        assert d["filters"] == {"includeExpired": True, "minSharpness": 0.0}

    argv = ["market", "search", "--index-url", url, "--include-expired"]
    return [*argv, "--min-sharpness", "0"], check


@case("market summary")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    url = os.environ["TEST_INDEX_URL"]

    def check(d: Any) -> None:
        assert d["labels"][0] == {"label": "cat", "samples": 4}
        assert set(d["perAsset"][0]) == {"assetId", "provider", "samples"}

    return ["market", "summary", "--index-url", url, "--include-expired"], check


@case("market earnings")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    url = os.environ["TEST_INDEX_URL"]

    def check(d: Any) -> None:
        line = d[0]["lines"][0]
        assert int(line["amountWei"]) > 0 and {"proposalId", "assetId"} <= set(line)

    return ["market", "earnings", "--index-url", url], check


# --- the compute node's local state -----------------------------------------------------------
@case("node status")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    # no state yet: the same shape as with one
    return ["node", "status"], lambda d: d == {"cursor": None, "assets": []}


@case("node jobs")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    node_dir = Settings(home=Path(os.environ["VISDM_HOME"])).node_dir
    node_dir.mkdir(parents=True)
    journal = JobJournal(node_dir / "jobs.sqlite3")
    try:
        journal.enqueue(7, 1_700_003_600)
    finally:
        journal.close()
    return ["node", "jobs"], lambda d: (d[0]["proposalId"], d[0]["state"]) == (7, "queued")


# --- training rounds --------------------------------------------------------------------------
@case("propose")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    document = SimpleNamespace(
        sample_counts=(300,), asset_ids=(4,), voting_deadline=1_700_003_600, offer=BIG
    )
    notes = ("300 of 300 images score the model",)
    created = CreatedProposal(3, Cid("bafy"), document, (TX, TX), notes)  # type: ignore[arg-type]
    mp.setattr(visdm.governance, "resolve_node", lambda *_a, **_k: NODE)
    mp.setattr(workflow, "propose", lambda *_a, **_k: created)

    def check(d: Any) -> None:
        assert d["offerWei"] == str(BIG) and d["gasUsed"] == 2 * TX.gas_used

    argv = ["propose", "--asset", "4", "--spec", "s.json", "--validation", str(tmp)]
    return [*argv, "--offer", "10", "--wtp-bps", "1000", "--node", ADDRESS], check


def test_a_vote_in_tokens_is_answered_in_wei(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    no_warning = SimpleNamespace(warning=lambda _pid: "")
    monkeypatch.setattr(workflow, "vote", lambda *a: sent.append(a[-1]) or TX)
    monkeypatch.setattr(workflow, "voting_weight", lambda *_a: no_warning)
    data = run_json(capsys, ["vote", "3", "2.5"])
    assert (data["vote"], data["askWei"], data["warning"]) == ("ask", "2500000000000000000", None)
    assert sent == [2_500_000_000_000_000_000]


@case("vote")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(workflow, "vote", lambda *_a: TX)
    weight = SimpleNamespace(warning=lambda pid: f"no weight in proposal {pid}")
    mp.setattr(workflow, "voting_weight", lambda *_a: weight)

    def check(d: Any) -> None:
        assert (d["vote"], d["askWei"]) == ("reject", None)
        assert d["warning"] == "no weight in proposal 3"

    return ["vote", "3", "reject"], check


@case("delegate")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(workflow, "delegate", lambda *_a: TX)
    return ["delegate", ADDRESS], lambda d: d["delegate"] == ADDRESS


@case("undelegate")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(workflow, "undelegate", lambda *_a: TX)
    return ["undelegate"], lambda d: d["delegate"] is None


@case("tally")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    outcome = TallyOutcome(ProposalStatus.COUNTERED, BIG, 250, 300, 300)
    mp.setattr(workflow, "tally", lambda *_a: TallyReceipt(outcome, (TX, TX)))

    def check(d: Any) -> None:
        assert (d["outcome"], d["clearingPriceWei"]) == ("countered", str(BIG))
        assert len(d["transactions"]) == 2

    return ["tally", "3"], check


@case("accept-counter")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(workflow, "accept_counter", lambda *_a: TX)
    return ["accept-counter", "3"], nothing_more


@case("train")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    design = {"params": 101_770, "trainFlopsPerSample": 610_000, "epochs": 3, "samples": 300}
    offer = QuoteOffer(
        Quote(3, BIG, 3600, 1_700_000_600), b"\x01" * 65, ADDRESS, design, "http://127.0.0.1:8700"
    )
    mp.setattr(workflow, "start_training", lambda *_a, **_k: (offer, TX))

    def check(d: Any) -> None:
        assert d["trainingCostWei"] == str(BIG) and d["design"] == design

    return ["train", "3"], check


@case("reclaim")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(workflow, "reclaim", lambda *_a: TX)
    return ["reclaim", "3"], nothing_more


@case("release")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(workflow, "release", lambda *_a: TX)
    return ["release", "3"], nothing_more


@case("overturn-unproven")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    import visdm.verify._claims

    mp.setattr(visdm.verify._claims, "overturn_unproven", lambda *_a: TX)
    return ["overturn-unproven", "3"], nothing_more


@case("claim")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    receipts = [
        ClaimReceipt(3, BIG, TX.tx_hash, "claimed", TX.gas_used, TX.block_number),
        ClaimReceipt(4, BIG, TX.tx_hash, "claimed", TX.gas_used, TX.block_number),
        ClaimReceipt(5, 0, None, "not a payee"),
    ]
    mp.setattr(workflow, "claim", lambda *_a, **_k: receipts)
    withdrawal = TxResult("0x" + "cd" * 32, 8, 30_000, {})  # type: ignore[arg-type]
    mp.setattr(workflow, "withdraw", lambda *_a: (2 * BIG, withdrawal))

    def check(d: Any) -> None:
        assert [c["amountWei"] for c in d["claims"]] == [str(BIG), str(BIG), "0"]
        assert d["withdrawnWei"] == str(2 * BIG)
        # one claimMany for both proposals, then the withdrawal
        assert [t["txHash"] for t in d["transactions"]] == [TX.tx_hash, withdrawal.tx_hash]
        assert d["gasUsed"] == TX.gas_used + 30_000

    return ["claim"], check


@case("sweep")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(workflow, "sweep_unclaimed", lambda *_a: TX)
    return ["sweep", "3"], nothing_more


@case("withdraw")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    mp.setattr(workflow, "withdraw", lambda *_a: (0, None))
    # no credit: nothing withdrawn, nothing sent
    return ["withdraw"], lambda d: d == {"withdrawnWei": "0", "transactions": [], "gasUsed": 0}


@case("status")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm.market._views import ask_view, rows

    view = {
        "proposalId": 3,
        "status": "completed",
        "offerWei": str(BIG),
        "priceWei": str(BIG),
        "clearingPriceWei": str(BIG),
        "consumerCreditWei": "0",
        "votes": [
            {"voter": ADDRESS, **ask_view(0)},
            {"voter": ADDRESS, **ask_view(BIG)},
            {"voter": ADDRESS, **ask_view(REJECT_ASK)},
        ],
        "result": {
            "payouts": rows({ADDRESS: str(BIG)}, "provider", "amountWei"),
            "assetPayouts": rows({"4": str(BIG)}, "assetId", "amountWei"),
            "leftOut": rows({"5": "its owner rejected"}, "assetId", "reason"),
            "unclaimedWei": "0",
        },
    }
    mp.setattr(workflow, "proposal_status", lambda *_a, **_k: view)

    def check(d: Any) -> None:
        assert [v["vote"] for v in d["votes"]] == ["accept", "ask", "reject"]
        assert d["result"]["assetPayouts"] == [{"assetId": 4, "amountWei": str(BIG)}]

    return ["status", "3"], check


@case("model get")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from tests.unit.training.test_card import card
    from visdm.cli import rounds

    got = {"proposalId": 3, "path": str(tmp / "m"), "modelHash": "0x00", "accuracyBps": 8100}
    mp.setattr(workflow, "get_model", lambda *_a, **_k: got)
    mp.setattr(rounds, "_model_card", lambda *_a, **_k: card())

    def check(d: Any) -> None:
        # the spec's own snake_case names and the versions map arrive in the one language
        assert d["card"]["spec"]["numClasses"] == 10
        assert {"name": "torch", "version": "2.13.0+cpu"} in d["card"]["versions"]
        assert d["cardPath"] == str(tmp / "m-card.json")
        written = json.loads((tmp / "m-card.json").read_text())
        assert written["accuracy"]["interval"]["method"] == "wilson"

    return ["model", "get", "3", "--out", str(tmp / "m")], check


@case("demo")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    report = DemoReport(home=str(tmp), config={"offerWei": BIG, "wtpBps": 1500})
    report.steps.append(DemoStep("claim", "claimed", 1.5, 90_000))
    report.providers.append(
        {"name": "ada", "payoutWei": BIG, "assetPayouts": [{"assetId": 1, "payoutWei": BIG}]}
    )
    report.rounds.append({"proposalId": 1, "clearingPriceWei": BIG, "leftOut": []})
    report.search.append({"name": "round-1", "filters": {"exclude_flags": ["noisy"]}})
    mp.setattr(visdm.demo, "run_demo", lambda *_a, **_k: report)

    def check(d: Any) -> None:
        assert d["providers"][0]["payoutWei"] == str(BIG)
        assert d["gasByStep"] == [{"step": "claim", "gasUsed": 90_000}]
        assert d["search"][0]["filters"] == {"excludeFlags": ["noisy"]}

    return ["demo", "--data-dir", str(tmp / "demo")], check


def test_scoring_show_asset_reads_the_index(
    home: Path, index_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``show --asset`` reads every round that scored an asset's samples from the index."""
    data = run_json(capsys, ["scoring", "show", "--asset", "1", "--index-url", index_url])
    assert scheme_problems(data) == []
    assert data["assetId"] == 1 and data["samples"] == len(data["rows"]) == 4
    first = data["rows"][0]
    assert first["trainingRounds"] >= 1 and 0 < first["confidence"] < 1
    assert data["rows"][3]["confidence"] == 0.0  # never scored: the market's prior


def test_asset_add_check_json(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    found = AssetCheck(
        directory=str(tmp_path),
        ready=True,
        problems=[],
        accepted=2,
        labels=["bag"],
        rejected=[],
        label_problems=[],
        already_registered=[{"asset_id": 1, "files": 2, "directory": "/photos"}],
        regions=["local"],
        nodes=[ADDRESS],
        not_checked=[],
    )
    monkeypatch.setattr(visdm.assets, "check_asset", lambda *_a, **_k: found)
    data = run_json(capsys, ["asset", "add", str(tmp_path), "--check"])
    assert scheme_problems(data) == []
    assert data["alreadyRegistered"][0]["assetId"] == 1 and data["notChecked"] == []


# the cases above are registered by now
@pytest.mark.parametrize("name", sorted(CASES))
def test_json_output_keeps_the_scheme(
    name: str,
    home: Path,
    tmp_path: Path,
    index_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_INDEX_URL", index_url)
    argv, check = CASES[name](monkeypatch, tmp_path)
    data = run_json(capsys, argv)
    assert scheme_problems(data) == []
    assert check(data) in (None, True), data
