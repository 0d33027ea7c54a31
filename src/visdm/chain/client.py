"""Talking to an EVM node: connection checks, transactions and revert decoding.

:class:`ChainClient` is the one place that sends transactions. It keeps a nonce per sender
(resynchronised from the node's pending count when the node disagrees), estimates gas, waits
for the receipt and turns a revert — at estimation or after mining — into a
:class:`~visdm.errors.ContractRevertError` that names the Solidity error and its arguments, with
a message that says in a sentence what was refused and what to do (:mod:`._explain`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract.contract import Contract, ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import Nonce, RPCEndpoint, TxParams, TxReceipt

from visdm.chain._explain import explain_revert
from visdm.chain.artifacts import error_table, load_artifact
from visdm.errors import (
    ChainNotRunningError,
    ChainTimeoutError,
    ContractRevertError,
    InvalidInputError,
    PanicError,
    RevertReasonError,
    TransactionFailedError,
    WrongChainError,
)
from visdm.types import Address

__all__ = ["ChainClient", "TxResult", "decode_revert"]

T = TypeVar("T")

_ERROR_STRING = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")
#: balance the local dev faucet tops accounts up to, in wei (100 ETH)
_DEV_FUNDS = 100 * 10**18
#: gas limit = estimate × headroom + margin. Unused gas is not charged, and the margin covers
#: storage writes that depend on the block a transaction lands in: a delegation estimated in the
#: second of the previous change overwrites one word, but mined a second later it also archives
#: the previous delegate (two fresh words, ~44k gas).
_GAS_HEADROOM = 1.25
#: below this a padded limit fits a block of any chain we run on, so it is not checked
_SMALLEST_BLOCK_GAS = 15_000_000
_GAS_MARGIN = 60_000


def decode_revert(data: bytes, *, action: str | None = None) -> ContractRevertError:
    """Turn raw revert data into the matching :class:`ContractRevertError`, its message a
    sentence that says what to do (``error_name`` and ``error_args`` keep the raw error)."""
    return _explained(_decode(data, action))


def _explained(error: ContractRevertError) -> ContractRevertError:
    # the one place every revert passes: the sentence replaces the raw form as the message
    error.args = (explain_revert(error),)
    return error


def _decode(data: bytes, action: str | None) -> ContractRevertError:
    selector, payload = data[:4], data[4:]
    try:
        if selector == _ERROR_STRING:
            (reason,) = abi_decode(["string"], payload)
            return RevertReasonError(reason, action=action)
        if selector == _PANIC:
            (code,) = abi_decode(["uint256"], payload)
            return PanicError(code, action=action)
        known = error_table().get(selector)
        if known is None:
            return ContractRevertError("UnknownError", {"data": data}, action=action)
        values = abi_decode(list(known.arg_types), payload)
    except DecodingError:  # a known selector with a payload of another shape
        return ContractRevertError("UnknownError", {"data": data}, action=action)
    args = {
        name: to_checksum_address(v) if kind == "address" else v
        for name, kind, v in zip(known.arg_names, known.arg_types, values, strict=True)
    }
    return ContractRevertError(known.name, args, contract=known.contract, action=action)


def _revert_data(exc: ContractLogicError) -> bytes | None:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


def _mined_revert_data(exc: Web3RPCError) -> bytes | None:
    """The revert data of a transaction that was mined and reverted, when the node says so in
    its answer to the send: Hardhat's node mines it (the nonce is spent) and answers an error
    holding ``txHash`` and the revert ``data``, where anvil answers the hash and a failed
    receipt."""
    error = (exc.rpc_response or {}).get("error")
    data = error.get("data") if isinstance(error, dict) else None
    if not isinstance(data, dict) or not data.get("txHash"):
        return None
    raw = data.get("data")
    if not isinstance(raw, str) or not raw.startswith("0x"):
        return None
    try:
        decoded = bytes.fromhex(raw[2:])
    except ValueError:
        return None
    return decoded if len(decoded) >= 4 else None  # no selector: reported as a plain failure


@dataclass(frozen=True, slots=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    gas_used: int
    receipt: TxReceipt


#: how often a send refused for a nonce ahead of the chain's is tried again (about 2 s)
_OUT_OF_ORDER_RETRIES = 14
#: the next nonce per (endpoint, chain id, sender), shared by every client in the process
_NONCES: dict[tuple[str, int, str], int] = {}
#: nonces handed out and not yet sent, per the same key
_IN_FLIGHT: dict[tuple[str, int, str], int] = {}
_NONCE_LOCK = threading.Lock()


class ChainClient:
    """A connection to one chain, checked on creation."""

    def __init__(
        self,
        rpc_url: str,
        *,
        timeout_s: float = 10.0,
        tx_timeout_s: float = 60.0,
        expected_chain_id: int | None = None,
    ) -> None:
        # web3 checks the chain id before every call and estimate: one eth_chainId per read
        # doubled the requests of read-heavy steps. A client serves one chain (checked below;
        # a chain on another URL gets a new client), so its id is asked once.
        provider = Web3.HTTPProvider(
            rpc_url,
            request_kwargs={"timeout": timeout_s},
            exception_retry_configuration=None,
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
        self.rpc_url = rpc_url
        self.w3 = Web3(provider)
        self.tx_timeout_s = tx_timeout_s
        self.chain_id = self.rpc(lambda: self.w3.eth.chain_id)
        if expected_chain_id is not None and self.chain_id != expected_chain_id:
            raise WrongChainError(
                f"the node at {rpc_url} serves chain id {self.chain_id}, but the deployment is "
                f"for chain id {expected_chain_id}: point --rpc-url at the right chain or deploy "
                "again with `visdm deploy`"
            )

    # --- plumbing --------------------------------------------------------------------------
    def rpc(self, fn: Callable[[], T]) -> T:
        """Run one JSON-RPC interaction, mapping transport failures to ViSDM errors."""
        try:
            return fn()
        except requests.Timeout as exc:
            raise ChainTimeoutError(
                f"the chain at {self.rpc_url} did not answer in time ({exc.__class__.__name__}); "
                "check the node or raise VISDM_RPC_TIMEOUT"
            ) from exc
        except requests.ConnectionError as exc:
            raise ChainNotRunningError(
                f"no chain answers at {self.rpc_url}: start one with `visdm chain up` "
                "or pass --rpc-url"
            ) from exc

    @property
    def is_dev_chain(self) -> bool:
        """True for a local anvil or Hardhat node, the only places the dev faucet works."""
        return self._dev_namespace is not None

    @property
    def _dev_namespace(self) -> str | None:
        # the same dev methods live under each node's own prefix (anvil_setBalance,
        # hardhat_setBalance); Hardhat's node answers "HardhatNetwork/<version>/..."
        version: str = self.rpc(lambda: self.w3.client_version).lower()
        for prefix in ("anvil", "hardhat"):
            if version.startswith(prefix):
                return prefix
        return None

    def balance(self, address: str) -> int:
        return int(self.rpc(lambda: self.w3.eth.get_balance(to_checksum_address(address))))

    def fund_from_dev_faucet(self, address: str, *, minimum: int = _DEV_FUNDS // 10) -> bool:
        """On a local dev chain, top ``address`` up with gas money; False if it had enough."""
        namespace = self._dev_namespace
        if namespace is None:
            return False
        if self.balance(address) >= minimum:
            return False
        self.rpc(
            lambda: self.w3.provider.make_request(
                f"{namespace}_setBalance",  # type: ignore[arg-type]
                [to_checksum_address(address), hex(_DEV_FUNDS)],
            )
        )
        return True

    def latest_timestamp(self) -> int:
        """Timestamp of the latest block (the chain's "now")."""
        return int(self.rpc(lambda: self.w3.eth.get_block("latest"))["timestamp"])

    def advance_time(self, seconds: int) -> int:
        """On a local dev chain, move time forward and mine a block; returns the new "now"."""
        if not self.is_dev_chain:
            raise InvalidInputError(
                f"{self.rpc_url} is not a local dev chain: time cannot be moved"
            )
        self.rpc(lambda: self.w3.provider.make_request("evm_increaseTime", [seconds]))  # type: ignore[arg-type]
        self.rpc(lambda: self.w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
        return self.latest_timestamp()

    def contract(self, address: str, artifact_name: str) -> Contract:
        abi = load_artifact(artifact_name).abi
        return self.w3.eth.contract(address=to_checksum_address(address), abi=abi)

    # --- transactions -------------------------------------------------------------------------
    def _next_nonce(self, sender: str) -> int:
        """The sender's next nonce. One sequence per account and chain in this process,
        whichever client (thread) asks: a node attests in one thread while it trains in
        another. Only nonces handed out and not yet sent can be missing from the chain's
        pending count, so the cache never runs further ahead than those: a chain that lost
        blocks is trusted again as soon as nothing is in flight."""
        key = (self.rpc_url, self.chain_id, sender.lower())
        with _NONCE_LOCK:
            pending = int(self.rpc(lambda: self.w3.eth.get_transaction_count(sender, "pending")))  # type: ignore[arg-type]
            ahead = min(_NONCES.get(key, 0), pending + _IN_FLIGHT.get(key, 0))
            nonce = max(ahead, pending)
            _NONCES[key] = nonce + 1
            _IN_FLIGHT[key] = _IN_FLIGHT.get(key, 0) + 1
            return nonce

    def _sent(self, sender: str) -> None:
        """A nonce handed out was sent (or refused): the chain's count speaks for it now."""
        key = (self.rpc_url, self.chain_id, sender.lower())
        with _NONCE_LOCK:
            left = _IN_FLIGHT.get(key, 0) - 1
            if left > 0:
                _IN_FLIGHT[key] = left
            else:
                _IN_FLIGHT.pop(key, None)

    def reset_nonces(self) -> None:
        """Forget cached nonces (after a chain revert or an external sender used the keys)."""
        with _NONCE_LOCK:
            for key in [k for k in _NONCES if k[:2] == (self.rpc_url, self.chain_id)]:
                del _NONCES[key]

    def _forget_nonce(self, sender: str) -> None:
        with _NONCE_LOCK:
            _NONCES.pop((self.rpc_url, self.chain_id, sender.lower()), None)

    def _send_in_order(self, raw: bytes) -> Any:
        """Send a signed transaction. A node that mines each transaction as it arrives cannot
        queue one whose nonce is ahead of the account's (Hardhat's "Nonce too high"): another
        thread of this process holds the nonce before it and is about to send it, so the
        send is tried again for a moment instead of failing."""
        for attempt in range(_OUT_OF_ORDER_RETRIES):
            try:
                return self.rpc(lambda: self.w3.eth.send_raw_transaction(raw))
            except Web3RPCError as exc:
                if "nonce too high" not in str(exc).lower() or attempt + 1 == _OUT_OF_ORDER_RETRIES:
                    raise
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")  # the loop returns or raises

    def call(
        self,
        fn: ContractFunction,
        *,
        action: str | None = None,
        sender: str | None = None,
        block: str = "latest",
    ) -> Any:
        """A read-only call (as ``sender``, on ``block``); reverts become
        ``ContractRevertError``. A state-changing function called this way is a dry run: it
        says whether the transaction would revert now, and why, without sending it."""
        params: TxParams = {} if sender is None else {"from": to_checksum_address(sender)}
        try:
            return self.rpc(lambda: fn.call(params, block_identifier=block))  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise self._revert(exc, action or fn.fn_name) from exc

    def transact(
        self,
        account: LocalAccount,
        fn: ContractFunction | None = None,
        *,
        tx: TxParams | None = None,
        action: str | None = None,
    ) -> TxResult:
        """Sign and send a contract call (or a raw ``tx``), wait for it, decode any revert."""
        sender = account.address
        label = action or (fn.fn_name if fn is not None else "transaction")
        params: TxParams = dict(tx or {})  # type: ignore[assignment]
        params["from"] = sender
        params["chainId"] = self.chain_id
        try:
            built: TxParams = fn.build_transaction(params) if fn is not None else self._fill(params)
        except ContractLogicError as exc:  # estimation already reverts: nothing was sent
            raise self._revert(exc, label) from exc
        except Web3RPCError as exc:
            raise TransactionFailedError(f"{label} was refused by the node: {exc}") from exc
        if tx is None or "gas" not in tx:
            # the headroom never asks for more than a block holds: a large proposal estimated
            # at 27M gas must still go out on a 30M-gas chain
            estimate = int(built["gas"])
            padded = int(estimate * _GAS_HEADROOM) + _GAS_MARGIN
            if padded > _SMALLEST_BLOCK_GAS:  # rare: only then ask what a block holds
                limit = int(self.rpc(lambda: self.w3.eth.get_block("latest"))["gasLimit"])
                padded = max(estimate, min(padded, limit))
            built["gas"] = padded
        built["nonce"] = Nonce(self._next_nonce(sender))
        try:
            signed = account.sign_transaction(built)  # type: ignore[arg-type]
            tx_hash = self._send_in_order(signed.raw_transaction)
        except Web3RPCError as exc:
            self._forget_nonce(sender)
            reverted = _mined_revert_data(exc)
            if reverted is not None:
                raise decode_revert(reverted, action=label) from exc
            raise TransactionFailedError(f"{label} was refused by the node: {exc}") from exc
        finally:
            self._sent(sender)
        try:
            receipt = self.rpc(
                lambda: self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.tx_timeout_s)
            )
        except TimeExhausted as exc:
            raise ChainTimeoutError(
                f"{label} ({tx_hash.to_0x_hex()}) was not mined within "
                f"{self.tx_timeout_s:.0f} s; it may still be mined later"
            ) from exc
        if receipt["status"] != 1:
            raise self._replay_failure(built, receipt, label)
        return TxResult(
            tx_hash=tx_hash.to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            receipt=receipt,
        )

    def deploy(
        self, account: LocalAccount, artifact_name: str, *args: Any
    ) -> tuple[Address, TxResult]:
        """Deploy ``artifact_name`` with constructor ``args``; return its address."""
        artifact = load_artifact(artifact_name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        constructor = factory.constructor(*args)
        try:
            tx = constructor.build_transaction({"from": account.address, "chainId": self.chain_id})
        except ContractLogicError as exc:
            raise self._revert(exc, f"deploy {artifact_name}") from exc
        result = self.transact(account, tx=tx, action=f"deploy {artifact_name}")
        address = result.receipt["contractAddress"]
        if address is None:
            raise TransactionFailedError(f"deploy {artifact_name}: the receipt has no address")
        return Address(to_checksum_address(address)), result

    def _fill(self, params: TxParams) -> TxParams:
        filled: TxParams = dict(params)  # type: ignore[assignment]
        if "gas" not in filled:
            filled["gas"] = self.rpc(lambda: self.w3.eth.estimate_gas(params))
        if "maxFeePerGas" not in filled and "gasPrice" not in filled:
            base = int(self.rpc(lambda: self.w3.eth.get_block("latest"))["baseFeePerGas"])
            tip = int(self.rpc(lambda: self.w3.eth.max_priority_fee))
            filled["maxPriorityFeePerGas"] = tip  # type: ignore[typeddict-item]
            filled["maxFeePerGas"] = 2 * base + tip  # type: ignore[typeddict-item]
        return filled

    def _revert(self, exc: ContractLogicError, action: str) -> ContractRevertError:
        data = _revert_data(exc)
        if data is None or len(data) < 4:
            return _explained(RevertReasonError(exc.message or "execution reverted", action=action))
        return decode_revert(data, action=action)

    def _replay_failure(self, tx: TxParams, receipt: TxReceipt, label: str) -> Exception:
        # Re-run the call at the failing block to learn why it reverted.
        replay: TxParams = {
            k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")
        }  # type: ignore[assignment]
        try:
            self.rpc(lambda: self.w3.eth.call(replay, receipt["blockNumber"] - 1))
        except ContractLogicError as exc:
            return self._revert(exc, label)
        return TransactionFailedError(
            f"{label} ({receipt['transactionHash'].to_0x_hex()}) failed in block "
            f"{receipt['blockNumber']} without a reason (out of gas?)"
        )
