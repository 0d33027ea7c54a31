"""Browser-wallet mode: an injected EIP-1193 wallet (found with EIP-6963) signs what the server
prepares; the server never sees its key.

1. ``POST /wallet/challenge`` returns EIP-712 typed data naming this session's random nonce
   and the chain; the wallet signs it with ``eth_signTypedData_v4``; ``POST /wallet/connect``
   recovers the signer, and the session acts as that address from then on. A signature for
   another session's nonce, or a replayed one, does not verify.
2. Every action the wallet signs is a loop of steps (:mod:`.wallet_steps`):
   ``POST /wallet/prepare/{action}`` reads the chain and answers the next transaction (dry-run
   from the wallet's address first: a revert comes back as its one-line reason before the
   wallet is asked), typed data to sign, or done; ``POST /wallet/sent`` waits for each
   transaction's receipt.
"""

from __future__ import annotations

import secrets
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from visdm.errors import InvalidInputError, SignatureError

from . import _forms
from ._app import acting, session_settings

__all__ = ["CHALLENGE_TYPES", "challenge", "router"]

router = APIRouter()

#: the EIP-712 types of the session challenge a wallet signs to connect
CHALLENGE_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "Connect": [
        {"name": "statement", "type": "string"},
        {"name": "nonce", "type": "string"},
    ],
}
_STATEMENT = "Let this ViSDM web session prepare transactions for me to sign"
_NONCE_KEY = "wallet_nonce"


def challenge(chain_id: int, nonce: str) -> dict[str, Any]:
    """The typed data a wallet signs to connect to the session holding ``nonce``."""
    return {
        "types": CHALLENGE_TYPES,
        "primaryType": "Connect",
        "domain": {"name": "ViSDM web", "version": "1", "chainId": chain_id},
        "message": {"statement": _STATEMENT, "nonce": nonce},
    }


def _chain_id(request: Request) -> int:
    from visdm.session import connect

    return connect(session_settings(request)).chain_id


@router.post("/wallet/challenge")
async def wallet_challenge(request: Request) -> Response:
    session, _ = await acting(request)
    nonce = secrets.token_urlsafe(24)
    session.pending[_NONCE_KEY] = nonce
    chain_id = await run_in_threadpool(_chain_id, request)
    return JSONResponse(challenge(chain_id, nonce))


@router.post("/wallet/connect")
async def wallet_connect(request: Request) -> Response:
    """Recover the address that signed this session's challenge; the session acts as it."""
    session, form = await acting(request)
    claimed = _forms.text(form, "address", what="wallet address")
    signature = _forms.text(form, "signature", what="signature")
    nonce = session.pending.pop(_NONCE_KEY, None)
    if nonce is None:
        raise InvalidInputError("no wallet challenge is open for this session: connect again")
    chain_id = await run_in_threadpool(_chain_id, request)
    try:
        signer = Account.recover_message(
            encode_typed_data(full_message=challenge(chain_id, nonce)), signature=signature
        )
        wanted = to_checksum_address(claimed)
    except (ValueError, TypeError) as exc:
        raise SignatureError(
            f"the wallet's signature cannot be read ({exc}): connect again"
        ) from None
    if signer != wanted:
        raise SignatureError(
            f"the challenge was signed by {signer}, not by {wanted}: connect again with the "
            "account the wallet shows"
        )
    session.wallet = signer
    session.unlocked = None  # one signer per session: the wallet replaces a local key
    return JSONResponse({"address": signer})


# the actions a wallet signs, step by step (imported last: they share this router)
from .wallet_steps import router as _steps  # noqa: E402

router.include_router(_steps)
