"""The provider's pages: my assets (``asset list/show/add/withdraw``), the proposals that select
my samples with vote and delegation (``vote``, ``delegate``, ``undelegate``), and earnings
with claim (``market earnings``, ``claim``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import one_line

from . import _forms
from ._app import acting, current_session, redirect, render, session_settings, state, unlocked
from ._auth import WebSession

__all__ = ["router"]

router = APIRouter()


def _me(session: WebSession | None) -> str | None:
    if session is None:
        return None
    if session.unlocked is not None:
        return str(session.unlocked.address)
    return session.wallet


def _part(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    try:
        return fn(*args, **kwargs), None
    except VisdmError as exc:
        return None, one_line(str(exc))


@router.get("/provider")
def provider_page(request: Request) -> Response:
    from visdm.assets import list_assets
    from visdm.index import earnings_index

    from ._reads import delegate_of, proposals_selecting
    from .public import sync_now

    session = current_session(request)
    me = _me(session)
    cfg = session_settings(request, session)
    web = state(request)
    context: dict[str, Any] = {"me": me}
    if me is not None:
        sync_now(request)
        context["assets"], context["assets_error"] = _part(list_assets, cfg, owner=me)
        context["delegate"], context["delegate_error"] = _part(delegate_of, cfg, me)
        context["proposals"], context["proposals_error"] = _part(
            proposals_selecting, cfg, me, delegate=context["delegate"], url=web.index_url
        )
        earned, context["earnings_error"] = _part(
            earnings_index, cfg, provider=me, url=web.index_url
        )
        context["earnings"] = earned[0] if earned else None
    return render(request, "provider.html", title="Provider", **context)


@router.get("/provider/assets/{asset_id}")
def asset_page(request: Request, asset_id: int) -> Response:
    from visdm.assets import show_asset

    session = current_session(request)
    view = show_asset(session_settings(request), asset_id, samples=50)
    owner = str(view.owner).lower()
    return render(
        request,
        "asset.html",
        title=f"Asset {asset_id}",
        asset=view,
        # the link to the owner's images only for the owner's unlocked account; a wallet of the
        # owner is told which key opens them
        mine=session is not None
        and session.unlocked is not None
        and str(session.unlocked.address).lower() == owner,
        owner_wallet=session is not None
        and session.unlocked is None
        and (session.wallet or "").lower() == owner,
    )


def _asset_args(form: Any, session: WebSession) -> dict[str, Any]:
    from visdm.assets import load_licence

    from ._staging import staged_folder

    upload = _forms.optional_text(form, "upload")
    if upload is not None:  # a folder dropped on the page and staged on this machine
        directory = staged_folder(session.staged, upload).path
    else:
        directory = Path(_forms.text(form, "directory", what="folder"))
    labels = _forms.optional_text(form, "labels")
    dp = _forms.optional_text(form, "dp") or "required"
    if dp not in ("required", "optional"):
        raise InvalidInputError(f"the field 'dp' must be required or optional, got {dp[:20]!r}")
    return {
        "directory": directory,
        "labels_file": Path(labels) if labels else None,
        "regions": _forms.csv_list(_forms.optional_text(form, "regions")) or ["local"],
        "nodes": _forms.csv_list(_forms.optional_text(form, "nodes")),
        "licence": load_licence(
            None, dp_required=dp == "required", max_epsilon=_forms.number(form, "max_epsilon")
        ),
        "partial": _forms.boolean(form, "partial"),
        "again": _forms.boolean(form, "again"),
    }


@router.post("/provider/assets/check")
async def check(request: Request) -> Response:
    """``asset add --check``: every problem add would find; nothing changes."""
    from visdm.assets import check_asset

    session, form = await acting(request)
    args = _asset_args(form, session)
    directory = args.pop("directory")
    result = await run_in_threadpool(
        check_asset, session_settings(request, session), directory, owner=_me(session), **args
    )
    return render(request, "asset_check.html", title="Asset check", check=result)


@router.post("/provider/assets/add")
async def add(request: Request) -> Response:
    """``asset add``: validate, encrypt, store, sign and register a folder of images, in the
    background; the page that answers shows its progress until the result."""
    from visdm.assets import check_licence

    from ._staging import discard
    from ._uploads import start_add

    session, form = await acting(request)
    args = _asset_args(form, session)
    check_licence(args["licence"])
    owner = unlocked(session)
    directory = args.pop("directory")
    upload = _forms.optional_text(form, "upload")
    staged = session.staged.get(upload) if upload is not None else None
    if staged is not None and staged.busy:
        raise InvalidInputError("the dropped folder is being added already: wait for the result")

    def finished(added: bool) -> None:
        if staged is not None:  # added: its bytes are in the store, encrypted; else: fix, retry
            staged.busy = False
            if added:
                discard(session.staged, staged.upload_id)

    if staged is not None:
        staged.busy = True
    try:
        job = start_add(
            session.uploads,
            session_settings(request, session),
            owner,
            directory,
            args,
            on_finished=finished,
        )
    except BaseException:
        finished(False)
        raise
    if staged is not None:
        job.directory = f"{staged.name} ({staged.files} files dropped on the page)"
    return render(request, "asset_job.html", title="Adding an asset", job=job)


@router.get("/provider/assets/jobs/{job_id}")
def add_job(request: Request, job_id: str) -> Response:
    """An asset being added: its progress, then what ``asset add`` would print (the whole
    page without htmx, the part that changes with it)."""
    session = current_session(request)
    job = session.uploads.get(job_id) if session is not None else None
    if job is None:  # another session's job is as unknown as a made-up one
        raise InvalidInputError(
            f"no asset is being added under {job_id[:40]!r} in this session: add it again"
        )
    if request.headers.get("hx-request"):
        return render(request, "_asset_job.html", job=job)
    return render(request, "asset_job.html", title="Adding an asset", job=job)


@router.post("/provider/assets/{asset_id}/withdraw")
async def withdraw(request: Request, asset_id: int) -> Response:
    from visdm.assets import withdraw_asset

    session, _ = await acting(request)
    status, tx = await run_in_threadpool(
        withdraw_asset, session_settings(request, session), unlocked(session), asset_id
    )
    return redirect(session, "/provider", f"asset {asset_id} is {status} (gas {tx.gas_used:,})")


@router.post("/provider/vote")
async def vote(request: Request) -> Response:
    """``vote ID accept|reject|PRICE``."""
    from visdm.market import workflow

    session, form = await acting(request)
    pid = _forms.whole(form, "proposal", minimum=1)
    choice = _forms.text(form, "vote").lower()
    if choice in ("accept", "reject"):
        ask = workflow.parse_ask(choice)
    elif choice == "ask":
        ask = _forms.tokens(form, "ask")
    else:
        raise InvalidInputError(f"the field 'vote' must be accept, reject or ask, got {choice!r}")
    cfg = session_settings(request, session)
    voter = unlocked(session)
    tx = await run_in_threadpool(workflow.vote, cfg, voter, pid, ask)
    messages = [f"voted {choice} on proposal {pid} (gas {tx.gas_used:,})"]
    try:
        weight = await run_in_threadpool(workflow.voting_weight, cfg, pid, voter.address)
        if warning := weight.warning(pid):
            messages.append(f"warning: {warning}")
    except VisdmError as exc:
        messages.append(f"could not work out this vote's weight: {exc}")
    return redirect(session, f"/proposals/{pid}", *messages)


@router.post("/provider/delegate")
async def delegate(request: Request) -> Response:
    from visdm.governance import resolve_account
    from visdm.market import workflow

    session, form = await acting(request)
    cfg = session_settings(request, session)
    target = resolve_account(cfg, _forms.text(form, "to", what="delegate"), what="delegate")
    tx = await run_in_threadpool(workflow.delegate, cfg, unlocked(session), target)
    return redirect(session, "/provider", f"delegated to {target} (gas {tx.gas_used:,})")


@router.post("/provider/undelegate")
async def undelegate(request: Request) -> Response:
    from visdm.market import workflow

    session, _ = await acting(request)
    tx = await run_in_threadpool(
        workflow.undelegate, session_settings(request, session), unlocked(session)
    )
    return redirect(session, "/provider", f"delegation removed (gas {tx.gas_used:,})")


@router.post("/provider/claim")
async def claim(request: Request) -> Response:
    """``claim``: every completed proposal's payouts in one transaction, then withdraw."""
    from visdm.market import workflow

    from ._app import tokens_text

    session, _ = await acting(request)
    cfg = session_settings(request, session)
    account = unlocked(session)

    def claim_and_withdraw() -> tuple[list[workflow.ClaimReceipt], int]:
        receipts = workflow.claim(cfg, account, None, withdraw_credits=False)
        amount, _tx = workflow.withdraw(cfg, account)
        return receipts, amount

    receipts, amount = await run_in_threadpool(claim_and_withdraw)
    lines = [
        f"proposal {r.proposal_id}: {tokens_text(r.amount)} tokens, {r.note}" for r in receipts
    ]
    return redirect(
        session, "/provider", *lines, f"withdrew {tokens_text(amount)} tokens to your wallet"
    )


# the owner's own images: their routes check the session and the chain on every request
from .own_images import router as _own_images  # noqa: E402 - after this module's routes

router.include_router(_own_images)
