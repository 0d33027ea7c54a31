"""Browser-wallet mode: an injected EIP-1193 wallet (found with EIP-6963) signs what the server
prepares; the server never sees its key.

1. ``POST /wallet/challenge`` returns EIP-712 typed data naming this session's random nonce
   and the chain; the wallet signs it with ``eth_signTypedData_v4``; ``POST /wallet/connect``
   recovers the signer, and the session acts as that address from then on. A signature for
   another session's nonce, or a replayed one, does not verify.
2. ``POST /wallet/prepare/vote`` checks the vote as the market would (a dry-run call from the
   wallet's address: a revert comes back as its one-line reason before the wallet is asked)
   and returns the unsigned transaction; the wallet sends it with ``eth_sendTransaction``;
   ``POST /wallet/sent`` waits for the receipt and reports it.
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

from visdm.errors import InvalidInputError, SignatureError, TransactionFailedError

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
_GAS_HEADROOM = 2
_GAS_MARGIN = 50_000
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


def _prepared(
    request: Request, sender: str, contract_name: str, fn_name: str, args: list[Any]
) -> dict[str, Any]:
    """An unsigned call of ``fn_name`` on the deployment's ``contract_name`` from ``sender``,
    dry-run first so that a revert is reported before the wallet is asked."""
    from visdm.session import connect_deployed

    conn = connect_deployed(session_settings(request))
    address = conn.deployment.address_of(contract_name)
    contract = conn.client.contract(address, contract_name)
    fn = contract.functions[fn_name](*args)
    conn.client.call(fn, action=fn_name, sender=sender)
    gas = conn.client.rpc(lambda: fn.estimate_gas({"from": to_checksum_address(sender)}))
    return {
        "from": to_checksum_address(sender),
        "to": str(address),
        "data": contract.encode_abi(fn_name, args=args),
        "chainId": hex(conn.client.chain_id),
        # unused gas is not charged: room for what an estimate misses (refunds are paid after
        # execution, so clearing a delegation needs more gas than it finally costs)
        "gas": hex(int(gas * _GAS_HEADROOM) + _GAS_MARGIN),
        "value": "0x0",
    }


def _wallet_of(session: Any) -> str:
    if session.wallet is None:
        raise InvalidInputError("no browser wallet is connected to this session: connect one")
    return str(session.wallet)


@router.post("/wallet/prepare/vote")
async def prepare_vote(request: Request) -> Response:
    """The unsigned ``vote`` transaction for the connected wallet to sign and send."""
    from visdm.market import workflow

    session, form = await acting(request)
    sender = _wallet_of(session)
    pid = _forms.whole(form, "proposal", minimum=1)
    choice = _forms.text(form, "vote").lower()
    if choice in ("accept", "reject"):
        ask = workflow.parse_ask(choice)
    elif choice == "ask":
        ask = _forms.tokens(form, "ask")
    else:
        raise InvalidInputError(f"the field 'vote' must be accept, reject or ask, got {choice!r}")
    tx = await run_in_threadpool(_prepared, request, sender, "TrainingMarket", "vote", [pid, ask])
    session.pending["sent_to"] = f"/proposals/{pid}"
    return JSONResponse(tx)


@router.post("/wallet/prepare/delegate")
async def prepare_delegate(request: Request) -> Response:
    """The unsigned ``delegate`` (or, with no ``to``, ``undelegate``) transaction."""
    from visdm.governance import resolve_account

    session, form = await acting(request)
    sender = _wallet_of(session)
    to = _forms.optional_text(form, "to")
    if to is None:
        args: list[Any] = []
        name = "undelegate"
    else:
        args = [resolve_account(session_settings(request), to, what="delegate")]
        name = "delegate"
    tx = await run_in_threadpool(_prepared, request, sender, "DelegationRegistry", name, args)
    session.pending["sent_to"] = "/provider"
    return JSONResponse(tx)


@router.post("/wallet/sent")
async def sent(request: Request) -> Response:
    """Wait for a transaction the wallet sent and report it."""
    session, form = await acting(request)
    tx_hash = _forms.text(form, "hash", what="transaction hash")
    if not (tx_hash.startswith("0x") and len(tx_hash) == 66):
        raise InvalidInputError(
            f"the field 'hash' must be a transaction hash, got {tx_hash[:70]!r}"
        )

    def wait() -> Any:
        from visdm.session import connect

        client = connect(session_settings(request))
        return client.rpc(
            lambda: client.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=client.tx_timeout_s)  # type: ignore[arg-type]
        )

    receipt = await run_in_threadpool(wait)
    if int(receipt["status"]) != 1:
        raise TransactionFailedError(
            f"the wallet's transaction {tx_hash} reverted: nothing changed"
        )
    back = str(session.pending.pop("sent_to", "/"))
    session.flashes.append(
        f"the wallet's transaction {tx_hash} was mined (gas {receipt['gasUsed']:,})"
    )
    return JSONResponse({"next": back})
