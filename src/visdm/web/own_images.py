"""The owner's view of its own images: ``/provider/assets/{id}/images`` and its thumbnails.

Served only to a session whose unlocked local account owns the asset on chain; every
thumbnail request checks that again, is sent with ``Cache-Control: no-store`` and is never
put inline in a page (no ``data:`` image travels in HTML). What is read and how is in
:mod:`._own_samples`. Every address part and query field is parsed here first, so a malformed
or path-like value is one line of refusal before a session, the chain or a file is looked at.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from visdm.accounts import UnlockedAccount
from visdm.errors import InvalidInputError

from . import _forms
from ._app import current_session, render, session_settings
from ._auth import SessionError, WebSession
from ._own_samples import MAX_PER_PAGE, PER_PAGE, own_images, own_thumbnail

__all__ = ["router"]

router = APIRouter()

#: the most digits an id in the address may have (a uint256 has 78)
_MAX_DIGITS = 78


def _number(text: str, what: str) -> int:
    """A whole number from the address: ASCII digits only, so ``..``, ``/`` or ``%2f`` are
    refused by name instead of reaching anything that knows paths."""
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS):
        raise InvalidInputError(
            f"the {what} in the address must be a whole number, got {text[:40]!r}: open the "
            "page from the asset's link"
        )
    return int(text)


def _owner_session(request: Request) -> tuple[WebSession, UnlockedAccount]:
    """The session and its unlocked local account; a refusal that says what to do when there
    is none (the images open only with the owner's own key, held by a local account)."""
    session = current_session(request)
    if session is None:
        raise SessionError(
            "your images are shown only to a session: open the URL `visdm web` printed, then "
            "unlock the account that owns the asset on the Account page"
        )
    if session.unlocked is None:
        if session.wallet is not None:
            raise SessionError(
                f"a browser wallet ({session.wallet}) cannot open your images: they are "
                "decrypted with the encryption key of the local account that added the asset, "
                "which a wallet never holds; unlock that account's keystore on the Account page"
            )
        raise SessionError(
            "no account is unlocked in this session: unlock the account that owns the asset "
            "on the Account page to see its images"
        )
    return session, session.unlocked


@router.get("/provider/assets/{asset_id:path}/images")
def images_page(request: Request, asset_id: str) -> Response:
    """One page of the asset's samples: thumbnail, file name, label, public metadata."""
    wanted = _number(asset_id, "asset id")
    query = request.query_params
    page = _forms.integer(query, "page", minimum=1, required=False) or 1
    per_page = _forms.integer(query, "per_page", minimum=1, required=False) or PER_PAGE
    if per_page > MAX_PER_PAGE:
        raise InvalidInputError(
            f"the field 'per_page' must be at most {MAX_PER_PAGE}, got {per_page}"
        )
    session, account = _owner_session(request)
    view = own_images(
        session_settings(request, session), account, wanted, page=page, per_page=per_page
    )
    return render(request, "own_images.html", title=f"My images of asset {wanted}", view=view)


@router.get("/provider/assets/{asset_id:path}/images/{index:path}")
def thumbnail(request: Request, asset_id: str, index: str) -> Response:
    """Sample ``index`` downscaled to a small JPEG, for the asset's owner only."""
    wanted = _number(asset_id, "asset id")
    sample = _number(index, "sample index")
    session, account = _owner_session(request)
    data = own_thumbnail(session_settings(request, session), account, wanted, sample)
    return Response(
        data,
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store", "Content-Disposition": "inline"},
    )
