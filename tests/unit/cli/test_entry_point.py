"""The CLI's entry point: whatever goes wrong, one line on standard error and an exit status
from ``docs/errors.md`` — never a traceback (unless ``VISDM_DEBUG`` asks for one)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import visdm.assets
import visdm.session
from visdm.accounts import MIN_SCRYPT_N, create_account
from visdm.cli import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OS_ERROR,
    main,
    os_error_message,
)
from visdm.config import Settings
from visdm.errors import InvalidInputError

pytestmark = pytest.mark.unit


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    monkeypatch.setenv("VISDM_HOME", str(root))
    monkeypatch.setenv("VISDM_PASSWORD", "pw")
    monkeypatch.setenv("VISDM_ACCOUNT", "alice")
    monkeypatch.delenv("VISDM_DEBUG", raising=False)
    monkeypatch.delenv("VISDM_RPC_URL", raising=False)
    create_account(Settings(home=root).keystore_dir, "alice", "pw", scrypt_n=MIN_SCRYPT_N)
    return root


def test_a_refused_file_operation_is_one_line_naming_the_path(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a path through a regular file: refused by the OS whoever runs the test (root included)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("precious")
    code, out, err = run(capsys, "data", "fashion-mnist", str(blocker / "fm"), "--count", "2")
    assert (code, out) == (EXIT_OS_ERROR, "")
    line = one_line(err)
    assert str(blocker / "fm") in line and "Not a directory" in line and "check the path" in line
    assert blocker.read_text() == "precious"
    # a data directory there: the same, before any keystore is written
    code, _, err = run(capsys, "--home", str(blocker / "h"), "account", "new", "bob")
    assert code == EXIT_OS_ERROR and str(blocker / "h") in one_line(err)


@pytest.mark.parametrize(
    ("number", "says"),
    [
        (errno.EROFS, "read-only: choose a writable place"),
        (errno.ENOSPC, "free some disk space"),
        (errno.EACCES, "check the path's permissions"),
        (errno.EIO, "check the path, the permissions and the free space"),
    ],
)
def test_each_kind_of_refusal_says_what_to_do(number: int, says: str) -> None:
    message = os_error_message(OSError(number, "refused", "/data/visdm"))
    assert message.startswith("the system refused a file operation on /data/visdm: refused; ")
    assert says in message
    # the write that fills the disk names no file: the line still says what to do
    assert "free some disk space" in os_error_message(OSError(errno.ENOSPC, "No space left"))


def test_ctrl_c_anywhere_exits_130_with_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(visdm.session, "whoami", interrupted)
    code, out, err = run(capsys, "whoami")
    assert (code, out) == (EXIT_INTERRUPTED, "")
    assert one_line(err).startswith("error: interrupted: the command stopped where it was")


def test_a_command_that_reports_its_interruption_is_not_repeated(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(visdm.assets, "add_asset", interrupted)
    code, _, err = run(capsys, "asset", "add", str(tmp_path))
    assert code == EXIT_INTERRUPTED
    assert one_line(err) == (
        "error: interrupted: nothing was registered and the samples stored so far were unpinned"
    )


def test_a_bug_is_one_line_and_a_traceback_only_when_asked(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise TypeError("unsupported operand")

    monkeypatch.setattr(visdm.session, "whoami", broken)
    code, _, err = run(capsys, "whoami")
    assert code == EXIT_INTERNAL
    line = one_line(err)
    assert "internal error (TypeError: unsupported operand)" in line and "VISDM_DEBUG=1" in line
    monkeypatch.setenv("VISDM_DEBUG", "1")
    with pytest.raises(TypeError, match="unsupported operand"):
        main(["whoami"])


def test_a_message_is_printed_as_data_on_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rich markup in a file name is not interpreted, a line break in it cannot split the
    line."""

    def refused(*_args: object) -> None:
        raise InvalidInputError("cannot read [bold]evil[/bold]\nerror: forged")

    monkeypatch.setattr(visdm.session, "whoami", refused)
    code, _, err = run(capsys, "whoami")
    assert code == InvalidInputError.exit_code
    assert one_line(err) == "error: cannot read [bold]evil[/bold]\\nerror: forged"
