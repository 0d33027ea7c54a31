"""Validate a provider's directory of images and its ``labels.csv`` before anything leaves it.

Design section 3.2 step 1: every file is checked *before* upload, every bad file is reported
by name with the reason, and the good ones go on. The rules, decided here:

**Files.** The directory is walked recursively in sorted order; symbolic links are refused
(they could point outside it) and not followed; FIFOs, sockets and devices are refused unread
(reading a FIFO would block), and so is a folder that cannot be listed. A file's identity is
its path relative to the directory, with ``/`` separators (``shirts/001.png``). Refused, each
with its reason: hidden files and files in hidden folders (a name starting with ``.``); paths
that collide when compared case-insensitively (``A.png`` and ``a.png`` — the same file on
macOS and Windows, so which one was meant is ambiguous; *all* of them are refused); empty,
oversized, corrupt, truncated, animated or bomb images and disallowed formats (see
:func:`decode_image`); files without a valid label; a file whose bytes are identical to an
earlier accepted file (the copy is refused, naming the first); and names with control
characters or bytes that are not UTF-8, which no labels row can name and no report line can
print (shown escaped, ``new\\nline.png``). The same base name in different folders is fine.

**Labels.** ``labels.csv`` (UTF-8, optional BOM) starts with the header ``filename,label``;
every other non-blank line is ``relative/path,label`` (CSV quoting allowed, no line breaks
inside a field). A label is 1–64 characters after trimming, without control characters. A row
that cannot be used is reported with its line number (wrong field count, empty name or label,
a path with ``..`` or a leading ``/``, no such file, a conflicting second label for the same
file); the file it meant is then refused, and its reason names that line. The label *set* is
either given (``label_set=``; a label outside it refuses the file) or inferred as the labels of
the accepted files (reported in :attr:`IngestReport.labels`).

Accepted samples are numbered in path order; that number is the sample index bound into the
encryption (see :func:`~visdm.ingest.prepare_asset`).
"""

from __future__ import annotations

import csv
import hashlib
import os
import stat
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from visdm.errors import InvalidImageError, InvalidInputError, NoValidSamplesError
from visdm.labels import label_key, nfc

from ._decode import DEFAULT_LIMITS, ImageLimits, decode_image

__all__ = [
    "LABELS_FILE",
    "MAX_LABEL_CHARS",
    "AcceptedSample",
    "IngestReport",
    "LabelProblem",
    "RejectedFile",
    "validate_directory",
]

#: the labels file looked for in the directory when none is named
LABELS_FILE = "labels.csv"
#: longest label, in characters
MAX_LABEL_CHARS = 64
_MAX_CSV_BYTES = 64 * 1024 * 1024
_HEADER = ("filename", "label")


@dataclass(frozen=True, slots=True)
class AcceptedSample:
    """A file that passed validation, in sample-index order."""

    index: int
    name: str
    path: Path
    label: str
    format: str
    width: int
    height: int
    mode: str
    byte_size: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class RejectedFile:
    """A file that will not be uploaded, and why."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class LabelProblem:
    """A ``labels.csv`` line that could not be used."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class IngestReport:
    """The outcome of validating a directory: what goes on, and what does not and why."""

    root: Path
    labels_file: Path
    accepted: tuple[AcceptedSample, ...]
    rejected: tuple[RejectedFile, ...]
    label_problems: tuple[LabelProblem, ...]
    #: the label set used: the one given, or the labels of the accepted files (sorted)
    labels: tuple[str, ...]
    labels_inferred: bool

    @property
    def complete(self) -> bool:
        """True when every file was accepted and every ``labels.csv`` row could be used."""
        return not self.rejected and not self.label_problems

    def counts(self) -> str:
        """One line: how many files were accepted and rejected, and rows unusable."""
        return (
            f"{len(self.accepted)} accepted, {len(self.rejected)} rejected, "
            f"{len(self.label_problems)} unusable row(s) in {self.labels_file.name}"
        )

    def first_problem(self) -> str | None:
        """The first rejected file or unusable row as one short phrase (``None`` if none)."""
        if self.rejected:
            return f"{self.rejected[0].name}: {self.rejected[0].reason}"
        if self.label_problems:
            problem = self.label_problems[0]
            return f"{self.labels_file.name} line {problem.line}: {problem.reason}"
        return None

    def summary(self) -> str:
        """A few lines for people: counts, then every problem."""
        lines = [f"{self.root}: {self.counts()}"]
        lines += [f"  rejected {r.name}: {r.reason}" for r in self.rejected]
        lines += [
            f"  {self.labels_file.name} line {p.line}: {p.reason}" for p in self.label_problems
        ]
        return "\n".join(lines)


def validate_directory(
    root: str | os.PathLike[str],
    *,
    labels_file: str | os.PathLike[str] | None = None,
    label_set: Collection[str] | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> IngestReport:
    """Validate every file under ``root`` against ``labels_file`` (default
    ``root/labels.csv``); see the module docstring for the rules.

    Raises :class:`~visdm.errors.NoValidSamplesError` (with the report as ``.report``) when no
    file is accepted, and :class:`~visdm.errors.InvalidInputError` when ``root`` is not a
    directory or the labels file is missing, not UTF-8, too large or lacks its header.
    """
    base = Path(root)
    if not base.is_dir():
        raise InvalidInputError(f"{base} is not a directory")
    csv_path = Path(labels_file) if labels_file is not None else base / LABELS_FILE
    allowed = _check_label_set(label_set)
    files, rejected = _walk(base, skip=csv_path)
    # a row naming a file refused for its own reason (a link, a FIFO) is not "no such file"
    rows, problems = _read_labels(csv_path, known={*files, *(r.name for r in rejected)})
    accepted: list[AcceptedSample] = []
    first_by_digest: dict[bytes, str] = {}
    for name in sorted(files):
        reason = _label_reason(name, rows, allowed)
        if reason is None:
            path = files[name]
            try:
                data = path.read_bytes()
                decoded = decode_image(data, name=name, limits=limits)
            except InvalidImageError as exc:
                reason = str(exc).removeprefix(f"{name}: ")
            except OSError as exc:
                reason = f"cannot read: {exc.strerror or exc}"
            else:
                digest = hashlib.sha256(data).digest()
                if digest in first_by_digest:
                    reason = f"same bytes as {first_by_digest[digest]}"
                else:
                    first_by_digest[digest] = name
                    decoded.image.close()
                    accepted.append(
                        AcceptedSample(
                            index=len(accepted),
                            name=name,
                            path=path,
                            label=rows[name].label,
                            format=decoded.format,
                            width=decoded.width,
                            height=decoded.height,
                            mode=decoded.mode,
                            byte_size=decoded.byte_size,
                            sha256=digest,
                        )
                    )
                    continue
        rejected.append(RejectedFile(name, reason))
    labels = allowed if allowed is not None else tuple(sorted({s.label for s in accepted}))
    report = IngestReport(
        root=base,
        labels_file=csv_path,
        accepted=tuple(accepted),
        rejected=tuple(sorted(rejected, key=lambda r: r.name)),
        label_problems=tuple(problems),
        labels=labels,
        labels_inferred=allowed is None,
    )
    if not accepted:
        first = report.first_problem()
        error = NoValidSamplesError(
            f"no valid sample in {base}: all {len(report.rejected)} file(s) were rejected"
            + (f" (first: {first})" if first else "")
            + "; fix the files or their rows in the labels file (`visdm asset add --check` "
            "lists every problem)"
        )
        error.report = report  # type: ignore[attr-defined]
        raise error
    return report


def _check_label_set(label_set: Collection[str] | None) -> tuple[str, ...] | None:
    if label_set is None:
        return None
    if isinstance(label_set, str):
        raise InvalidInputError("label_set must be a collection of labels, not one string")
    labels = []
    for label in label_set:
        problem = _label_problem(label)
        if problem:
            raise InvalidInputError(f"label set entry {label!r}: {problem}")
        labels.append(nfc(label))
    spellings: dict[str, set[str]] = {}
    for label in labels:
        spellings.setdefault(label_key(label), set()).add(label)
    clashes = sorted(sorted(forms) for forms in spellings.values() if len(forms) > 1)
    if clashes:
        raise InvalidInputError(
            f"label set spells a label in several letter cases ({clashes[0]}): write one spelling"
        )
    if not labels:
        raise InvalidInputError("label set is empty: give at least one label, or None to infer")
    return tuple(sorted(set(labels)))


# --- the files ------------------------------------------------------------------------------
def _walk(base: Path, *, skip: Path) -> tuple[dict[str, Path], list[RejectedFile]]:
    files: dict[str, Path] = {}
    rejected: list[RejectedFile] = []
    skip_resolved = skip.resolve() if skip.exists() else None
    for rel, path, refusal in _entries(base, PurePosixPath()):
        name = rel.as_posix()
        if (
            skip_resolved is not None
            and refusal is None
            and path.name == skip.name
            and path.resolve() == skip_resolved
        ):
            continue
        shown = _shown(name)
        if shown != name:  # a report line must stay one line, and labels.csv cannot name it
            rejected.append(
                RejectedFile(
                    shown,
                    refusal
                    or "name has control characters or is not UTF-8 (shown escaped): rename it",
                )
            )
        elif refusal is not None:
            rejected.append(RejectedFile(name, refusal))
        elif any(part.startswith(".") for part in rel.parts):
            rejected.append(RejectedFile(name, "hidden file or folder (name starts with '.')"))
        else:
            files[name] = path
    groups: dict[str, list[str]] = {}
    for name in files:
        groups.setdefault(unicodedata.normalize("NFC", name).casefold(), []).append(name)
    for names in groups.values():
        if len(names) > 1:
            for name in names:
                others = ", ".join(n for n in names if n != name)
                rejected.append(
                    RejectedFile(name, f"name differs only in letter case from {others}")
                )
                del files[name]
    return files, rejected


def _entries(folder: Path, rel: PurePosixPath) -> Iterator[tuple[PurePosixPath, Path, str | None]]:
    """Every entry under ``folder``: its relative name, its path, and why it is refused
    outright (``None`` for a regular file, and for a hidden folder, left to the caller)."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as exc:
        if not rel.parts:
            raise InvalidInputError(
                f"cannot list the directory {folder}: {exc.strerror or exc}"
            ) from None
        yield rel, folder, f"folder cannot be listed ({exc.strerror or exc}): nothing in it is read"
        return
    for entry in entries:
        path = Path(entry.path)
        child = rel / entry.name
        try:
            if entry.is_symlink():
                yield child, path, "symbolic link (not followed)"
            elif entry.is_dir(follow_symlinks=False):
                if entry.name.startswith("."):
                    yield child, path, None
                    continue
                yield from _entries(path, child)
            elif entry.is_file(follow_symlinks=False):
                yield child, path, None
            else:
                kind = _special_kind(entry.stat(follow_symlinks=False).st_mode)
                yield child, path, f"not a regular file ({kind}): it was not read"
        except OSError as exc:  # vanished or unreadable while walking
            yield child, path, f"cannot read: {exc.strerror or exc}"


def _shown(name: str) -> str:
    """``name`` as it can be printed on one line: bytes that are not UTF-8 (kept by the file
    system decoder as lone surrogates) and control characters escaped, the rest unchanged."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c).startswith("C") else c
        for c in text
    )


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "an unknown kind of file"


# --- the labels -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Row:
    label: str
    line: int
    problem: str | None = None


def _read_labels(
    path: str | os.PathLike[str], *, known: Collection[str] | None = None
) -> tuple[dict[str, _Row], list[LabelProblem]]:
    """Read ``labels.csv``: ``{relative name: row}`` and the unusable lines.

    ``known`` (the file names found) lets a row naming no file be reported. A file named by
    two rows with different labels maps to a row whose ``problem`` says so.
    """
    csv_path = Path(path)
    text = _read_text(csv_path)
    rows: dict[str, _Row] = {}
    problems: list[LabelProblem] = []
    header_seen = False
    folded = {n.casefold(): n for n in known} if known is not None else {}
    unusable: dict[str, _Row] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            if not header_seen:
                raise InvalidInputError(f"{csv_path} line {number}: {exc}") from None
            problems.append(LabelProblem(number, f"not a CSV row ({exc})"))
            continue
        if not header_seen:
            if tuple(f.strip().casefold() for f in fields) != _HEADER:
                raise InvalidInputError(
                    f"{csv_path} line {number}: expected the header 'filename,label', got "
                    f"{line[:80]!r}"
                )
            header_seen = True
            continue
        problem = _row_problem(fields, known, folded)
        if problem is not None:
            problems.append(LabelProblem(number, problem))
            named = _clean_name(fields[0]) if fields and fields[0].strip() else ""
            if named and named not in unusable:  # its file's reason cites this line
                detail = problem.removeprefix(f"{named}: ")
                unusable[named] = _Row(
                    "", number, f"its row on line {number} of {csv_path.name} is unusable: {detail}"
                )
            continue
        name, label = _clean_name(fields[0]), nfc(fields[1])
        previous = rows.get(name)
        if previous is None:
            rows[name] = _Row(label, number)
        elif previous.label != label:
            problems.append(
                LabelProblem(
                    number,
                    f"{name}: label {label!r} conflicts with {previous.label!r} on line "
                    f"{previous.line}",
                )
            )
            rows[name] = _Row(
                previous.label,
                previous.line,
                f"conflicting labels on lines {previous.line} and {number} of {csv_path.name}",
            )
    if not header_seen:
        raise InvalidInputError(
            f"labels file {csv_path} is empty: it needs the header 'filename,label' and a row "
            "per image"
        )
    _one_spelling_per_label(rows, problems, csv_path.name)
    for name, row in unusable.items():  # a usable row for the same file wins
        rows.setdefault(name, row)
    return rows, problems


def _one_spelling_per_label(rows: dict[str, _Row], problems: list[LabelProblem], csv: str) -> None:
    """Keep one spelling of each label: ``cat`` and ``Cat``, or ``café`` composed and
    decomposed, would otherwise become different classes without a word.

    Canonically equivalent forms are the same text, so every label is stored in NFC. Spellings
    that differ only in letter case are the writer's mistake: the most used one is kept (the
    first in sorted order on a tie) and rows with another are unusable, saying which to use.
    """
    usage: dict[str, dict[str, int]] = {}
    for name, row in rows.items():
        if row.problem is None:
            label = nfc(row.label)
            rows[name] = _Row(label, row.line)
            counts = usage.setdefault(label_key(label), {})
            counts[label] = counts.get(label, 0) + 1
    keep = {
        key: min(counts, key=lambda spelling: (-counts[spelling], spelling))
        for key, counts in usage.items()
        if len(counts) > 1
    }
    for name, row in rows.items():
        chosen = keep.get(label_key(row.label)) if row.problem is None else None
        if chosen is not None and row.label != chosen:
            reason = (
                f"label {row.label!r} differs only in letter case from {chosen!r}, used by "
                f"{usage[label_key(chosen)][chosen]} rows: write one spelling"
            )
            problems.append(LabelProblem(row.line, f"{name}: {reason}"))
            rows[name] = _Row(row.label, row.line, f"its row on line {row.line} of {csv}: {reason}")


def _read_text(csv_path: Path) -> str:
    if not csv_path.is_file():
        raise InvalidInputError(
            f"labels file {csv_path} does not exist: write 'filename,label' rows for every image"
        )
    raw = csv_path.read_bytes()
    if len(raw) > _MAX_CSV_BYTES:
        raise InvalidInputError(f"labels file {csv_path} is over {_MAX_CSV_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"labels file {csv_path} is not UTF-8 (byte {exc.start}): save it as UTF-8"
        ) from None


def _clean_name(text: str) -> str:
    return PurePosixPath(text.strip()).as_posix()


def _row_problem(
    fields: list[str], known: Collection[str] | None, folded: dict[str, str]
) -> str | None:
    if len(fields) != 2:
        return f"expected 2 fields (filename,label), got {len(fields)}: {fields!r}"
    raw_name, label = fields[0].strip(), fields[1]
    if not raw_name:
        return "empty file name"
    name = _clean_name(raw_name)
    if "\\" in raw_name or raw_name.startswith("/") or ".." in PurePosixPath(name).parts:
        return f"{raw_name!r}: use a relative path with '/' inside the directory"
    problem = _label_problem(label)
    if problem:
        return f"{name}: {problem}"
    if known is not None and name not in known:
        hint = folded.get(name.casefold())
        return f"{name}: no such file in the directory" + (
            f" (did you mean {hint}?)" if hint else ""
        )
    return None


def _label_problem(label: object) -> str | None:
    if not isinstance(label, str):
        return f"label must be text, got {type(label).__name__}"
    text = label.strip()
    if not text:
        return "empty label"
    if len(text) > MAX_LABEL_CHARS:
        return f"label is {len(text)} characters, over {MAX_LABEL_CHARS}"
    if any(unicodedata.category(c).startswith("C") for c in text):
        return f"label {text!r} contains control characters"
    return None


def _label_reason(name: str, rows: dict[str, _Row], allowed: tuple[str, ...] | None) -> str | None:
    row = rows.get(name)
    if row is None:
        return "no label: add a row for it to the labels file"
    if row.problem is not None:
        return row.problem
    if allowed is not None and row.label not in allowed:
        return f"label {row.label!r} is not in the label set {list(allowed)}"
    return None
