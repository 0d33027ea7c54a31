"""Governance input checked without a chain: endpoints, addresses and account names, and the
list of nodes a refusal names."""

from __future__ import annotations

from pathlib import Path

import pytest

from visdm.accounts import import_account
from visdm.chain.contracts import ComputeNodeRecord
from visdm.config import Settings
from visdm.errors import InvalidInputError
from visdm.governance import check_endpoint, describe_nodes, resolve_account
from visdm.types import Address

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://127.0.0.1:8700/", "http://127.0.0.1:8700"),
        ("  https://node.example/api  ", "https://node.example/api"),
        ("http://[::1]:8700", "http://[::1]:8700"),
    ],
)
def test_an_http_url_is_kept_without_its_trailing_slash(given: str, kept: str) -> None:
    assert check_endpoint(given) == kept


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("", "the scheme is missing"),
        ("127.0.0.1:8700", "the scheme is missing"),
        ("node.example:8700", "the scheme is node.example"),
        ("http://node.example:0", "port 0 is not a port"),
        ("http://node.example:port", "Port could not be cast"),
        ("http://node .example", "spaces or control characters"),
        ("http://node.example/\x00", "spaces or control characters"),
        ("http://node.example/#x", "query or fragment"),
        ("http://node.example/" + "a" * 600, "over 512"),
    ],
)
def test_anything_else_is_refused_in_one_line(given: str, problem: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_endpoint(given)
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_accounts_resolve_by_address_or_local_name(tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path)
    info = import_account(cfg.keystore_dir, "alice", bytes(range(1, 33)), "pw", scrypt_n=1024)
    assert resolve_account(cfg, "alice") == info.address
    assert resolve_account(cfg, info.address.lower()) == info.address
    with pytest.raises(InvalidInputError, match="'bob' is neither an address"):
        resolve_account(cfg, "bob", what="delegate")
    with pytest.raises(InvalidInputError, match="delegate '0xabc' is not a full address"):
        resolve_account(cfg, "0xabc", what="delegate")


def test_a_long_node_list_is_cut_short() -> None:
    nodes = [
        ComputeNodeRecord(
            Address(f"0x{i:040x}"), Address(f"0x{i:040x}"), 0, True, i == 3, b"", "http://n"
        )
        for i in range(1, 15)
    ]
    text = describe_nodes(nodes)
    assert text.startswith("active compute nodes: 0x0000000000000000000000000000000000000001")
    assert text.endswith(" and 3 more") and "0x0000000000000000000000000000000000000003" not in text
    assert "suspended" in describe_nodes(nodes, active_only=False)
    assert describe_nodes([]).startswith("no compute node is active")
