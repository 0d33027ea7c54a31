"""How validation reports: every file and every labels row that cannot be used says why, even
when other files are accepted; entries that are not regular files are refused unread."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from visdm.errors import InvalidInputError
from visdm.ingest import IngestReport, validate_directory

from ._files import image_bytes

pytestmark = pytest.mark.unit


def _folder(root: Path, names: list[str], labels: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        (root / name).write_bytes(image_bytes("PNG", seed=seed))
    (root / "labels.csv").write_text("\n".join(["filename,label", *labels]) + "\n")
    return root


def _reasons(report: IngestReport) -> dict[str, str]:
    return {r.name: r.reason for r in report.rejected}


def test_a_file_whose_row_is_unusable_names_that_row_not_no_label(tmp_path: Path) -> None:
    root = _folder(
        tmp_path / "a",
        ["good.png", "ctrl.png", "long.png", "extra.png", "empty.png", "none.png"],
        [
            "good.png,cat",
            "ctrl.png,ca\x07t",
            "long.png," + "x" * 65,
            "extra.png,cat,dog",
            "empty.png,",
        ],
    )
    report = validate_directory(root)
    assert [s.name for s in report.accepted] == ["good.png"]
    reasons = _reasons(report)
    assert reasons["ctrl.png"] == (
        "its row on line 3 of labels.csv is unusable: label 'ca\\x07t' contains control characters"
    )
    assert reasons["long.png"] == (
        "its row on line 4 of labels.csv is unusable: label is 65 characters, over 64"
    )
    assert reasons["extra.png"].startswith(
        "its row on line 5 of labels.csv is unusable: expected 2 fields"
    )
    assert reasons["empty.png"] == "its row on line 6 of labels.csv is unusable: empty label"
    assert reasons["none.png"] == "no label: add a row for it to the labels file"
    assert not report.complete
    assert report.counts() == "1 accepted, 5 rejected, 4 unusable row(s) in labels.csv"


def test_a_usable_row_for_the_same_file_wins_over_an_unusable_one(tmp_path: Path) -> None:
    root = _folder(tmp_path / "a", ["a.png"], ["a.png,", "a.png,cat"])
    report = validate_directory(root)
    assert [(s.name, s.label) for s in report.accepted] == [("a.png", "cat")]
    assert [(p.line, p.reason) for p in report.label_problems] == [(2, "a.png: empty label")]
    assert report.first_problem() == "labels.csv line 2: a.png: empty label"


def test_rows_naming_missing_files_are_problems_of_the_report(tmp_path: Path) -> None:
    root = _folder(tmp_path / "a", ["a.png"], ["a.png,cat", "gone.png,cat", "sub/x.png,dog"])
    report = validate_directory(root)
    assert len(report.accepted) == 1 and not report.rejected
    assert [p.reason for p in report.label_problems] == [
        "gone.png: no such file in the directory",
        "sub/x.png: no such file in the directory",
    ]
    assert not report.complete
    assert "labels.csv line 3: gone.png: no such file" in report.summary()


def test_fifos_and_sockets_are_refused_unread(tmp_path: Path) -> None:
    root = _folder(tmp_path / "a", ["a.png"], ["a.png,cat", "pipe.png,cat", "sock.png,cat"])
    os.mkfifo(root / "pipe.png")  # reading it would block validation forever
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(root / "sock.png"))
        report = validate_directory(root)
    finally:
        server.close()
    assert _reasons(report) == {
        "pipe.png": "not a regular file (a FIFO): it was not read",
        "sock.png": "not a regular file (a socket): it was not read",
    }
    # their rows name files that exist: no "no such file" on top of the refusal
    assert report.label_problems == ()
    assert [s.name for s in report.accepted] == ["a.png"]


def test_a_row_naming_a_symlink_is_not_called_missing(tmp_path: Path) -> None:
    root = _folder(tmp_path / "a", ["a.png"], ["a.png,cat", "link.png,cat"])
    os.symlink(root / "a.png", root / "link.png")
    report = validate_directory(root)
    assert _reasons(report) == {"link.png": "symbolic link (not followed)"}
    assert report.label_problems == ()


def test_a_folder_that_cannot_be_listed_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _folder(tmp_path / "a", ["a.png"], ["a.png,cat"])
    (root / "locked").mkdir()
    real = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path).name == "locked":  # root can read any folder: fail it as a user would
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = validate_directory(root)
    assert _reasons(report) == {
        "locked": "folder cannot be listed (Permission denied): nothing in it is read"
    }
    monkeypatch.setattr(
        os, "scandir", lambda path: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
    )
    with pytest.raises(InvalidInputError, match=r"cannot list the directory .*: Permission denied"):
        validate_directory(root)


def test_a_complete_report(tmp_path: Path) -> None:
    report = validate_directory(_folder(tmp_path / "a", ["a.png", "b.png"], ["a.png,x", "b.png,y"]))
    assert report.complete and report.first_problem() is None


def test_names_that_cannot_be_printed_on_one_line_are_refused_escaped(tmp_path: Path) -> None:
    root = _folder(tmp_path / "a", ["a.png"], ["a.png,cat"])
    (root / "new\nline.png").write_bytes(image_bytes("PNG", seed=7))
    try:
        with open(os.path.join(os.fsencode(root), b"\xff\xfe.png"), "wb") as handle:
            handle.write(image_bytes("PNG", seed=8))
    except OSError:  # pragma: no cover - a file system that insists on UTF-8 names
        pytest.skip("the file system refuses names that are not UTF-8")
    report = validate_directory(root)
    reason = "name has control characters or is not UTF-8 (shown escaped): rename it"
    assert _reasons(report) == {"new\\nline.png": reason, "\\xff\\xfe.png": reason}
    assert all("\n" not in line for line in report.summary().splitlines()[1:])
    assert len(report.summary().splitlines()) == 3
