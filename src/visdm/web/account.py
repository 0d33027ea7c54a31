"""The Account page: choose and unlock a local keystore account for this session, register it
on chain (``visdm register``), see what the chain knows of it (``visdm whoami``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from visdm.errors import VisdmError
from visdm.jsonsafe import one_line

from . import _forms
from ._app import acting, current_session, redirect, render, session_settings, state, unlocked

__all__ = ["router"]

router = APIRouter()


@router.get("/account")
def account_page(request: Request) -> Response:
    from visdm.accounts import scan_accounts
    from visdm.session import whoami

    web = state(request)
    session = current_session(request)
    accounts, unusable = scan_accounts(web.settings.keystore_dir)
    record, error = None, None
    if session is not None and session.unlocked is not None:
        try:
            record = whoami(
                session_settings(request, session),
                session.unlocked.address,
                session.unlocked.x25519_public,
            )
        except VisdmError as exc:
            error = one_line(str(exc))
    return render(
        request,
        "account.html",
        title="Account",
        accounts=accounts,
        unusable=unusable,
        record=record,
        error=error,
    )


@router.post("/account/unlock")
async def unlock(request: Request) -> Response:
    """Open a keystore with its password for this session only (the password is not kept)."""
    from visdm.accounts import load_account

    session, form = await acting(request)
    name = _forms.text(form, "account", what="account")
    password = _forms.text(form, "password", what="password")
    web = state(request)
    account = await run_in_threadpool(load_account, web.settings.keystore_dir, name, password)
    session.unlocked = account
    session.account_name = account.name
    session.wallet = None
    return redirect(session, "/account", f"{account.name} ({account.address}) is unlocked")


@router.post("/account/lock")
async def lock(request: Request) -> Response:
    session, _ = await acting(request)
    session.unlocked = None
    session.wallet = None
    return redirect(session, "/account", "locked: this session holds no key any more")


@router.post("/account/register")
async def register(request: Request) -> Response:
    """Register the unlocked account with the roles ticked (``visdm register --role``)."""
    from visdm.session import register as register_on_chain
    from visdm.types import Role

    session, form = await acting(request)
    account = unlocked(session)
    roles = Role.parse(",".join(_forms.texts(form, "role")) or "none")
    record, tx = await run_in_threadpool(
        register_on_chain,
        session_settings(request, session),
        account.local_account,
        roles,
        account.x25519_public,
    )
    sent = f" (gas {tx.gas_used:,})" if tx is not None else " (nothing to send)"
    return redirect(session, "/account", f"registered as {', '.join(record.roles.names())}{sent}")
