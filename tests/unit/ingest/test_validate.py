"""validate_directory: every bad file and label row is reported; the good files go on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from visdm.errors import InvalidInputError, NoValidSamplesError
from visdm.ingest import IngestReport, validate_directory

from ._files import image_bytes, png_with_header_size

pytestmark = pytest.mark.unit


def _write(root: Path, files: dict[str, bytes], labels: str | None) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if labels is not None:
        (root / "labels.csv").write_text(labels, encoding="utf-8")


def _reasons(report: IngestReport) -> dict[str, str]:
    return {r.name: r.reason for r in report.rejected}


def test_a_mixed_directory(tmp_path: Path) -> None:
    files = {
        "b.png": image_bytes("PNG", seed=1),
        "a.jpg": image_bytes("JPEG", seed=2),
        "sub/c.webp": image_bytes("WEBP", seed=3),
        "sub/d.bmp": image_bytes("BMP", seed=4),
        "other/b.png": image_bytes("PNG", seed=5),  # same base name, other folder: fine
        "anim.gif": image_bytes("GIF"),
        "notes.txt": b"not an image",
        "trunc.png": image_bytes("PNG", size=(64, 64))[:300],
        "bomb.png": png_with_header_size(9000, 9000),
        "nolabel.png": image_bytes("PNG", seed=6),
        "copy.png": image_bytes("PNG", seed=1),  # same bytes as b.png
        "badlabel.png": image_bytes("PNG", seed=7),
    }
    labels = "\n".join(
        [
            "filename,label",
            "b.png,Shirt",
            "a.jpg, Bag ",
            "sub/c.webp,Shirt",
            "sub/d.bmp,Coat",
            "other/b.png,Coat",
            "anim.gif,Bag",
            "notes.txt,Bag",
            "trunc.png,Bag",
            "bomb.png,Bag",
            "copy.png,Shirt",
            "badlabel.png,Hat",
            "missing.png,Bag",
            "x.png,Bag,extra",
            "",
        ]
    )
    _write(tmp_path, files, labels)
    report = validate_directory(tmp_path, label_set=["Bag", "Coat", "Shirt"])
    assert [(s.index, s.name, s.label, s.format) for s in report.accepted] == [
        (0, "a.jpg", "Bag", "JPEG"),
        (1, "b.png", "Shirt", "PNG"),
        (2, "other/b.png", "Coat", "PNG"),
        (3, "sub/c.webp", "Shirt", "WEBP"),
        (4, "sub/d.bmp", "Coat", "BMP"),
    ]
    reasons = _reasons(report)
    assert set(reasons) == {
        "anim.gif",
        "notes.txt",
        "trunc.png",
        "bomb.png",
        "nolabel.png",
        "copy.png",
        "badlabel.png",
    }
    assert reasons["anim.gif"].startswith("GIF files are not accepted")
    assert reasons["notes.txt"] == "not an image Pillow can identify"
    assert reasons["trunc.png"].startswith("corrupt or truncated PNG")
    assert "over the 40000000-pixel limit" in reasons["bomb.png"]
    assert reasons["nolabel.png"].startswith("no label")
    assert reasons["copy.png"] == "same bytes as b.png"
    assert reasons["badlabel.png"] == "label 'Hat' is not in the label set ['Bag', 'Coat', 'Shirt']"
    problems = {p.line: p.reason for p in report.label_problems}
    assert problems == {
        13: "missing.png: no such file in the directory",
        14: "expected 2 fields (filename,label), got 3: ['x.png', 'Bag', 'extra']",
    }
    sample = report.accepted[1]
    assert sample.path == tmp_path / "b.png" and len(sample.sha256) == 32
    assert (sample.width, sample.height, sample.byte_size) == (12, 10, len(files["b.png"]))
    assert report.labels == ("Bag", "Coat", "Shirt") and not report.labels_inferred
    assert "rejected notes.txt: not an image" in report.summary()
    assert "labels.csv line 13: missing.png" in report.summary()


def test_label_set_is_inferred_when_not_given(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"a.png": image_bytes("PNG", seed=1), "b.png": image_bytes("PNG", seed=2)},
        "filename,label\na.png,Zebra\nb.png,Ant\n",
    )
    report = validate_directory(tmp_path)
    assert report.labels == ("Ant", "Zebra") and report.labels_inferred


def test_case_insensitive_name_collisions_refuse_all(tmp_path: Path) -> None:
    files = {
        "A.png": image_bytes("PNG", seed=1),
        "a.png": image_bytes("PNG", seed=2),
        "ok.png": image_bytes("PNG", seed=3),
    }
    try:
        _write(tmp_path, files, "filename,label\nA.png,x\na.png,y\nok.png,z\n")
    except OSError:
        pytest.skip("case-insensitive file system")  # pragma: no cover
    if len(list(tmp_path.glob("*.png"))) < 3:
        pytest.skip("case-insensitive file system")  # pragma: no cover
    reasons = _reasons(validate_directory(tmp_path))
    assert reasons == {
        "A.png": "name differs only in letter case from a.png",
        "a.png": "name differs only in letter case from A.png",
    }


def test_hidden_files_and_symlinks_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(image_bytes("PNG", seed=9))
    root = tmp_path / "asset"
    _write(
        root,
        {
            ".secret.png": image_bytes("PNG", seed=1),
            ".git/x.png": image_bytes("PNG", seed=2),
            "ok.png": image_bytes("PNG", seed=3),
        },
        "filename,label\nok.png,a\nlink.png,a\n.secret.png,a\n",
    )
    os.symlink(outside, root / "link.png")
    reasons = _reasons(validate_directory(root))
    assert reasons == {
        ".secret.png": "hidden file or folder (name starts with '.')",
        ".git": "hidden file or folder (name starts with '.')",
        "link.png": "symbolic link (not followed)",
    }


def test_bad_label_rows_are_reported_by_line(tmp_path: Path) -> None:
    files = {f"{c}.png": image_bytes("PNG", seed=i) for i, c in enumerate("abcdefg")}
    labels = "\n".join(
        [
            "Filename, Label",  # header: case and spaces do not matter
            "a.png,",  # empty label
            ",x",  # empty name
            "../b.png,x",  # escapes
            "/c.png,x",  # absolute
            "d.png," + "L" * 65,  # too long
            "e.png,bad\tlabel",  # control character
            "f.png,one",
            "f.png,two",  # conflict
            "g.png,same",
            "g.png,same",  # repeated, same label: fine
            "A.PNG,x",  # wrong case
            '"unterminated,x',
        ]
    )
    _write(tmp_path, files, labels)
    report = validate_directory(tmp_path)
    problems = {p.line: p.reason for p in report.label_problems}
    assert problems[2] == "a.png: empty label"
    assert problems[3] == "empty file name"
    assert problems[4] == "'../b.png': use a relative path with '/' inside the directory"
    assert problems[5] == "'/c.png': use a relative path with '/' inside the directory"
    assert problems[6] == "d.png: label is 65 characters, over 64"
    assert problems[7] == "e.png: label 'bad\\tlabel' contains control characters"
    assert problems[9] == "f.png: label 'two' conflicts with 'one' on line 8"
    assert problems[12] == "A.PNG: no such file in the directory (did you mean a.png?)"
    assert problems[13].startswith("not a CSV row")
    assert set(problems) == {2, 3, 4, 5, 6, 7, 9, 12, 13}
    reasons = _reasons(report)
    assert reasons["f.png"] == "conflicting labels on lines 8 and 9 of labels.csv"
    assert [s.name for s in report.accepted] == ["g.png"]
    assert set(reasons) == {"a.png", "b.png", "c.png", "d.png", "e.png", "f.png"}


def test_no_valid_file_raises_with_the_report(tmp_path: Path) -> None:
    _write(tmp_path, {"a.txt": b"text", "b.png": b""}, "filename,label\na.txt,x\nb.png,x\n")
    with pytest.raises(
        NoValidSamplesError, match=r"no valid sample in .*: all 2 file\(s\) were rejected"
    ) as info:
        validate_directory(tmp_path)
    report = info.value.report  # type: ignore[attr-defined]
    assert {r.name: r.reason for r in report.rejected} == {
        "a.txt": "not an image Pillow can identify",
        "b.png": "empty file",
    }
    message = str(info.value)
    assert "\n" not in message  # one line; the report holds every problem
    assert "(first: a.txt: not an image Pillow can identify)" in message
    assert "rejected b.png: empty file" in report.summary()


def test_an_empty_directory_raises(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("filename,label\n")
    with pytest.raises(NoValidSamplesError, match="all 0 file"):
        validate_directory(tmp_path)


def test_labels_file_problems_are_errors(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(image_bytes("PNG"))
    with pytest.raises(InvalidInputError, match=r"labels file .*labels\.csv does not exist"):
        validate_directory(tmp_path)
    (tmp_path / "labels.csv").write_bytes(b"filename,label\na.png,caf\xe9\n")
    with pytest.raises(InvalidInputError, match=r"labels\.csv is not UTF-8 \(byte 24\)"):
        validate_directory(tmp_path)
    (tmp_path / "labels.csv").write_text("a.png,Bag\n")
    with pytest.raises(InvalidInputError, match="line 1: expected the header 'filename,label'"):
        validate_directory(tmp_path)
    (tmp_path / "labels.csv").write_text("\n\n")
    with pytest.raises(InvalidInputError, match=r"labels\.csv is empty"):
        validate_directory(tmp_path)
    with pytest.raises(InvalidInputError, match="is not a directory"):
        validate_directory(tmp_path / "a.png")


def test_labels_file_elsewhere_and_with_bom(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _write(root, {"a.png": image_bytes("PNG")}, None)
    csv_path = tmp_path / "my-labels.csv"
    csv_path.write_bytes("\ufefffilename,label\na.png,Ünïcode label\n".encode())
    report = validate_directory(root, labels_file=csv_path)
    assert report.accepted[0].label == "Ünïcode label"


def test_label_set_argument_is_checked(tmp_path: Path) -> None:
    _write(tmp_path, {"a.png": image_bytes("PNG")}, "filename,label\na.png,x\n")
    with pytest.raises(InvalidInputError, match="not one string"):
        validate_directory(tmp_path, label_set="x")
    with pytest.raises(InvalidInputError, match="label set is empty"):
        validate_directory(tmp_path, label_set=[])
    with pytest.raises(InvalidInputError, match="label set entry '  ': empty label"):
        validate_directory(tmp_path, label_set=["x", "  "])


def test_one_spelling_per_label(tmp_path: Path) -> None:
    """``cat``/``Cat`` and composed/decomposed ``café`` would be silent extra classes."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    files = {f"{i}.png": image_bytes("PNG", seed=10 + i) for i in range(6)}
    rows = ["0.png,cat", "1.png,cat", "2.png,Cat", f"3.png,{composed}", f"4.png,{decomposed}"]
    _write(tmp_path, files, "filename,label\n" + "\n".join([*rows, "5.png,dog"]) + "\n")
    report = validate_directory(tmp_path)
    # the decomposed form is the same text as the composed one: one class, stored in NFC
    assert report.labels == (composed, "cat", "dog")
    assert {s.name: s.label for s in report.accepted}["4.png"] == composed
    # the minority spelling is refused with the spelling to use, by line
    reason = _reasons(report)["2.png"]
    assert "label 'Cat' differs only in letter case from 'cat', used by 2 rows" in reason
    assert "line 4" in reason
    assert "labels.csv line 4: 2.png: label 'Cat' differs only" in report.summary()


def test_a_label_set_in_two_letter_cases_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, {"a.png": image_bytes("PNG")}, "filename,label\na.png,cat\n")
    with pytest.raises(InvalidInputError, match=r"several letter cases \(\['Cat', 'cat'\]\)"):
        validate_directory(tmp_path, label_set=["cat", "Cat", "dog"])
