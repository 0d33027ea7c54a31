"""The artifacts shipped in the package match the Solidity sources and the npm pins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from visdm.chain.artifacts import build_info, error_table, load_artifact
from visdm.chain.build import COMPILER_SETTINGS, pinned_versions, source_hashes
from visdm.chain.client import decode_revert
from visdm.errors import ArtifactError, ContractRevertError, PanicError, RevertReasonError

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def test_artifacts_are_fresh_against_sources_and_pins() -> None:
    info = build_info()
    stale = "artifacts are stale against contracts/src: run `make contracts` and commit the result"
    assert info["sources"] == source_hashes(REPO), stale
    assert info["pins"] == pinned_versions(REPO), stale
    assert info["settings"] == COMPILER_SETTINGS, stale
    assert info["compiler"].startswith(pinned_versions(REPO)["solc"] + "+")


def test_npm_lock_pins_match_package_json() -> None:
    lock = json.loads((REPO / "package-lock.json").read_text())["packages"]
    for name, version in pinned_versions(REPO).items():
        assert lock[f"node_modules/{name}"]["version"] == version


def test_every_artifact_has_abi_and_bytecode() -> None:
    for name in build_info()["contracts"]:
        artifact = load_artifact(name)
        assert artifact.abi, name
        assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 100, name


def test_missing_artifact_is_a_clear_error() -> None:
    with pytest.raises(ArtifactError, match="make contracts"):
        load_artifact("NoSuchContract")


def test_error_table_knows_registry_errors() -> None:
    selector = keccak(text="StakeholderRegistryAlreadyRegistered(address)")[:4]
    entry = error_table()[selector]
    assert (entry.contract, entry.name, entry.arg_names) == (
        "StakeholderRegistry",
        "StakeholderRegistryAlreadyRegistered",
        ("account",),
    )


def test_decode_revert_variants() -> None:
    address = "0x" + "ab" * 20
    data = keccak(text="StakeholderRegistryAlreadyRegistered(address)")[:4] + encode(
        ["address"], [address]
    )
    err = decode_revert(data, action="register")
    assert err.error_name == "StakeholderRegistryAlreadyRegistered"
    assert err.error_args["account"].lower() == address
    assert str(err).startswith("register refused: ")
    assert str(err).endswith(
        "is already registered: `visdm whoami` shows its record "
        "[StakeholderRegistryAlreadyRegistered]"
    )

    reason = decode_revert(bytes.fromhex("08c379a0") + encode(["string"], ["nope"]))
    assert isinstance(reason, RevertReasonError) and reason.reason == "nope"
    panic = decode_revert(bytes.fromhex("4e487b71") + encode(["uint256"], [0x11]))
    assert isinstance(panic, PanicError) and panic.code == 0x11

    unknown = decode_revert(b"\xde\xad\xbe\xef" + b"\x00" * 32)
    assert type(unknown) is ContractRevertError
    assert unknown.error_name == "UnknownError"
    assert unknown.error_args["data"].startswith(b"\xde\xad\xbe\xef")
