"""Settings from the environment, the error tree, and domain types."""

from __future__ import annotations

from pathlib import Path

import pytest

import visdm
from visdm.config import Settings
from visdm.errors import ConfigError, InvalidInputError, VisdmError, WrongPasswordError
from visdm.types import Role

pytestmark = pytest.mark.unit


def test_settings_from_env(tmp_path: Path) -> None:
    s = Settings.from_env(
        {"VISDM_HOME": str(tmp_path), "VISDM_RPC_URL": "http://x:1", "VISDM_RPC_TIMEOUT": "3"}
    )
    assert s.home == tmp_path
    assert s.rpc_url == "http://x:1"
    assert s.rpc_timeout_s == 3.0
    assert s.keystore_dir == tmp_path / "keystore"
    assert s.deployments_dir == tmp_path / "deployments"
    assert Settings.from_env({}).home.name == "visdm"


@pytest.mark.parametrize("value", ["abc", "-1", "0"])
def test_bad_timeout_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=f"VISDM_TX_TIMEOUT={value!r}"):
        Settings.from_env({"VISDM_TX_TIMEOUT": value})


def test_overrides_ignore_none(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, rpc_url="http://a")
    assert s.with_overrides(rpc_url=None).rpc_url == "http://a"
    assert s.with_overrides(rpc_url="http://b").rpc_url == "http://b"


def test_errors_subclass_builtins() -> None:
    assert issubclass(WrongPasswordError, VisdmError)
    assert issubclass(WrongPasswordError, ValueError)
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("provider", Role.PROVIDER),
        ("Consumer", Role.CONSUMER),
        ("provider, consumer", Role.PROVIDER | Role.CONSUMER),
    ],
)
def test_role_parse(text: str, role: Role) -> None:
    assert Role.parse(text) == role


@pytest.mark.parametrize("text", ["", "admin", "provider,,", "none"])
def test_role_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidInputError, match="unknown role"):
        Role.parse(text)


def test_public_api_is_curated() -> None:
    assert "VisdmError" in visdm.__all__
    for name in visdm.__all__:
        assert hasattr(visdm, name), name
