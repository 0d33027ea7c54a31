"""``visdm governance``: nodes named by address or account name, endpoints checked, refusals
in one line that says what exists — never a traceback, never a transaction with a wrong party."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from visdm.accounts import import_account
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.cli import main
from visdm.config import Settings

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
    for name in ("governance", "node", "stranger"):
        import_account(cfg.keystore_dir, name, bytes(funded_roles[name].key), "pw", scrypt_n=1024)
    monkeypatch.setenv("VISDM_PASSWORD", "pw")
    monkeypatch.setenv("VISDM_RPC_URL", chain.rpc_url)
    return cfg


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


def test_suspend_and_reinstate_a_node_by_its_account_name(
    home: Settings, deployment: Deployment, chain: ChainClient, node: LocalAccount, capsys
) -> None:
    registry = deployment.stakeholder_registry(chain)
    code, _, err = run(capsys, "--account", "governance", "governance", "suspend-node", "node")
    assert code == 0, err
    assert registry.compute_node(node.address).suspended
    block = chain.w3.eth.block_number
    # suspending again changes nothing and sends nothing
    code, _, err = run(capsys, "--account", "governance", "governance", "suspend-node", "node")
    assert code == 0, err
    assert chain.w3.eth.block_number == block
    code, _, err = run(
        capsys, "--account", "governance", "governance", "reinstate-node", node.address.lower()
    )
    assert code == 0, err
    assert registry.compute_node(node.address).active


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("0x12ab", "compute node '0x12ab' is not a full address: give 0x and 40 hex digits"),
        ("nobody", "compute node 'nobody' is neither an address (0x and 40 hex digits) nor"),
        ("0x" + "11" * 20, "0x1111111111111111111111111111111111111111 is not an admitted"),
    ],
)
def test_a_node_that_is_not_one_is_refused_naming_the_nodes_there_are(
    home: Settings, node: LocalAccount, capsys, given: str, says: str
) -> None:
    code, out, err = run(capsys, "--account", "governance", "governance", "suspend-node", given)
    assert code == 2 and out == ""
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("error: " + says), line
    assert f"active compute nodes: {node.address} (http://127.0.0.1:9/)" in line or (
        f"admitted compute nodes: {node.address} (http://127.0.0.1:9/)" in line
    )


def test_a_mistyped_checksum_is_refused(home: Settings, node: LocalAccount, capsys) -> None:
    body = node.address[2:]
    flipped = "0x" + (body[0].swapcase() if body[0].isalpha() else body[0]) + body[1:]
    if flipped == node.address:  # the first character is a digit: flip the first letter
        i = next(i for i, c in enumerate(body) if c.isalpha())
        flipped = "0x" + body[:i] + body[i].swapcase() + body[i + 1 :]
    code, _, err = run(capsys, "--account", "governance", "governance", "suspend-node", flipped)
    assert code == 2
    assert "has a wrong EIP-55 checksum (mistyped?)" in err


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("not a url", "the scheme is missing, not http or https"),
        ("ftp://node.example", "the scheme is ftp, not http or https"),
        ("http://", "it names no host"),
        ("http://node.example:99999", "Port out of range"),
        ("http://user:secret@node.example", "it carries a user name or password"),
        ("http://node.example/?a=1", "it has a query or fragment"),
    ],
)
def test_admit_node_refuses_an_endpoint_that_is_no_url(
    home: Settings,
    deployment: Deployment,
    chain: ChainClient,
    stranger: LocalAccount,
    capsys,
    endpoint: str,
    problem: str,
) -> None:
    code, out, err = run(
        capsys,
        "--account",
        "governance",
        "governance",
        "admit-node",
        "stranger",
        "--region",
        "local",
        "--endpoint",
        endpoint,
    )
    assert code == 2 and out == ""
    assert err.strip().startswith(f"error: endpoint {endpoint!r} is not the URL of a node's API")
    assert problem in err and "e.g. http://127.0.0.1:8700" in err
    assert not deployment.stakeholder_registry(chain).compute_node(stranger.address).admitted


def test_admit_node_by_name_with_a_good_endpoint(
    home: Settings, deployment: Deployment, chain: ChainClient, stranger: LocalAccount, capsys
) -> None:
    code, _, err = run(
        capsys,
        "--account",
        "governance",
        "governance",
        "admit-node",
        "stranger",
        "--region",
        "local",
        "--endpoint",
        " https://node.example:8443/api/ ",
    )
    assert code == 0, err
    record = deployment.stakeholder_registry(chain).compute_node(stranger.address)
    assert record.active and record.endpoint == "https://node.example:8443/api"


def test_a_revert_reads_as_a_sentence_with_the_next_step(
    home: Settings, stranger: LocalAccount, capsys
) -> None:
    code, _, err = run(capsys, "--account", "stranger", "governance", "suspend-node", "node")
    assert code == 6
    assert err.strip() == (
        f"error: suspendNode refused: {stranger.address} lacks GOVERNANCE_ROLE: act as an "
        "account that holds it (--account), or have an admin grant it "
        "[AccessControlUnauthorizedAccount]"
    )
