"""A folder dropped on the provider's page, staged on this machine for ``asset add``.

The browser sends the dropped folder one file per request (``PUT``, the path inside the folder
in the query); each file is checked before its bytes are kept, so a refused file leaves nothing
behind, and a file arrives whole or not at all (written beside its name, then renamed):

- its path: relative, ``/``-separated, at most :data:`MAX_DEPTH` folders deep, no empty, ``.``
  or ``..`` part, no backslash or control character, no part over 255 bytes;
- its size: declared up front (``Content-Length``) and at most the ingest's largest sample
  file; the folder as a whole at most :data:`MAX_STAGED_FILES` files and
  :data:`MAX_STAGED_BYTES` bytes, and the disk keeps :data:`DISK_RESERVE` bytes free;
- its kind, from its first bytes: a PNG, JPEG, WebP or BMP image (the containers the ingest
  accepts), or the folder's ``labels.csv``. Everything else the ingest checks again, fully,
  when the asset is added, and reports file by file.

Staged folders live under the data directory (``web/staging/<pid>``, mode 0700) and belong to
the session that made them: another session's id is refused as unknown. The folder is removed
once its asset is added, when the session discards it, and when the app starts again (sessions
do not survive a restart).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from visdm.config import Settings
from visdm.errors import InvalidInputError, VisdmError
from visdm.ingest import ImageLimits

__all__ = [
    "DISK_RESERVE",
    "MAX_FILE_BYTES",
    "MAX_STAGED_BYTES",
    "MAX_STAGED_FILES",
    "UPLOAD_PATH_PREFIX",
    "StagedFolder",
    "check_relative_path",
    "clear_staging",
    "discard",
    "new_staged_folder",
    "receive_file",
    "staged_folder",
]

#: the path files are PUT under: the one route whose bodies may be larger than a form's
UPLOAD_PATH_PREFIX = "/provider/uploads/"
#: the largest file a staged folder takes: the ingest's largest sample file
MAX_FILE_BYTES = ImageLimits().max_file_bytes
MAX_STAGED_FILES = 100_000
MAX_STAGED_BYTES = 16 * 1024**3
#: bytes the disk keeps free whatever is staged
DISK_RESERVE = 512 * 1024**2
#: staged folders one session may hold at once
MAX_FOLDERS_PER_SESSION = 4
MAX_DEPTH = 8
LABELS_FILE = "labels.csv"


class _UploadTooLargeError(VisdmError):
    """A staged file or folder over its limit (the web app's alone: the CLI never stages)."""

    status_code = 413


class _UnknownUploadError(InvalidInputError):
    """A staged folder this session does not hold."""

    status_code = 404


@dataclass
class StagedFolder:
    """One dropped folder being staged: where its files go and what has arrived."""

    upload_id: str
    path: Path
    #: the dropped folder's own name, as the page shows it
    name: str = "dropped folder"
    files: int = 0
    bytes: int = 0
    #: an ``asset add`` of this folder is running: it may neither grow nor go
    busy: bool = False


def staging_root(settings: Settings) -> Path:
    """This process's staged folders (another ``visdm web`` on the data directory has its own)."""
    return Path(settings.home) / "web" / "staging" / str(os.getpid())


def clear_staging(settings: Settings) -> None:
    """Remove the staged folders of this process and of processes that ended (at start: the
    sessions that made them are gone)."""
    for folder in staging_root(settings).parent.glob("*"):
        if folder.name.isdigit() and (
            int(folder.name) == os.getpid() or not _alive(int(folder.name))
        ):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_staged_folder(
    settings: Settings, held: dict[str, StagedFolder], name: str = "dropped folder"
) -> StagedFolder:
    """A new, empty staged folder for the session holding ``held``."""
    if len(held) >= MAX_FOLDERS_PER_SESSION:
        raise InvalidInputError(
            f"this session already stages {len(held)} folders, the most it may: add or discard "
            "one first"
        )
    root = staging_root(settings)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for private in (root.parent, root):
        private.chmod(0o700)
    upload_id = secrets.token_urlsafe(16)
    path = root / upload_id
    path.mkdir(mode=0o700)
    shown = "".join(c for c in name[:80] if not unicodedata.category(c).startswith("C"))
    folder = StagedFolder(upload_id, path, name=shown or "dropped folder")
    held[upload_id] = folder
    return folder


def staged_folder(held: dict[str, StagedFolder], upload_id: str) -> StagedFolder:
    """The session's staged folder ``upload_id``; another session's is unknown here."""
    folder = held.get(upload_id)
    if folder is None or not folder.path.is_dir():
        raise _UnknownUploadError(
            f"no staged folder {upload_id[:40]!r} in this session: drop the folder again"
        )
    return folder


def discard(held: dict[str, StagedFolder], upload_id: str) -> None:
    """Remove the session's staged folder ``upload_id`` and everything in it."""
    folder = staged_folder(held, upload_id)
    if folder.busy:
        raise InvalidInputError(
            "the staged folder is being added as an asset: wait for the result, then discard it"
        )
    del held[upload_id]
    shutil.rmtree(folder.path, ignore_errors=True)


def check_relative_path(text: str) -> PurePosixPath:
    """``text`` as a safe path inside a staged folder, or a refusal naming what is wrong."""
    shown = text[:120].encode("unicode_escape").decode("ascii")
    if not text:
        raise InvalidInputError("the file's path inside the folder is empty")
    if (
        "\\" in text
        or text.startswith("/")
        or any(unicodedata.category(c).startswith("C") for c in text)
    ):
        raise InvalidInputError(
            f"the path {shown!r} must be relative, with '/' between folders and no control "
            "characters: nothing was stored"
        )
    parts = text.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(
            f"the path {shown!r} has an empty, '.' or '..' part: nothing was stored"
        )
    if len(parts) > MAX_DEPTH + 1 or any(len(p.encode()) > 255 for p in parts):
        raise InvalidInputError(
            f"the path {shown!r} is more than {MAX_DEPTH} folders deep or has a name over 255 "
            "bytes: nothing was stored"
        )
    return PurePosixPath(*parts)


def _kind(first: bytes, name: str) -> str | None:
    """The accepted kind of a file from its first bytes (``None``: not accepted)."""
    if name == LABELS_FILE:
        return "labels"
    if first.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if first.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if first[:4] == b"RIFF" and first[8:12] == b"WEBP":
        return "WebP"
    if first.startswith(b"BM"):
        return "BMP"
    return None


def check_room(folder: StagedFolder, declared: int) -> None:
    """Refuse a file of ``declared`` bytes before reading it, if it cannot fit."""
    if declared > MAX_FILE_BYTES:
        raise _UploadTooLargeError(
            f"the file is {declared:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit of a "
            "sample file: nothing was stored"
        )
    if folder.files >= MAX_STAGED_FILES:
        raise _UploadTooLargeError(
            f"the folder already has {folder.files:,} files, the most one asset takes here"
        )
    if folder.bytes + declared > MAX_STAGED_BYTES:
        raise _UploadTooLargeError(
            f"the folder would pass {MAX_STAGED_BYTES:,} bytes: add what is staged, then the rest "
            "as another asset"
        )
    free = shutil.disk_usage(folder.path).free
    if free - declared < DISK_RESERVE:
        raise _UploadTooLargeError(
            f"the disk has {free:,} bytes free: storing {declared:,} more would leave less than "
            f"{DISK_RESERVE:,}; free some space first"
        )


async def receive_file(
    folder: StagedFolder, relative: PurePosixPath, declared: int, body: AsyncIterator[bytes]
) -> str:
    """Write one file of ``declared`` bytes from ``body`` into ``folder``; returns its kind.
    The file appears only once it has arrived whole and been accepted."""
    name = relative.as_posix()
    if folder.busy:
        raise InvalidInputError(
            f"{name}: the staged folder is being added as an asset: wait for the result"
        )
    target = folder.path.joinpath(*relative.parts)
    if target.exists():
        raise InvalidInputError(f"{name}: already in the staged folder: nothing was stored")
    check_room(folder, declared)
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except (FileExistsError, NotADirectoryError):
        raise InvalidInputError(
            f"{name}: a file in the staged folder has the name of one of its folders: nothing "
            "was stored"
        ) from None
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    got, kind = 0, None
    try:
        with partial.open("xb") as out:
            async for chunk in body:
                if kind is None and chunk:
                    kind = _kind(chunk[:16], relative.name)
                    if kind is None:
                        raise InvalidInputError(
                            f"{name}: not a PNG, JPEG, WebP or BMP image (by its first bytes) "
                            f"nor the folder's {LABELS_FILE}: nothing was stored"
                        )
                got += len(chunk)
                if got > declared:
                    raise _UploadTooLargeError(
                        f"{name}: more bytes arrived than the {declared:,} declared: nothing "
                        "was stored"
                    )
                out.write(chunk)
        if got != declared:
            raise InvalidInputError(
                f"{name}: {got:,} of the {declared:,} declared bytes arrived: nothing was stored"
            )
        if kind is None:
            raise InvalidInputError(f"{name}: the file is empty: nothing was stored")
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    folder.files += 1
    folder.bytes += got
    return kind
