"""The scoring rounds' workflows as SDK calls, one per CLI command.

Each call takes a connected :class:`~visdm.chain.client.ChainClient`, the marketplace's
:class:`~visdm.chain.deployment.Deployment` and, for writes, the acting ``LocalAccount``. Before
anything is sent the call checks what the pool would refuse and says so in one line; what it
sent comes back as transactions.

Which assets a node scores (:func:`choose_batch`) is decided from the chain alone: Active
assets in a region the node serves, holding a data key wrapped for it, not its own, whose
licence admits the pool, with the fewest paid scoring rounds first (then the oldest), that no
running batch holds — up to the pool's batch size, the node's own cap and what the pool can pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain.client import ChainClient, TxResult
from visdm.chain.contracts import AssetStatus
from visdm.chain.deployment import Deployment
from visdm.errors import InvalidInputError, VisdmError
from visdm.storage import ContentStore
from visdm.types import Address

from ._contracts import (
    MAX_SCORING_FEE_BPS,
    BatchRecord,
    BatchStatus,
    PoolBalances,
    PoolTerms,
    ScoringFee,
    ScoringFeeTerms,
    ScoringPool,
)
from ._reference import ScoringReference, build_reference, load_reference

__all__ = [
    "BatchClaim",
    "BatchView",
    "Candidate",
    "PoolStatus",
    "Receipt",
    "ReferenceReceipt",
    "batch_view",
    "choose_batch",
    "claim",
    "collect_fees",
    "current_reference",
    "fee_contract",
    "fund",
    "pool",
    "pool_status",
    "publish_reference",
    "release",
    "set_fee",
    "set_terms",
    "withdraw",
]


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a write did: its amount (when one moved) and the transactions it sent."""

    action: str
    amount_wei: int
    transactions: tuple[TxResult, ...]


@dataclass(frozen=True, slots=True)
class ReferenceReceipt:
    """A reference published and committed by the pool."""

    reference: ScoringReference
    transactions: tuple[TxResult, ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An asset a node may score now: its accepted samples, rounds so far and key holders."""

    asset_id: int
    samples: int
    rounds: int
    key_nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchClaim:
    """A claimed batch."""

    batch_id: int
    node: Address
    asset_ids: tuple[int, ...]
    samples: int
    deadline: int
    reserved_wei: int
    transactions: tuple[TxResult, ...]


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """The pool at a glance."""

    pool: Address
    terms: PoolTerms
    balances: PoolBalances
    fee: ScoringFeeTerms
    reference_hash: str | None
    reference_cid: str | None
    batches: int
    open_batches: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BatchView:
    """A batch with its assets and, once published, where its scores are."""

    record: BatchRecord
    asset_ids: tuple[int, ...]
    paid_wei: int | None
    scores_cid: str | None
    scores_hash: str | None
    seed_hash: str | None


def pool(client: ChainClient, deployment: Deployment) -> ScoringPool:
    """The marketplace's scoring pool."""
    return ScoringPool(client, deployment.address_of("ScoringPool"))


def fee_contract(client: ChainClient, deployment: Deployment) -> ScoringFee:
    """The market's scoring fee."""
    return ScoringFee(client, deployment.address_of("TrainingMarket"))


def _governance(client: ChainClient, deployment: Deployment, account: LocalAccount) -> None:
    if not deployment.stakeholder_registry(client).is_governance(account.address):
        raise InvalidInputError(
            f"{account.address} does not hold GOVERNANCE_ROLE: the pool's terms, reference and "
            "fee are governance's; act as a governance account (--account)"
        )


# --- governance ----------------------------------------------------------------------------------
def publish_reference(
    client: ChainClient,
    deployment: Deployment,
    store: ContentStore,
    governance: LocalAccount,
    *,
    classes: Sequence[str] | None = None,
    validation_samples: int = 500,
    anchor_samples: int = 500,
) -> ReferenceReceipt:
    """Build the Fashion-MNIST reference (:func:`~visdm.scoring.build_reference`), store it
    and commit its hash in the pool: batches claimed from now on are scored against it."""
    _governance(client, deployment, governance)
    reference, _ = build_reference(
        store,
        classes=classes,
        validation_samples=validation_samples,
        anchor_samples=anchor_samples,
    )
    client.fund_from_dev_faucet(governance.address)
    tx = pool(client, deployment).set_reference(governance, reference.reference_hash, reference.cid)
    return ReferenceReceipt(reference, (tx,))


def set_terms(
    client: ChainClient, deployment: Deployment, governance: LocalAccount, terms: PoolTerms
) -> Receipt:
    """Set the pool's pay per sample, batch size, claim period and rounds per asset."""
    terms.as_tuple()  # one-line refusal of a value out of range, before anything is sent
    if not 60 <= terms.claim_period <= 30 * 86400:
        raise InvalidInputError(
            f"claim period {terms.claim_period} s is outside 60 s .. 30 days: a node needs time "
            "to score, and a batch must not hold assets for months"
        )
    _governance(client, deployment, governance)
    client.fund_from_dev_faucet(governance.address)
    tx = pool(client, deployment).set_terms(governance, terms)
    return Receipt("setTerms", 0, (tx,))


def set_fee(
    client: ChainClient, deployment: Deployment, governance: LocalAccount, fee_bps: int
) -> Receipt:
    """Set the market's scoring fee on proposals made from now on (basis points of the price)."""
    if isinstance(fee_bps, bool) or not isinstance(fee_bps, int):
        raise InvalidInputError(f"the scoring fee must be whole basis points, got {fee_bps!r}")
    if not 0 <= fee_bps <= MAX_SCORING_FEE_BPS:
        raise InvalidInputError(
            f"scoring fee {fee_bps} bps is outside 0..{MAX_SCORING_FEE_BPS} (the market's cap, "
            "10 % of a price): choose a lower fee"
        )
    _governance(client, deployment, governance)
    client.fund_from_dev_faucet(governance.address)
    target = pool(client, deployment).address
    tx = fee_contract(client, deployment).set_scoring_fee(governance, target, fee_bps)
    return Receipt("setScoringFee", 0, (tx,))


# --- money -----------------------------------------------------------------------------------
def fund(client: ChainClient, deployment: Deployment, payer: LocalAccount, amount: int) -> Receipt:
    """Pay ``amount`` wei of the payment token into the pool (approving it first if needed)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount < 2**256:
        raise InvalidInputError(f"fund a positive amount of wei, got {amount!r}")
    token = deployment.payment_token(client)
    held = token.balance_of(payer.address)
    if held < amount:
        raise InvalidInputError(
            f"{payer.address} holds {held} wei of the payment token, {amount} were to be paid in"
        )
    client.fund_from_dev_faucet(payer.address)
    target = pool(client, deployment)
    sent: list[TxResult] = []
    if token.allowance(payer.address, target.address) < amount:
        sent.append(token.approve(payer, target.address, amount))
    sent.append(target.fund(payer, amount))
    return Receipt("fund", amount, tuple(sent))


def collect_fees(client: ChainClient, deployment: Deployment, sender: LocalAccount) -> Receipt:
    """Pull the fees the market credited to the pool (nothing is sent when there are none)."""
    target = pool(client, deployment)
    waiting = target.balances().uncollected
    if waiting == 0:
        return Receipt("collectFees", 0, ())
    client.fund_from_dev_faucet(sender.address)
    return Receipt("collectFees", waiting, (target.collect_fees(sender),))


def withdraw(client: ChainClient, deployment: Deployment, account: LocalAccount) -> Receipt:
    """Withdraw a node's scoring pay."""
    target = pool(client, deployment)
    owed = target.credit_of(account.address)
    if owed == 0:
        raise InvalidInputError(
            f"{account.address} has no scoring pay to withdraw: publish a batch's scores first"
        )
    client.fund_from_dev_faucet(account.address)
    return Receipt("withdraw", owed, (target.withdraw(account),))


# --- batches ---------------------------------------------------------------------------------
def current_reference(
    client: ChainClient, deployment: Deployment, store: ContentStore, reference_hash: bytes | None
) -> ScoringReference:
    """The reference ``reference_hash`` (default: the pool's current one), fetched and checked."""
    target = pool(client, deployment)
    wanted = reference_hash or target.reference_hash()
    if wanted is None:
        raise InvalidInputError(
            "the scoring pool has no reference yet: governance publishes one with "
            "`visdm scoring reference`"
        )
    return load_reference(store, target.reference_cid(wanted), wanted)


def _licence_allows(
    client: ChainClient, deployment: Deployment, store: ContentStore, asset_id: int
) -> bool:
    from visdm.proposals import licence_refusal, load_public_asset

    try:
        public = load_public_asset(
            deployment.asset_registry(client), store, asset_id, chain_id=client.chain_id
        )
    except VisdmError:
        return False  # a manifest that cannot be read cannot be scored either
    target = deployment.address_of("ScoringPool")
    return licence_refusal(public, target, client.latest_timestamp()) is None


def choose_batch(
    client: ChainClient,
    deployment: Deployment,
    store: ContentStore,
    node: str,
    *,
    max_samples: int | None = None,
    asset_ids: Sequence[int] | None = None,
) -> list[Candidate]:
    """The assets ``node`` would claim now (see the module docstring); ``asset_ids`` limits the
    choice to those. Empty when nothing can be scored."""
    me = to_checksum_address(node)
    registry = deployment.stakeholder_registry(client)
    record = registry.compute_node(me)
    target = pool(client, deployment)
    terms, balances = target.terms(), target.balances()
    budget = (balances.available + balances.uncollected) // max(terms.rate_per_sample, 1)
    room = min(terms.max_batch_samples, max_samples or terms.max_batch_samples, budget)
    if not record.active or room <= 0:
        return []
    now = client.latest_timestamp()
    assets = deployment.asset_registry(client)
    wanted = None if asset_ids is None else set(asset_ids)
    found: list[Candidate] = []
    for event in assets.logs("AssetRegistered"):
        asset_id = int(event["args"]["assetId"])
        holders = tuple(to_checksum_address(a) for a in event["args"]["keyNodes"])
        if (wanted is not None and asset_id not in wanted) or me not in holders:
            continue
        a = assets.asset(asset_id)
        if (
            a.status != AssetStatus.ACTIVE
            or str(a.owner) in (me, record.signer)
            or not a.accepted_count
        ):
            continue
        if not a.region_mask >> record.region & 1:
            continue
        rounds, until, last = target.asset_scoring(asset_id)
        if rounds >= terms.max_rounds or until >= now:
            continue
        if last:
            previous = target.batch(last)
            lapsed = previous.status in (BatchStatus.CLAIMED, BatchStatus.LAPSED)
            if (
                lapsed
                and str(previous.node) == me
                and now <= previous.deadline + terms.claim_period
            ):
                continue
        found.append(Candidate(asset_id, a.accepted_count, rounds, holders))
    found.sort(key=lambda c: (c.rounds, c.asset_id))
    chosen: list[Candidate] = []
    total = 0
    for candidate in found:
        if total + candidate.samples > room:
            continue
        if not _licence_allows(client, deployment, store, candidate.asset_id):
            continue
        chosen.append(candidate)
        total += candidate.samples
    return sorted(chosen, key=lambda c: c.asset_id)


def claim(
    client: ChainClient,
    deployment: Deployment,
    store: ContentStore,
    node: LocalAccount,
    *,
    max_samples: int | None = None,
    asset_ids: Sequence[int] | None = None,
) -> BatchClaim | None:
    """Claim a batch for ``node`` (``None`` when nothing can be scored now)."""
    target = pool(client, deployment)
    if target.reference_hash() is None:
        raise InvalidInputError(
            "the scoring pool has no reference yet: governance publishes one with "
            "`visdm scoring reference`"
        )
    open_batch = target.open_batch_of(node.address)
    if open_batch is not None and target.batch(open_batch).deadline >= client.latest_timestamp():
        raise InvalidInputError(
            f"{node.address} still holds batch {open_batch}: score it (`visdm node serve "
            "--score`) or release it (`visdm scoring release`) first"
        )
    if max_samples is not None and (isinstance(max_samples, bool) or max_samples < 1):
        raise InvalidInputError(f"--max-samples must be a whole number ≥ 1, got {max_samples!r}")
    chosen = choose_batch(
        client, deployment, store, node.address, max_samples=max_samples, asset_ids=asset_ids
    )
    if asset_ids is not None:
        missing = sorted(set(asset_ids) - {c.asset_id for c in chosen})
        if missing:
            raise InvalidInputError(
                f"asset(s) {', '.join(map(str, missing))} cannot be scored by {node.address} "
                "now: not active, not yours to decrypt, your own, refused by their licence, held "
                "by a running batch, scored enough, or over the batch size or the pool's funds"
            )
    if not chosen:
        return None
    client.fund_from_dev_faucet(node.address)
    ids = [c.asset_id for c in chosen]
    batch_id, tx = target.claim_batch(node, ids, [c.key_nodes for c in chosen])
    record = target.batch(batch_id)
    return BatchClaim(
        batch_id,
        Address(node.address),
        tuple(ids),
        record.samples,
        record.deadline,
        record.reserved,
        (tx,),
    )


def release(
    client: ChainClient, deployment: Deployment, node: LocalAccount, batch_id: int
) -> Receipt:
    """Give up a claimed batch now (its assets and reserve are free at once)."""
    target = pool(client, deployment)
    record = target.batch(batch_id)
    if record.status != BatchStatus.CLAIMED or str(record.node) != node.address:
        raise InvalidInputError(
            f"batch {batch_id} is not a claimed batch of {node.address} "
            f"(it is {record.status.name.lower()}): nothing to release"
        )
    client.fund_from_dev_faucet(node.address)
    tx = target.release_batch(node, batch_id, target.batch_assets(batch_id))
    return Receipt("releaseBatch", record.reserved, (tx,))


# --- reading ---------------------------------------------------------------------------------
def pool_status(client: ChainClient, deployment: Deployment) -> PoolStatus:
    """Terms, balances, fee, reference and open batches of the pool."""
    target = pool(client, deployment)
    reference = target.reference_hash()
    count = target.batch_count()
    opened = tuple(i for i in range(1, count + 1) if target.batch(i).status == BatchStatus.CLAIMED)
    return PoolStatus(
        pool=target.address,
        terms=target.terms(),
        balances=target.balances(),
        fee=fee_contract(client, deployment).scoring_fee(0),
        reference_hash=None if reference is None else "0x" + reference.hex(),
        reference_cid=None if reference is None else target.reference_cid(reference),
        batches=count,
        open_batches=opened,
    )


def batch_view(client: ChainClient, deployment: Deployment, batch_id: int) -> BatchView:
    """A batch, its assets and (once published) its scores' place and commitments."""
    if isinstance(batch_id, bool) or not isinstance(batch_id, int) or batch_id < 1:
        raise InvalidInputError(f"a batch id is a whole number ≥ 1, got {batch_id!r}")
    target = pool(client, deployment)
    record = target.batch(batch_id)
    if record.status == BatchStatus.NONE:
        raise InvalidInputError(
            f"there is no batch {batch_id}: the pool has {target.batch_count()} batches"
        )
    published = target.logs("ScoresPublished", where={"batchId": batch_id})
    args = published[0]["args"] if published else None
    return BatchView(
        record=record,
        asset_ids=target.batch_assets(batch_id),
        paid_wei=None if args is None else int(args["paid"]),
        scores_cid=None if args is None else str(args["scoresCid"]),
        scores_hash=None if args is None else "0x" + bytes(args["scoresHash"]).hex(),
        seed_hash=None if args is None else "0x" + bytes(args["seedHash"]).hex(),
    )
