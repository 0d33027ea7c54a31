"""A provider drops a folder on the page: its files are staged on this machine
(:mod:`._staging`), then added as an asset by the same ``asset add`` the path form runs.

- ``POST /provider/uploads`` (the session's CSRF token, an unlocked local account) opens a
  staged folder and answers its id and limits;
- ``PUT /provider/uploads/{id}/files?path=shirts/001.png`` sends one file, raw, with its
  ``Content-Length`` and the ``X-CSRF-Token`` header; the answer names the file and its kind,
  or refuses it in one line and keeps nothing of it;
- ``POST /provider/uploads/{id}/discard`` removes a staged folder.

The add and check forms take the id (field ``upload``) in place of a folder path.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from visdm.errors import InvalidInputError

from . import _forms
from ._app import acting, current_session, session_settings, unlocked
from ._auth import SessionError
from ._staging import (
    MAX_FILE_BYTES,
    MAX_STAGED_BYTES,
    MAX_STAGED_FILES,
    check_relative_path,
    discard,
    new_staged_folder,
    receive_file,
    staged_folder,
)

__all__ = ["router"]

router = APIRouter()


@router.post("/provider/uploads")
async def open_upload(request: Request) -> Response:
    session, form = await acting(request)
    unlocked(session)  # staging is for adding an asset, which the local account signs
    name = _forms.optional_text(form, "name") or "dropped folder"
    folder = new_staged_folder(session_settings(request, session), session.staged, name)
    return JSONResponse(
        {
            "upload": folder.upload_id,
            "maxFileBytes": MAX_FILE_BYTES,
            "maxFiles": MAX_STAGED_FILES,
            "maxBytes": MAX_STAGED_BYTES,
        }
    )


@router.put("/provider/uploads/{upload_id}/files")
async def put_file(request: Request, upload_id: str, path: str = "") -> Response:
    session = current_session(request)
    if session is None:
        raise SessionError("sending a file needs a session: nothing was stored")
    session.check_csrf(request.headers.get("x-csrf-token"))
    unlocked(session)
    folder = staged_folder(session.staged, upload_id)
    relative = check_relative_path(path)
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise InvalidInputError(
            f"{relative.as_posix()}: the request must say its length (Content-Length): nothing "
            "was stored"
        )
    kind = await receive_file(folder, relative, int(length), request.stream())
    return JSONResponse(
        {"path": relative.as_posix(), "kind": kind, "files": folder.files, "bytes": folder.bytes}
    )


@router.post("/provider/uploads/{upload_id}/discard")
async def discard_upload(request: Request, upload_id: str) -> Response:
    session, _ = await acting(request)
    discard(session.staged, upload_id)
    return JSONResponse({"discarded": upload_id})
