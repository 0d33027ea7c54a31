"""``visdm account ...`` through the real entry point: output, exit codes, one-line errors.

Every test points ``VISDM_HOME`` at its own temporary directory and passes secrets the way a
script would, through ``VISDM_PASSWORD`` / ``VISDM_PRIVATE_KEY``. Keystores use the lowest
scrypt cost (``--scrypt-n 1024``) so the suite stays fast; the default cost is covered by the
unit tests.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from visdm.cli import account as account_cli
from visdm.cli import main
from visdm.cli._json import scheme_problems

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-for-tests"
FAST = ["--scrypt-n", "1024"]
ANVIL_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_0_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "visdm-home"
    monkeypatch.setenv("VISDM_HOME", str(home))
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    for name in ("VISDM_ACCOUNT", "VISDM_RPC_URL", "VISDM_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``visdm argv``; return (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert scheme_problems(data) == []
    return data


def new(capsys: pytest.CaptureFixture[str], name: str) -> dict[str, Any]:
    result: dict[str, Any] = run_json(capsys, "account", "new", name, *FAST)
    return result


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_new_show_list_export(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    created = new(capsys, "alice")
    assert created["name"] == "alice"
    assert created["path"] == str(home / "keystore" / "alice.json")
    assert Path(created["path"]).is_file()

    assert run_json(capsys, "account", "show", "alice") == created
    assert run_json(capsys, "account", "show", created["address"].lower()) == created

    bob = new(capsys, "bob")
    listed = run_json(capsys, "account", "list")
    assert [a["name"] for a in listed] == ["alice", "bob"]
    assert listed[1] == bob

    public = run_json(capsys, "account", "export-public", "alice")
    assert public == {
        "name": "alice",
        "address": created["address"],
        "x25519Public": created["x25519Public"],
    }


def test_text_output(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "account", "list")
    assert code == 0
    assert "none" in out
    code, out, err = run(capsys, "account", "new", "alice", *FAST)
    assert code == 0, err
    address = json.loads(run(capsys, "account", "show", "alice", "--json")[1])["address"]
    assert "alice" in out
    assert address in out
    code, out, _ = run(capsys, "account", "list")
    assert code == 0
    assert "alice" in out


def test_wrong_password(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    new(capsys, "alice")
    monkeypatch.setenv("VISDM_PASSWORD", "not-it")
    code, out, err = run(capsys, "account", "export-public", "alice")
    assert code == 3
    assert "wrong password for account 'alice'" in one_line_error(err)
    assert out == ""


def test_unknown_account(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new(capsys, "alice")
    code, _, err = run(capsys, "account", "show", "carol")
    assert code == 3
    line = one_line_error(err)
    assert "no account named 'carol'" in line
    assert "accounts there: alice" in line
    assert "visdm account new NAME" in line


def test_duplicate_name(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new(capsys, "alice")
    code, _, err = run(capsys, "account", "new", "alice", *FAST)
    assert code == 3
    assert "already exists" in one_line_error(err)


def test_bad_name(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "account", "new", "bad/name", *FAST)
    assert code == 2
    assert "account name 'bad/name' is not valid" in one_line_error(err)
    assert not (home / "keystore").exists()


def test_bad_scrypt_cost(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "account", "new", "alice", "--scrypt-n", "1000")
    assert code == 2
    assert "scrypt n=1000" in one_line_error(err)


def test_corrupt_keystore(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    created = new(capsys, "alice")
    new(capsys, "bob")
    Path(created["path"]).write_text("{not json")
    # the list shows the good accounts and names the bad file
    code, out, err = run(capsys, "account", "list", "--json")
    assert code == 0
    assert [a["name"] for a in json.loads(out)] == ["bob"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: keystore {created['path']} is")
    # acting as "the only account" is ambiguous while a keystore cannot be read
    code, _, err = run(capsys, "account", "export-public", "alice")
    assert code == 3 and created["path"] in one_line_error(err)
    code, _, err = run(capsys, "whoami")
    assert code == 2
    assert "several accounts exist (bob, alice (unusable:" in one_line_error(err)


def test_password_is_never_a_flag(home: Path) -> None:
    # Through the sub-app: a usage error is click's business, not the account group's.
    result = CliRunner().invoke(account_cli.app, ["new", "alice", "--password", "x", *FAST])
    assert result.exit_code == 2
    assert "--password" in result.output
    assert not (home / "keystore").exists()


def test_password_prompt_mismatch_writes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISDM_PASSWORD")
    answers = iter(["first", "second"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    code, _, err = run(capsys, "account", "new", "alice", *FAST)
    assert code == 2
    assert "passwords differ" in one_line_error(err)
    assert not (home / "keystore" / "alice.json").exists()


def test_password_prompt(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISDM_PASSWORD")
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return "typed-password"

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    code, _, err = run(capsys, "account", "new", "alice", *FAST)
    assert code == 0, err
    assert len(prompts) == 2  # asked twice when creating
    code, _, err = run(capsys, "account", "export-public", "alice")
    assert code == 0, err
    assert len(prompts) == 3


def test_import_from_environment(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISDM_PRIVATE_KEY", ANVIL_0_KEY)
    imported = run_json(capsys, "account", "import", "dev0", *FAST)
    assert imported["address"] == ANVIL_0_ADDRESS
    assert run_json(capsys, "account", "export-public", "dev0")["address"] == ANVIL_0_ADDRESS
    code, _, err = run(capsys, "account", "import", "again", *FAST)
    assert code == 3
    assert "already stored as account 'dev0'" in one_line_error(err)


def test_import_without_a_key(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def closed_stdin(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr(getpass, "getpass", closed_stdin)
    code, _, err = run(capsys, "account", "import", "dev0", *FAST)
    assert code == 2
    assert "VISDM_PRIVATE_KEY" in one_line_error(err)


def test_sub_app_runs_on_its_own(home: Path) -> None:
    # The group works without the root app too (settings come from the environment).
    result = CliRunner().invoke(account_cli.app, ["new", "solo", *FAST, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == str(home / "keystore" / "solo.json")
