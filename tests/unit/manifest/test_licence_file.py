"""Privacy terms from a licence file (``load_licence``) and from ``visdm asset add``'s flags."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import visdm.assets
from visdm.assets import AddedAsset, load_licence
from visdm.cli import asset as asset_cli
from visdm.cli import main
from visdm.errors import InvalidInputError
from visdm.manifest import Licence
from visdm.types import AssetId, Cid

pytestmark = pytest.mark.unit


def _file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "licence.json"
    path.write_text(body)
    return path


def _terms(licence: Licence) -> tuple[bool, float, float | None]:
    return licence.dp_required, licence.max_epsilon, licence.max_delta


def test_no_file_gives_the_strict_defaults() -> None:
    assert load_licence(None) == Licence(("training",))
    assert _terms(load_licence(None)) == (True, 8.0, None)


def test_the_file_sets_every_term(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        json.dumps(
            {"purposes": ["research"], "dp_required": False, "max_epsilon": 3, "max_delta": 1e-7}
        ),
    )
    licence = load_licence(path)
    assert _terms(licence) == (False, 3.0, 1e-7)
    assert licence.purposes == ("research",)
    assert _terms(load_licence(_file(tmp_path, '{"max_delta": null}'))) == (True, 8.0, None)


def test_the_flags_override_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, '{"dp_required": false, "max_epsilon": 3}')
    assert _terms(load_licence(path, dp_required=True, max_epsilon=1.5)) == (True, 1.5, None)
    assert _terms(load_licence(None, dp_required=False)) == (False, 8.0, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"dp_required": "no"}', "dp_required must be true or false, got 'no'"),
        ('{"dp_required": 1}', "dp_required must be true or false, got 1"),
        ('{"max_epsilon": 0}', r"max_epsilon must be in \(0, 100\], got 0\.0"),
        ('{"max_epsilon": 1000}', r"max_epsilon must be in \(0, 100\], got 1000\.0"),
        ('{"max_epsilon": NaN}', "max_epsilon must be finite, got nan"),
        ('{"max_epsilon": Infinity}', "max_epsilon must be finite, got inf"),
        ('{"max_epsilon": "8"}', "max_epsilon must be a number, got '8'"),
        ('{"max_epsilon": true}', "max_epsilon must be a number, got True"),
        ('{"max_delta": 0.5}', r"max_delta must be in \(0, 0\.01\), got 0\.5"),
        ('{"max_delta": [1e-6]}', r"max_delta must be a number, got \[1e-06\]"),
        ('{"max_epsilon": 1' + "0" * 400 + "}", "max_epsilon has 401 digits"),
        ('{"min_epsilon": 1}', "has unknown keys: min_epsilon"),
    ],
)
def test_bad_terms_in_the_file_name_the_file(tmp_path: Path, body: str, message: str) -> None:
    path = _file(tmp_path, body)
    with pytest.raises(InvalidInputError, match=f"licence file {path}.*{message}"):
        load_licence(path)


def test_a_bad_override_is_refused_without_blaming_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, '{"max_epsilon": 3}')
    with pytest.raises(InvalidInputError, match=r"^licence max_epsilon must be in \(0, 100\]"):
        load_licence(path, max_epsilon=-1.0)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot be read: Is a directory"):
        load_licence(tmp_path)


# --- visdm asset add ------------------------------------------------------------------------
def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@dataclass
class Calls:
    """What the command handed on: accounts unlocked and ``add_asset``'s keyword arguments."""

    unlocked: list[object] = field(default_factory=list)
    added: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """``add_asset`` and the account unlock replaced: the flags are checked up to the SDK call."""
    monkeypatch.setenv("VISDM_HOME", str(tmp_path / "home"))
    record = Calls()

    def fake_unlock(cfg: object) -> object:
        record.unlocked.append(cfg)
        return "owner"

    def fake_add(cfg: object, owner: object, directory: Path, **kwargs: Any) -> AddedAsset:
        record.added.append(kwargs)
        return AddedAsset(
            asset_id=AssetId(1),
            manifest_cid=Cid("b" + "a" * 58),
            sample_count=4,
            rejected=[],
            label_problems=[],
            already_registered=[],
            nodes=["0xnode"],
            regions=["local"],
            gas_used=1,
        )

    monkeypatch.setattr(asset_cli, "unlock_account", fake_unlock)
    monkeypatch.setattr(visdm.assets, "add_asset", fake_add)
    return record


def test_the_flags_reach_the_licence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], calls: Calls
) -> None:
    path = _file(tmp_path, '{"purposes": ["training"], "max_epsilon": 3}')
    code, _, err = _run(
        capsys, "asset", "add", str(tmp_path), "--licence", str(path), "--allow-no-dp", "--json"
    )
    assert code == 0, err
    assert _terms(calls.added[-1]["licence"]) == (False, 3.0, None)
    code, _, err = _run(capsys, "asset", "add", str(tmp_path), "--max-epsilon", "2", "--json")
    assert code == 0, err
    assert _terms(calls.added[-1]["licence"]) == (True, 2.0, None)
    no_dp = _file(tmp_path, '{"dp_required": false}')
    code, _, err = _run(
        capsys, "asset", "add", str(tmp_path), "--licence", str(no_dp), "--require-dp", "--json"
    )
    assert code == 0, err
    assert _terms(calls.added[-1]["licence"]) == (True, 8.0, None)
    assert len(calls.unlocked) == len(calls.added) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-epsilon", "0"], r"licence max_epsilon must be in \(0, 100\], got 0\.0"),
        (["--max-epsilon", "nan"], "licence max_epsilon must be finite, got nan"),
        (["--max-epsilon", "101"], r"licence max_epsilon must be in \(0, 100\], got 101\.0"),
    ],
)
def test_a_bad_flag_is_one_line_before_any_password(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    calls: Calls,
    argv: list[str],
    message: str,
) -> None:
    code, out, err = _run(capsys, "asset", "add", str(tmp_path), *argv)
    assert code == InvalidInputError.exit_code
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert re.search(message, lines[0])
    assert calls == Calls()  # neither unlocked nor added


def test_a_bad_licence_file_is_one_line_before_any_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], calls: Calls
) -> None:
    path = _file(tmp_path, '{"dp_required": "no"}')
    code, _, err = _run(capsys, "asset", "add", str(tmp_path), "--licence", str(path))
    assert code == InvalidInputError.exit_code
    assert err.strip() == (
        f"error: licence file {path}: licence dp_required must be true or false, got 'no'"
    )
    assert calls == Calls()
