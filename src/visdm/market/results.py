"""What a round leaves behind, as SDK calls: its result document, the consumer's model, the
providers' payouts and everyone's credits (``model get``, ``claim``, ``withdraw``,
``sweep-unclaimed``). :mod:`.workflow` re-exports each of them."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from visdm.accounts import UnlockedAccount
from visdm.chain.client import TxResult
from visdm.chain.contracts import (
    ClaimRequest,
    ProposalRecord,
    ProposalStatus,
    ResultCourt,
    TrainingMarket,
)
from visdm.config import Settings
from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import load_untrusted_object
from visdm.merkle import StandardMerkleTree
from visdm.proposals import MAX_PROPOSAL_BYTES, TrainingProposal, verify_proposal
from visdm.session import Connection, connect_deployed, open_store
from visdm.storage import ContentStore

from . import _next
from .payouts import claim_for
from .release import market_court, release_due, window_at

__all__ = [
    "ClaimReceipt",
    "claim",
    "claimable",
    "get_model",
    "model_bytes",
    "sweep_unclaimed",
    "training_result",
    "withdraw",
]

#: documents larger than these are not read (a payout tree of 10⁶ payees is ~250 MB)
_MAX_RESULT_BYTES = 512 << 20
_MAX_MODEL_BYTES = 1 << 30


def _proposal(conn: Connection, proposal_id: int) -> ProposalRecord:
    market = conn.deployment.training_market(conn.client)
    if proposal_id <= 0 or proposal_id > market.proposal_count():
        raise InvalidInputError(f"proposal {proposal_id} does not exist on this market")
    return market.proposal(proposal_id)


def training_result(settings: Settings, proposal_id: int) -> dict[str, Any] | None:
    """The node's result document for ``proposal_id`` (``None`` before the result)."""
    return _result_document(connect_deployed(settings), open_store(settings), proposal_id)


def _signed_proposal(conn: Connection, store: ContentStore, proposal_id: int) -> TrainingProposal:
    """Proposal ``proposal_id``'s document, verified as signed by its consumer for this market."""
    market = conn.deployment.training_market(conn.client)
    (created,) = market.logs("ProposalCreated", where={"proposalId": proposal_id})[:1]
    raw = store.get(created["args"]["proposalCid"], max_bytes=MAX_PROPOSAL_BYTES)
    return verify_proposal(raw, chain_id=conn.client.chain_id, market=market.address).proposal


def _result_document(
    conn: Connection, store: ContentStore, proposal_id: int
) -> dict[str, Any] | None:
    market = conn.deployment.training_market(conn.client)
    events = market.logs("ResultSubmitted", where={"proposalId": proposal_id})
    if not events:
        return None
    raw = store.get(events[0]["args"]["resultCid"], max_bytes=_MAX_RESULT_BYTES)
    document = load_untrusted_object(
        raw,
        what=f"proposal {proposal_id}'s result document",
        max_bytes=_MAX_RESULT_BYTES,
        hint="its node published a broken result document: report it to governance",
    )
    if document.get("proposalId") != proposal_id:
        raise InvalidInputError(f"the result document is not for proposal {proposal_id}")
    return document


def get_model(
    settings: Settings,
    consumer: UnlockedAccount,
    proposal_id: int,
    out: Path,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Fetch, verify (node signature, committed hash) and decrypt the model; write it to
    ``out`` (not over an existing file unless ``force``) once it loaded as a model of the
    proposed spec."""
    conn = connect_deployed(settings)
    record = _proposal(conn, proposal_id)
    _next.require_model_ready(record, consumer.address)
    out = _next.check_model_path(out, force=force)  # before anything is fetched
    model, info = _open_model(settings, conn, consumer, record)
    _next.write_model(out, model)
    return {"proposalId": proposal_id, "path": str(out), **info}


def model_bytes(
    settings: Settings, consumer: UnlockedAccount, proposal_id: int
) -> tuple[bytes, dict[str, Any]]:
    """The model of ``proposal_id`` with the checks of :func:`get_model`, as bytes (for a
    download) rather than a file, and what :func:`get_model` reports about it."""
    conn = connect_deployed(settings)
    record = _proposal(conn, proposal_id)
    _next.require_model_ready(record, consumer.address)
    model, info = _open_model(settings, conn, consumer, record)
    return model, {"proposalId": proposal_id, **info}


def _open_model(
    settings: Settings, conn: Connection, consumer: UnlockedAccount, record: ProposalRecord
) -> tuple[bytes, dict[str, Any]]:
    """Fetch, verify and decrypt a completed proposal's model and load it once (in a private
    temporary folder) to prove it is a model of the proposed spec."""
    from visdm.compute.delivery import open_model

    proposal_id = record.proposal_id
    store = open_store(settings)
    document = _result_document(conn, store, proposal_id)
    if document is None or not document.get("model"):
        raise InvalidInputError(f"proposal {proposal_id}'s result names no model")
    market = conn.deployment.training_market(conn.client)
    signer = conn.deployment.stakeholder_registry(conn.client).compute_node(record.node).signer
    model = open_model(
        store.get(document["model"]["cid"], max_bytes=_MAX_MODEL_BYTES),
        consumer=consumer,
        proposal_id=proposal_id,
        expected_signer=signer,
        expected_model_hash=record.model_hash,
        chain_id=conn.client.chain_id,
        market=market.address,
    )
    from visdm.training import load_model, parse_model_spec

    proposal = _signed_proposal(conn, store, proposal_id)
    spec = parse_model_spec(proposal.model_spec_json)
    with tempfile.TemporaryDirectory(prefix="visdm-model-") as folder:
        probe = Path(folder) / "model.safetensors"
        _next.write_model(probe, model)
        load_model(probe, spec)  # refuses weights of another spec or shape
    return model, {
        "modelHash": "0x" + keccak(model).hex(),
        "accuracyBps": record.accuracy_bps,
        "epsilonSpent": document.get("epsilonSpent"),
        "architecture": spec.architecture,
        "classes": list(proposal.classes),
        "signer": signer,
    }


# --- providers: claiming ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClaimReceipt:
    proposal_id: int
    amount: int
    tx_hash: str | None
    note: str
    gas_used: int = 0
    block_number: int | None = None


def claim(
    settings: Settings,
    provider: UnlockedAccount,
    proposal_ids: Sequence[int] | None = None,
    *,
    withdraw_credits: bool = True,
) -> list[ClaimReceipt]:
    """Claim the payouts of ``provider``'s assets from the given (default: every completed)
    proposal in one ``claimMany`` transaction; the market credits them to the provider, and
    ``withdraw_credits`` then withdraws the provider's whole credit in one transfer."""
    receipts, pending = claimable(settings, provider.address, proposal_ids)
    if pending:
        conn = connect_deployed(settings)
        market = conn.deployment.training_market(conn.client)
        conn.client.fund_from_dev_faucet(provider.address)
        # a result whose challenge window is over opens its claims once released: anyone may
        released = set(release_due(conn, provider.local_account, [pid for pid, _ in pending]))
        tx = market.claim_many(provider.local_account, [r for _, rs in pending for r in rs])
        for pid, requests in pending:
            amount = sum(r.amount for r in requests)
            note = "released and claimed" if pid in released else "claimed"
            receipts.append(
                ClaimReceipt(pid, amount, tx.tx_hash, note, tx.gas_used, tx.block_number)
            )
    if withdraw_credits:
        withdraw(settings, provider)
    return receipts


def claimable(
    settings: Settings, provider: str, proposal_ids: Sequence[int] | None = None
) -> tuple[list[ClaimReceipt], list[tuple[int, list[ClaimRequest]]]]:
    """What ``provider`` can claim now from the given (default: every completed) proposal:
    the claims not yet made, per proposal, for one ``claimMany``, and a receipt for each
    proposal with nothing to claim saying why (only the named ones, or those where the
    provider is a payee)."""
    conn = connect_deployed(settings)
    store = open_store(settings)
    market = conn.deployment.training_market(conn.client)
    assets = conn.deployment.asset_registry(conn.client)
    ids = list(proposal_ids or range(1, market.proposal_count() + 1))
    receipts: list[ClaimReceipt] = []
    pending: list[tuple[int, list[ClaimRequest]]] = []
    owned: list[set[int]] = []
    me: str = to_checksum_address(provider)

    def mine(asset_id: int) -> bool:
        # an asset's owner never changes, so the provider's registrations name every asset it
        # owns: one query, instead of one call per payout leaf (a round pays 1,000s of assets)
        if not owned:
            start = conn.deployment.contracts["AssetRegistry"].block_number
            found = assets.logs("AssetRegistered", from_block=start, where={"owner": me})
            owned.append({int(e["args"]["assetId"]) for e in found})
        return asset_id in owned[0]

    court: list[ResultCourt | None] = []
    for pid in ids:
        record = _proposal(conn, pid)
        if record.status != ProposalStatus.COMPLETED:
            if proposal_ids:
                receipts.append(ClaimReceipt(pid, 0, None, f"{record.status.name.lower()}"))
            continue
        try:
            tree, selection = _payout_tree(conn, store, pid, record)
        except VisdmError as exc:
            # one unusable result must not keep a provider from its other payouts
            receipts.append(ClaimReceipt(pid, 0, None, f"cannot claim: {exc}"))
            continue
        requests = [
            claim_for(tree, pid, int(asset_id), selection)
            for _, asset_id, _ in tree.values
            if mine(int(asset_id))
        ]
        if not requests:
            if proposal_ids:
                receipts.append(ClaimReceipt(pid, 0, None, "not a payee"))
            continue
        if conn.client.latest_timestamp() > record.claim_deadline:
            receipts.append(ClaimReceipt(pid, 0, None, "the claim period is over"))
            continue
        if record.deadline:  # held by the court: claimable once released after the window
            if not court:  # the market's court, read once for every held result
                court.append(market_court(conn))
            window, now = window_at(court[0], record), _next.chain_now(conn.client)
            if window is not None and not window.releasable_at(now):
                amount = sum(r.amount for r in requests)
                receipts.append(ClaimReceipt(pid, amount, None, window.note(now)))
                continue
        fresh = [r for r in requests if not market.is_claimed(pid, r.position)]
        if not fresh:
            amount = sum(r.amount for r in requests)
            receipts.append(ClaimReceipt(pid, amount, None, "already claimed"))
            continue
        pending.append((pid, fresh))
    return receipts, pending


def _payout_tree(
    conn: Connection, store: ContentStore, pid: int, record: ProposalRecord
) -> tuple[StandardMerkleTree, Sequence[int]]:
    """The published payout tree of a completed proposal, checked against its root on chain,
    and the proposal's selected asset ids in order, as the market stored them."""
    document = _result_document(conn, store, pid)
    tree_dump = ((document or {}).get("payouts") or {}).get("tree")
    if tree_dump is None:
        raise InvalidInputError("its result document has no payout tree")
    tree = StandardMerkleTree.load(tree_dump)
    if tree.root != record.payout_root:
        raise InvalidInputError("its published payout tree does not match its root")
    return tree, _ChainSelection(conn.deployment.training_market(conn.client), record)


class _ChainSelection(Sequence[int]):
    """A proposal's selected asset ids read from the market one position at a time: a claim
    checks only its own leaves' positions, so it need not fetch and verify the signed proposal
    (every selected sample id: megabytes in a crowd's round)."""

    def __init__(self, market: TrainingMarket, record: ProposalRecord) -> None:
        self._market, self._record = market, record

    def __len__(self) -> int:
        return self._record.asset_count

    @overload
    def __getitem__(self, position: int) -> int: ...
    @overload
    def __getitem__(self, position: slice) -> Sequence[int]: ...
    def __getitem__(self, position: int | slice) -> int | Sequence[int]:
        if isinstance(position, slice):
            return [self[i] for i in range(len(self))[position]]
        if not 0 <= position < len(self):
            raise IndexError(position)
        return self._market.selected_asset(self._record.proposal_id, position)


def sweep_unclaimed(settings: Settings, sender: UnlockedAccount, proposal_id: int) -> TxResult:
    """After a completed proposal's claim period, credit what nobody claimed to the market
    treasury (anyone may); refuses early with the deadline."""
    conn = connect_deployed(settings)
    record = _proposal(conn, proposal_id)
    if record.status != ProposalStatus.COMPLETED:
        raise InvalidInputError(
            f"proposal {proposal_id} is {record.status.name.lower()}: only a completed "
            "proposal has payouts to sweep"
        )
    now = conn.client.latest_timestamp()
    if now <= record.claim_deadline:
        raise InvalidInputError(
            f"proposal {proposal_id}'s payouts are claimable until {record.claim_deadline} "
            f"({record.claim_deadline - now} s from now): sweep after that"
        )
    conn.client.fund_from_dev_faucet(sender.address)
    return conn.deployment.training_market(conn.client).sweep_unclaimed(
        sender.local_account, proposal_id
    )


def withdraw(settings: Settings, account: UnlockedAccount) -> tuple[int, TxResult | None]:
    """Withdraw ``account``'s credits (payouts, refunds, training fees); returns the amount."""
    conn = connect_deployed(settings)
    market = conn.deployment.training_market(conn.client)
    amount = market.credit_of(account.address)
    if amount == 0:
        return 0, None
    conn.client.fund_from_dev_faucet(account.address)
    return amount, market.withdraw(account.local_account)
