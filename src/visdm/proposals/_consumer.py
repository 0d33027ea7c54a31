"""Consumer and node sides of a proposal document: create and propose, fetch and check.

:func:`create_proposal` curates (asset ids or explicit indexes), encrypts the validation set for
the chosen node, writes and signs the XML, stores it and calls ``propose`` with the offer
escrowed, in three steps a browser wallet takes one by one: :func:`prepare_proposal`
(everything up to the unsigned document), the consumer's signature, and :func:`submit_proposal`
(store the signed document with :func:`store_signed_proposal`, approve, propose). Before
anything is stored or sent it checks what would make the proposal fail later with the offer
locked: the market's minimums and voting window, every asset's licence, the
node's key coverage and limits (:mod:`._feasibility`), and finally a dry run of ``propose``
itself. :func:`load_checked_proposal` is what a node (or anyone) runs before acting on a
proposal: the stored document must be signed by the proposal's consumer and agree with every
commitment of its ``ProposalCreated`` event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import Web3Exception

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient, TxResult
from visdm.chain.contracts import (
    AssetRegistry,
    ComputeNodeRecord,
    ProposalTerms,
    StakeholderRegistry,
    TrainingMarket,
)
from visdm.chain.deployment import Deployment
from visdm.errors import (
    BlobTooLargeError,
    ContractRevertError,
    DesignLimitError,
    InvalidInputError,
    InvalidProposalError,
    RevertReasonError,
    SignatureError,
)
from visdm.labels import label_key
from visdm.storage import ContentStore
from visdm.types import Address, Cid

from ._document import (
    MAX_PROPOSAL_BYTES,
    ParsedProposal,
    SelectedAsset,
    TrainingProposal,
    ValidationSetRef,
    proposal_hash,
    sign_proposal,
    verify_proposal,
)
from ._feasibility import coverage_refusal, node_refusals, node_terms
from ._selection import (
    PublicAsset,
    SelectedSample,
    accepted_indexes,
    asset_refusal,
    load_public_assets,
    resolve_selection,
    selection_root,
)
from ._validation import check_validation_set, seal_validation_set, validation_aad

if TYPE_CHECKING:
    from visdm.training._spec import ModelSpec

__all__ = [
    "CheckedProposal",
    "CreatedProposal",
    "PreparedProposal",
    "create_proposal",
    "load_checked_proposal",
    "prepare_proposal",
    "proposal_terms",
    "store_signed_proposal",
    "submit_proposal",
]

#: seconds between fixing the voting deadline in the signed document and ``propose`` being
#: mined (a faucet top-up, an approval and the proposal: a few blocks)
_DEADLINE_SLACK_S = 10
_REMOTE_DEADLINE_SLACK_S = 120
#: what ``propose``'s last step — taking the offer — reverts with when the approval is missing
#: or the balance short: a dry run ending there passed every check of the market before it
_PAYMENT_ERRORS = frozenset(
    {"ERC20InsufficientAllowance", "ERC20InsufficientBalance", "SafeERC20FailedOperation"}
)
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class CreatedProposal:
    proposal_id: int
    proposal_cid: Cid
    document: TrainingProposal
    transactions: tuple[TxResult, ...]
    #: what the consumer should know: how the node's limits were checked, an estimated
    #: training cost, what was left out of the validation set
    notes: tuple[str, ...] = ()


def _canonical_spec(spec: Mapping[str, Any] | bytes | str) -> tuple[bytes, bytes]:
    # torch-free: the spec module validates with pydantic only
    from visdm.training._spec import canonical_spec_json, parse_model_spec, spec_hash

    parsed = parse_model_spec(dict(spec) if isinstance(spec, Mapping) else spec)
    return canonical_spec_json(parsed), spec_hash(parsed)


@dataclass(frozen=True, slots=True)
class PreparedProposal:
    """A proposal document for its consumer to sign: every check passed (the market's own in
    a dry run of ``propose``) and the validation set is sealed to the node and stored;
    nothing is signed or escrowed yet."""

    document: TrainingProposal
    notes: tuple[str, ...] = ()

    @property
    def terms(self) -> ProposalTerms:
        """What ``propose`` commits, without the document's CID (:func:`proposal_terms`)."""
        return proposal_terms(self.document)


def proposal_terms(document: TrainingProposal, cid: str = "") -> ProposalTerms:
    """The ``propose`` terms that commit to ``document`` (stored under ``cid``)."""
    return ProposalTerms(
        asset_ids=document.asset_ids,
        sample_counts=document.sample_counts,
        selection_root=document.selection_root,
        offer=document.offer,
        wtp_bps=document.wtp_bps,
        node=document.node,
        voting_deadline=document.voting_deadline,
        model_spec_hash=document.model_spec_hash,
        validation_set_hash=document.validation.plaintext_hash,
        proposal_cid=cid,
        min_share_bps=document.min_share_bps,
    )


def create_proposal(
    client: ChainClient,
    deployment: Deployment,
    store: ContentStore,
    consumer: UnlockedAccount,
    *,
    selection: Sequence[SelectedAsset | int],
    model_spec: Mapping[str, Any] | bytes | str,
    classes: Sequence[str],
    validation_archive: bytes,
    offer: int,
    wtp_bps: int,
    node: str,
    voting_period_s: int,
    min_share_bps: int = 0,
) -> CreatedProposal:
    """Curate, seal the validation set to ``node``, sign, store, escrow ``offer`` and propose.

    ``selection`` items are :class:`SelectedAsset` (explicit indexes) or bare asset ids (every
    sample the node accepted). ``min_share_bps``: the smallest share of the selected samples
    worth training on once providers who reject have left the round (below it the proposal
    fails and the offer is refunded). Nothing reaches the store or the chain unless every
    check passed, the market's own in a dry run of ``propose``; the result's notes say how
    the node's limits were checked. The steps are :func:`prepare_proposal`,
    :func:`~visdm.proposals.sign_proposal` with the local key and :func:`submit_proposal`.
    """
    prepared = prepare_proposal(
        client,
        deployment,
        store,
        selection=selection,
        model_spec=model_spec,
        classes=classes,
        validation_archive=validation_archive,
        offer=offer,
        wtp_bps=wtp_bps,
        node=node,
        voting_period_s=voting_period_s,
        min_share_bps=min_share_bps,
        consumer_address=consumer.address,
    )
    signed = sign_proposal(prepared.document, bytes(consumer.local_account.key))
    return submit_proposal(client, deployment, store, consumer, prepared=prepared, signed=signed)


def prepare_proposal(
    client: ChainClient,
    deployment: Deployment,
    store: ContentStore,
    *,
    selection: Sequence[SelectedAsset | int],
    model_spec: Mapping[str, Any] | bytes | str,
    classes: Sequence[str],
    validation_archive: bytes,
    offer: int,
    wtp_bps: int,
    node: str,
    voting_period_s: int,
    min_share_bps: int = 0,
    consumer_address: str,
    deadline_slack_s: int | None = None,
) -> PreparedProposal:
    """Every check of :func:`create_proposal`, the sealed validation set stored, and the
    unsigned document of ``consumer_address``'s proposal.

    ``deadline_slack_s``: seconds between now and ``propose`` being mined, added to the voting
    period in the document (default: a few blocks; a person confirming prompts needs more).
    """
    if not isinstance(consumer_address, str) or not is_address(consumer_address):
        raise InvalidInputError(
            f"consumer {str(consumer_address)[:60]!r} is not an address: give 0x and 40 hex digits"
        )
    me = Address(to_checksum_address(consumer_address))
    _check_amounts(offer, wtp_bps, min_share_bps)
    spec_json, spec_digest = _canonical_spec(model_spec)
    from visdm.training._spec import parse_model_spec

    spec = parse_model_spec(spec_json)
    if spec.num_classes != len(classes):
        raise InvalidInputError(
            f"the model spec has num_classes={spec.num_classes} but {len(classes)} class names "
            f"were given ({', '.join(classes)})"
        )
    market = deployment.training_market(client)
    node_record = _active_node(deployment.stakeholder_registry(client), node, me)
    params = market.parameters()
    if spec.batch_size < params.min_batch_size:
        raise InvalidInputError(
            f"the spec's batch_size={spec.batch_size} is below the market's minimum expected "
            f"batch size of {params.min_batch_size}: raise it"
        )
    slack = deadline_slack_s
    if slack is None:
        slack = _DEADLINE_SLACK_S if client.is_dev_chain else _REMOTE_DEADLINE_SLACK_S
    longest = params.max_voting_period - slack
    if not params.min_voting_period <= voting_period_s <= longest:
        raise InvalidInputError(
            f"a voting period of {voting_period_s:,} s is outside the market's window: give "
            f"{params.min_voting_period:,} to {longest:,} s ({longest / _DAY:.1f} days)"
        )
    public, chosen = _curate(
        deployment.asset_registry(client),
        store,
        selection,
        chain_id=client.chain_id,
        from_block=_registry_block(deployment),
    )
    samples = resolve_selection(chosen, public)
    _check_minimums(samples, params.min_selection_samples, params.min_selection_providers)
    _check_assets(public, samples, me, node_record, spec, now=client.latest_timestamp())
    _check_labels(samples, classes)
    check_validation_set(validation_archive, spec.input_shape, len(classes))
    impossible, notes = node_refusals(
        spec,
        node_record,
        samples=len(samples),
        min_batch_size=params.min_batch_size,
        max_training_period=params.max_training_period,
        terms=node_terms(node_record),
    )
    if impossible:
        raise DesignLimitError(
            f"compute node {node_record.address} would refuse to train this proposal: "
            + "; ".join(impossible)
            + "; nothing was escrowed"
        )
    root = selection_root(samples)
    # the deadline is fixed in the signed document before the transactions are mined: leave
    # room for the blocks in between, or a minimum-length period would land outside the window
    deadline = next_block_time(client) + slack + voting_period_s
    terms = ProposalTerms(
        asset_ids=tuple(a.asset_id for a in chosen),
        sample_counts=tuple(len(a.indexes) for a in chosen),
        selection_root=root,
        offer=offer,
        wtp_bps=wtp_bps,
        node=node_record.address,
        voting_deadline=deadline,
        model_spec_hash=spec_digest,
        validation_set_hash=bytes(keccak(validation_archive)),
        min_share_bps=min_share_bps,
    )
    # the market's own checks, before anything is stored or sent (the CID is only emitted)
    _dry_run(client, market, me, terms)
    aad = validation_aad(
        chain_id=client.chain_id,
        market=market.address,
        consumer=me,
        node=node_record.address,
        selection_root=root,
        model_spec_hash=spec_digest,
    )
    sealed = seal_validation_set(validation_archive, node_record.encryption_key, aad=aad)
    validation_cid = store.put(sealed.ciphertext, pin=True)
    document = TrainingProposal(
        chain_id=client.chain_id,
        market=Address(to_checksum_address(market.address)),
        consumer=me,
        node=node_record.address,
        created_at=int(time.time()),
        offer=offer,
        wtp_bps=wtp_bps,
        voting_deadline=deadline,
        classes=tuple(classes),
        model_spec_json=spec_json,
        model_spec_hash=spec_digest,
        validation=ValidationSetRef(
            validation_cid, sealed.plaintext_hash, sealed.samples, sealed.wrapped_key
        ),
        selection=tuple(chosen),
        selection_root=root,
        min_share_bps=min_share_bps,
    )
    return PreparedProposal(document, tuple(notes))


def store_signed_proposal(
    store: ContentStore, prepared: PreparedProposal, signed: bytes
) -> ProposalTerms:
    """Store the consumer's signed document of ``prepared``; the terms that commit to it.

    Refuses (:class:`~visdm.errors.SignatureError`, nothing stored) a document that is not
    ``prepared``'s or not signed by its consumer."""
    document = prepared.document
    parsed = verify_proposal(signed, chain_id=document.chain_id, market=document.market)
    if parsed.proposal_hash != proposal_hash(document):
        raise SignatureError(
            f"the signed document is not the one prepared for {document.consumer}: prepare "
            "and sign it again; nothing was stored"
        )
    return proposal_terms(document, store.put(signed, pin=True))


def submit_proposal(
    client: ChainClient,
    deployment: Deployment,
    store: ContentStore,
    consumer: UnlockedAccount,
    *,
    prepared: PreparedProposal,
    signed: bytes,
) -> CreatedProposal:
    """Store the signed document, approve the offer (minted first on a dev chain) and
    ``propose`` as ``consumer``."""
    terms = store_signed_proposal(store, prepared, signed)
    proposal_id, txs = _escrow_and_propose(client, deployment, consumer, terms)
    return CreatedProposal(
        proposal_id, Cid(terms.proposal_cid), prepared.document, txs, prepared.notes
    )


def _check_labels(samples: Sequence[SelectedSample], classes: Sequence[str]) -> None:
    unknown = sorted({s.label for s in samples} - set(classes))
    if unknown:
        # another provider's spelling of a class (`Cat` for `cat`) is named as such
        spelled = {label_key(c): c for c in classes}
        hints = [
            f"{u!r} (spelled {spelled[label_key(u)]!r} in the classes)"
            for u in unknown
            if label_key(u) in spelled
        ]
        raise InvalidInputError(
            f"the selection has labels {', '.join(map(repr, unknown[:5]))} that are not among "
            f"the classes ({', '.join(classes)}): add them or curate them out"
            + (
                f"; {', '.join(hints[:5])} is the same class in another letter case: choose "
                "one spelling and curate the other out"
                if hints
                else ""
            )
        )


def _check_amounts(offer: int, wtp_bps: int, min_share_bps: int) -> None:
    if offer <= 0:
        raise InvalidInputError(f"the offer must be positive, got {offer}")
    if not 0 <= wtp_bps <= 10_000:
        raise InvalidInputError(f"the WTP threshold must be 0..10000 bps, got {wtp_bps}")
    if not 0 <= min_share_bps <= 10_000:
        raise InvalidInputError(f"the minimum share must be 0..10000 bps, got {min_share_bps}")


def _active_node(registry: StakeholderRegistry, node: str, consumer: str) -> ComputeNodeRecord:
    if not isinstance(node, str) or not is_address(node):
        raise InvalidInputError(
            f"compute node {str(node)[:60]!r} is not an address: give 0x and 40 hex digits"
        )
    record = registry.compute_node(node)
    if not record.admitted and registry.federation_of(node).registered:
        record = _federation_as_node(registry, node)
    if not record.active:
        state = "suspended" if record.admitted else "not an admitted compute node"
        raise InvalidInputError(f"{record.address} is {state}: choose an active compute node")
    if consumer in (record.address, record.signer):
        raise InvalidInputError("you cannot name yourself as the compute node of your proposal")
    return record


def _federation_as_node(registry: StakeholderRegistry, federation: str) -> ComputeNodeRecord:
    """A federation as a proposal's node: its coordinator's signer, key (the validation set is
    sealed to the coordinator, which evaluates) and endpoint, and its members; suspended while
    a member has not joined or any of them is suspended (the market's own rule)."""
    record = registry.federation_of(federation)
    assert record.coordinator is not None  # registered: checked by the caller
    coordinator = registry.compute_node(record.coordinator)
    regions = registry.node_regions(federation)
    return replace(
        coordinator,
        address=record.address,
        suspended=not regions.active,
        members=tuple(registry.compute_node(m) for m in record.members),
    )


def _check_assets(
    public: Mapping[int, PublicAsset],
    samples: Sequence[SelectedSample],
    consumer: str,
    node: ComputeNodeRecord,
    spec: ModelSpec,
    *,
    now: int,
) -> None:
    """Refuse assets the consumer may not train on at ``node``: its own or the node's, a
    licence or privacy terms that refuse it, or data the node cannot decrypt or process."""
    dp = None if spec.dp is None else (spec.dp.target_epsilon, spec.dp.delta)
    refused = []
    for asset_id, asset in public.items():
        why = asset_refusal(
            asset,
            consumer=consumer,
            node=node.address,
            now=now,
            dp=dp,
            training_samples=len(samples),
        ) or coverage_refusal(asset, node)
        if why is not None:
            refused.append(f"asset {asset_id}: {why}")
    if refused:
        raise InvalidProposalError(
            "the selection includes data you may not train on: " + "; ".join(refused)
        )


def _escrow_and_propose(
    client: ChainClient, deployment: Deployment, consumer: UnlockedAccount, terms: ProposalTerms
) -> tuple[int, tuple[TxResult, ...]]:
    """Approve the offer (unless already approved) and propose."""
    market = deployment.training_market(client)
    client.fund_from_dev_faucet(consumer.address)
    token = deployment.payment_token(client)
    from visdm.session import top_up_dev_tokens

    top_up_dev_tokens(client, deployment, consumer.local_account, terms.offer)
    balance = token.balance_of(consumer.address)
    if balance < terms.offer:
        raise InvalidInputError(
            f"the offer escrows {terms.offer} wei of the payment token but {consumer.address} "
            f"holds {balance}: get more of the payment token, or offer less; nothing was sent"
        )
    txs = []
    if token.allowance(consumer.address, market.address) < terms.offer:
        txs.append(token.approve(consumer.local_account, market.address, terms.offer))
    proposal_id, tx = market.propose(consumer.local_account, terms)
    return proposal_id, (*txs, tx)


def next_block_time(client: ChainClient) -> int:
    """The time the next block will carry, as well as the node can tell: anvil mines on
    demand, so after an idle hour its latest block is an hour old while the next one will
    carry the wall-clock time; its pending block says so."""
    latest = client.latest_timestamp()
    try:
        pending = int(client.rpc(lambda: client.w3.eth.get_block("pending"))["timestamp"])
    except (Web3Exception, KeyError, TypeError, ValueError):  # a node without pending blocks
        pending = latest
    return max(latest, pending)


def _dry_run(
    client: ChainClient, market: TrainingMarket, consumer: str, terms: ProposalTerms
) -> None:
    """Call ``propose`` without sending it: any refusal of the market surfaces as its sentence
    before a token is approved. Taking the offer is its last step, so a dry run that fails only
    there (no approval yet) passed every other check."""
    fn = client.contract(market.address, market.ARTIFACT).functions.propose(terms.as_tuple())
    try:
        client.call(fn, action="propose", sender=consumer, block="pending")
    except ContractRevertError as exc:
        if not (exc.error_name in _PAYMENT_ERRORS or isinstance(exc, RevertReasonError)):
            raise


def _curate(
    assets: AssetRegistry,
    store: ContentStore,
    selection: Sequence[SelectedAsset | int],
    *,
    chain_id: int,
    from_block: int = 0,
) -> tuple[dict[int, PublicAsset], list[SelectedAsset]]:
    """Each selected asset's verified public record, and the chosen sample indexes (every
    sample the node accepted for a bare asset id), in asset order."""
    ordered = sorted(
        selection, key=lambda s: s.asset_id if isinstance(s, SelectedAsset) else int(s)
    )
    ids = [item.asset_id if isinstance(item, SelectedAsset) else int(item) for item in ordered]
    public = load_public_assets(assets, store, ids, chain_id=chain_id, from_block=from_block)
    chosen: list[SelectedAsset] = []
    for item, asset_id in zip(ordered, ids, strict=True):
        indexes = (
            item.indexes if isinstance(item, SelectedAsset) else accepted_indexes(public[asset_id])
        )
        chosen.append(SelectedAsset(asset_id, tuple(indexes)))
    return public, chosen


def _check_minimums(samples: Sequence[SelectedSample], least: int, providers: int) -> None:
    owners = {s.owner for s in samples}
    if len(samples) < least or len(owners) < providers:
        raise InvalidProposalError(
            f"the selection has {len(samples)} samples of {len(owners)} provider(s); the market "
            f"trains on at least {least} samples of at least {providers} providers, so that no "
            "one's images dominate what the model reveals: select more"
        )


@dataclass(frozen=True, slots=True)
class CheckedProposal:
    """A proposal document that agrees with the chain, with its samples resolved."""

    proposal_id: int
    cid: Cid
    parsed: ParsedProposal
    samples: tuple[SelectedSample, ...]
    public: Mapping[int, PublicAsset]

    @property
    def document(self) -> TrainingProposal:
        return self.parsed.proposal


def load_checked_proposal(
    market: TrainingMarket,
    deployment: Deployment,
    client: ChainClient,
    store: ContentStore,
    proposal_id: int,
) -> CheckedProposal:
    """Fetch proposal ``proposal_id``'s document and check it against ``ProposalCreated``.

    Raises :class:`~visdm.errors.InvalidProposalError` naming every disagreement, and
    :class:`~visdm.errors.SignatureError` when the consumer did not sign it.
    """
    events = market.logs("ProposalCreated", where={"proposalId": proposal_id})
    if not events:
        raise InvalidProposalError(f"proposal {proposal_id} does not exist on this market")
    args = events[0]["args"]
    cid = Cid(args["proposalCid"])
    try:
        raw = store.get(cid, max_bytes=MAX_PROPOSAL_BYTES)
    except BlobTooLargeError as exc:
        raise InvalidProposalError(f"proposal {proposal_id}'s document: {exc}") from None
    parsed = verify_proposal(raw, chain_id=client.chain_id, market=market.address)
    doc = parsed.proposal
    public = load_public_assets(
        deployment.asset_registry(client),
        store,
        [a.asset_id for a in doc.selection],
        chain_id=client.chain_id,
        from_block=_registry_block(deployment),
    )
    samples = resolve_selection(doc.selection, public)
    checks = [
        ("consumer", doc.consumer, to_checksum_address(args["consumer"])),
        ("node", doc.node, to_checksum_address(args["node"])),
        ("offer", doc.offer, int(args["offer"])),
        ("wtpBps", doc.wtp_bps, int(args["wtpBps"])),
        ("minShareBps", doc.min_share_bps, int(args["minShareBps"])),
        ("votingDeadline", doc.voting_deadline, int(args["votingDeadline"])),
        ("modelSpecHash", doc.model_spec_hash, bytes(args["modelSpecHash"])),
        ("validationSetHash", doc.validation.plaintext_hash, bytes(args["validationSetHash"])),
        ("selectionRoot", doc.selection_root, bytes(args["selectionRoot"])),
        ("selectionRoot (recomputed)", selection_root(samples), bytes(args["selectionRoot"])),
        (
            "assetsHash",
            market.assets_hash_of(doc.asset_ids, doc.sample_counts),
            bytes(args["assetsHash"]),
        ),
        ("assetsRoot", market.assets_root_of(doc.asset_ids), bytes(args["assetsRoot"])),
    ]
    problems = [
        f"{name} is {_show(mine)} in the document but {_show(chain)} on chain"
        for name, mine, chain in checks
        if mine != chain
    ]
    if problems:
        raise InvalidProposalError(
            f"proposal {proposal_id}'s document {cid} disagrees with the chain: "
            + "; ".join(problems)
        )
    return CheckedProposal(proposal_id, cid, parsed, tuple(samples), public)


def _registry_block(deployment: Deployment) -> int:
    """The block the AssetRegistry was deployed in: no asset event is older."""
    deployed = deployment.contracts.get("AssetRegistry")
    return deployed.block_number if deployed is not None else 0


def _show(value: object) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)
