"""Reading the public documents the chain points to, trusting nothing but the chain.

Four kinds of document reach the index through a CID in an event:

* the **metadata document** of an asset (``MetadataAttested.metadataCid``, written by
  :class:`visdm.metadata.AssetMetadata`): accepted only if its keccak256 equals the
  ``metadataHash`` attested on chain, then checked field by field;
* the **proposal document** (``ProposalCreated.proposalCid``, the consumer's signed XML): accepted
  only if the consumer signed it for this chain and market and it agrees with every term the
  event commits — above all its selection, whose ``(assetId, sampleCount)`` hash chain must be
  the ``assetsHash`` and whose ``(position, assetId)`` tree must be the ``assetsRoot`` that
  claims are proven against;
* the **result document** of a training round (``ResultSubmitted.resultCid``): it has no hash
  of its own on chain, so it is accepted only if it agrees with every value the event and the
  proposal *do* commit — proposal id, accuracy, WTP outcome, consumer fault, seed hash, node,
  model hash, the payout tree's Merkle root and the escrowed price its leaves must add up to;
  its model card (:func:`visdm.training._card.card_from_result`) must agree with itself, with the
  document and with the chain's accuracy (and spec hash, where the caller passes it);
* the **scores blob** the result names (``scores.cid``): accepted only if its keccak256 equals
  the event's ``scoresHash``; each row's ``evidence`` for a ``noisy`` flag is checked field by
  field (:mod:`._evidence`).

Whatever fails a check raises :class:`DocumentError` with the reason; the indexer records the
reason beside the asset or proposal and goes on (a bad document is data, never a crash).
Unknown extra keys are ignored so that a newer writer does not break an older index.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import load_untrusted_object
from visdm.merkle import PositionalMerkleTree, StandardMerkleTree
from visdm.training._card import ModelCard, card_from_result

from ._evidence import FlagEvidence, read_evidence

__all__ = [
    "KNOWN_FLAGS",
    "PAYOUT_LEAF_ENCODING",
    "SELECTION_ASSET_LEAF",
    "DocumentError",
    "DocumentUnavailableError",
    "LinkRow",
    "MetadataDocument",
    "PayoutLeaf",
    "ProposalDocument",
    "ResultDocument",
    "SampleRow",
    "ScoreRow",
    "check_proposal",
    "one_line",
    "parse_metadata",
    "parse_result",
    "parse_scores",
]

#: the metadata document format this index reads (see :data:`visdm.metadata.METADATA_FORMAT`)
METADATA_FORMAT = "visdm-metadata/1"
RESULT_KIND = "visdm-training-result"
#: the payout tree's leaves: (position, assetId, amount), as :func:`visdm.valuation.payout_tree`
PAYOUT_LEAF_ENCODING = ("uint256", "uint256", "uint256")
#: the leaves of a proposal's ``assetsRoot``: (position, assetId), as ``TrainingMarket`` builds it
SELECTION_ASSET_LEAF = ("uint256", "uint256")
#: flags a valuation may put on a sample; others are kept verbatim but not filterable
KNOWN_FLAGS = ("noisy", "copied", "duplicate")
#: the largest value of a ``BIGINT`` / ``INTEGER`` column (both backends)
BIGINT_MAX = 2**63 - 1
INTEGER_MAX = 2**31 - 1
#: a selection holds at most 2**32 - 1 assets (``TrainingMarket.propose``)
MAX_POSITION = 2**32 - 2
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_PHASH = re.compile(r"^[0-9a-f]{16}$")
_MAX_LABEL = 64


class DocumentError(ValueError):
    """A document is missing a field, malformed, or disagrees with the chain (internal: the
    indexer records the message, it never reaches a user as an exception)."""


def one_line(error: BaseException | str) -> str:
    """An error message on one line (an XML parser's messages carry their own line breaks)."""
    return " ".join(str(error).split())


class DocumentUnavailableError(Exception):
    """A document cannot be read now (not in the store, or the store is down): retried later
    (internal, like :class:`DocumentError`)."""


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One described sample of an asset's metadata document."""

    index: int
    sample_id: str
    label: str
    width: int
    height: int
    channels: int
    mode: str
    format: str | None
    byte_size: int | None
    phash: str
    brightness: float
    contrast: float
    blur: float


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A near-duplicate link: ``sample_id`` is within ``distance`` bits of ``other_id``."""

    sample_id: str
    other_id: str
    distance: int


@dataclass(frozen=True, slots=True)
class MetadataDocument:
    """The checked content of a metadata document."""

    radius: int
    samples: tuple[SampleRow, ...]
    links: tuple[LinkRow, ...]
    rejected: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class PayoutLeaf:
    """One leaf of a payout tree: selection ``position`` of ``asset_id`` is paid ``amount``,
    which a claim credits to the asset's ``owner``."""

    position: int
    asset_id: int
    owner: str
    amount: int


@dataclass(frozen=True, slots=True)
class ResultDocument:
    """The checked content of a result document."""

    epsilon_spent: float | None
    model_cid: str | None
    scores_cid: str | None
    #: the payout tree's leaves in position order; empty without payouts
    payouts: tuple[PayoutLeaf, ...]
    #: why the consumer's input was unusable (``consumerFault`` results only)
    fault_reason: str | None = None
    #: the checked model card (``None`` when the document has none)
    model_card: ModelCard | None = None


@dataclass(frozen=True, slots=True)
class ProposalDocument:
    """The checked selection of a proposal document: ``(asset id, sample count)`` in proposal
    order, so position ``i`` is ``selection[i]``."""

    selection: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One sample's value in one round."""

    asset_id: int
    index: int
    sample_id: str
    provider: str
    value: float
    cluster_founder: str | None
    cluster_size: int | None
    flags: tuple[str, ...]
    #: the witnesses published for the ``noisy`` flag (``None``: none published)
    evidence: FlagEvidence | None = None


# ----------------------------------------------------------------------------- field checks


def _json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{what} is not JSON: {exc}") from None
    try:  # the store already bounded the size; nesting, keys and values are checked here
        return load_untrusted_object(text, what=what, max_bytes=len(raw), hint="it is skipped")
    except InvalidInputError as exc:
        raise DocumentError(str(exc)) from None


def _int(
    data: Mapping[str, Any], key: str, where: str, *, low: int = 0, high: int = BIGINT_MAX
) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise DocumentError(f"{where}: {key} must be an integer ≥ {low}, got {value!r}")
    if value > high:  # the column it goes to would overflow
        raise DocumentError(f"{where}: {key} must be at most {high}, got {value}")
    return value


def _opt_int(data: Mapping[str, Any], key: str, where: str, *, low: int = 0) -> int | None:
    return None if data.get(key) is None else _int(data, key, where, low=low)


def _float(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise DocumentError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise DocumentError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _hex32(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _HEX32.match(value):
        raise DocumentError(f"{where}: {key} must be 0x and 64 hex digits, got {value!r}")
    return value.lower()


def _address(value: Any, where: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise DocumentError(f"{where} must be an Ethereum address, got {value!r}")
    return str(to_checksum_address(value))


def _object(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DocumentError(f"{where}: {key} must be an object or null")
    return value


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise DocumentError(f"{where}: {key} must be a list")
    return value


def _hash_matches(raw: bytes, expected: bytes, what: str, committed: str) -> None:
    actual = bytes(keccak(raw))
    if actual != expected:
        raise DocumentError(
            f"{what}: its keccak256 0x{actual.hex()} differs from the {committed} "
            f"0x{expected.hex()} on chain"
        )


# ----------------------------------------------------------------------------- metadata


def parse_metadata(
    raw: bytes, *, metadata_hash: bytes, manifest_hash: bytes | None, sample_count: int
) -> MetadataDocument:
    """Check a metadata document against the chain and read its samples, links and rejects."""
    _hash_matches(raw, metadata_hash, "metadata document", "attested metadata hash")
    data = _json(raw, "metadata document")
    if data.get("format") != METADATA_FORMAT:
        raise DocumentError(
            f"metadata document has format {data.get('format')!r}, expected {METADATA_FORMAT!r}"
        )
    if manifest_hash is not None:
        claimed = _hex32(data, "manifestHash", "metadata document")
        if claimed != "0x" + manifest_hash.hex():
            raise DocumentError(
                f"metadata document describes manifest {claimed}, but the asset registered "
                f"0x{manifest_hash.hex()}"
            )
    radius = _int(data, "duplicateRadius", "metadata document", high=INTEGER_MAX)
    samples: list[SampleRow] = []
    seen: set[int] = set()
    for position, item in enumerate(_list(data, "samples", "metadata document")):
        sample = _sample_row(item, f"metadata sample #{position}", sample_count)
        if sample.index in seen:
            raise DocumentError(
                f"metadata sample #{position}: sample index {sample.index} is described twice"
            )
        seen.add(sample.index)
        samples.append(sample)
    links = [
        _link_row(item, f"duplicate link #{position}")
        for position, item in enumerate(_list(data, "duplicateLinks", "metadata document"))
    ]
    rejected = []
    for position, item in enumerate(_list(data, "rejected", "metadata document")):
        if not isinstance(item, dict):
            raise DocumentError(f"rejected sample #{position} is not an object")
        index = _int(item, "index", f"rejected sample #{position}")
        rejected.append((index, str(item.get("reason", ""))))
    return MetadataDocument(radius, tuple(samples), tuple(links), tuple(rejected))


def _sample_row(item: object, where: str, sample_count: int) -> SampleRow:
    if not isinstance(item, dict):
        raise DocumentError(f"{where} is not an object")
    index = _int(item, "index", where)
    if index >= sample_count:
        raise DocumentError(f"{where}: index {index} is outside the asset's {sample_count} samples")
    label = _str(item, "label", where)
    if len(label) > _MAX_LABEL:
        raise DocumentError(f"{where}: label is over {_MAX_LABEL} characters")
    phash = item.get("phash")
    if not isinstance(phash, str) or not _PHASH.match(phash):
        raise DocumentError(f"{where}: phash must be 16 lower-case hex digits, got {phash!r}")
    fmt = item.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise DocumentError(f"{where}: format must be a string or null")
    return SampleRow(
        index=index,
        sample_id=_hex32(item, "sampleId", where),
        label=label,
        width=_int(item, "width", where, low=1),
        height=_int(item, "height", where, low=1),
        channels=_int(item, "channels", where, low=1, high=INTEGER_MAX),
        mode=_str(item, "mode", where),
        format=fmt.upper() if fmt else None,
        byte_size=_opt_int(item, "byteSize", where),
        phash=phash,
        brightness=_float(item, "brightness", where),
        contrast=_float(item, "contrast", where),
        blur=_float(item, "blur", where),
    )


def _link_row(item: object, where: str) -> LinkRow:
    if not isinstance(item, dict):
        raise DocumentError(f"{where} is not an object")
    distance = _int(item, "distance", where)
    if distance > 64:
        raise DocumentError(f"{where}: distance {distance} is over 64 bits")
    a, b = _hex32(item, "sampleId", where), _hex32(item, "otherId", where)
    if a == b:
        raise DocumentError(f"{where} links {a} to itself")
    return LinkRow(a, b, distance)


# ----------------------------------------------------------------------------- proposals


def check_proposal(
    raw: bytes, *, chain_id: int, market: str, committed: Mapping[str, Any]
) -> ProposalDocument:
    """Check a proposal document against its ``ProposalCreated`` event and read its selection.

    ``committed`` holds the event's terms as the index stores them: ``consumer``, ``node``
    (checksummed), ``offer`` (decimal text), ``wtpBps``, ``votingDeadline``, ``totalWeight``
    (integers) and ``assetsHash``, ``assetsRoot``, ``selectionRoot``, ``modelSpecHash``,
    ``validationSetHash`` (``0x`` hex).
    """
    from visdm.proposals import verify_proposal

    try:
        doc = verify_proposal(raw, chain_id=chain_id, market=market).proposal
    except VisdmError as exc:
        raise DocumentError(f"proposal document does not verify: {one_line(exc)}") from None
    selection = tuple((a.asset_id, len(a.indexes)) for a in doc.selection)
    chain_link = bytes(32)
    for asset_id, count in selection:
        chain_link = bytes(
            keccak(abi_encode(["bytes32", "uint256", "uint32"], [chain_link, asset_id, count]))
        )
    assets_root = PositionalMerkleTree(
        [(position, asset_id) for position, (asset_id, _) in enumerate(selection)],
        SELECTION_ASSET_LEAF,
    ).root
    checks = [
        ("consumer", doc.consumer, committed["consumer"]),
        ("node", doc.node, committed["node"]),
        ("offer", str(doc.offer), str(committed["offer"])),
        ("wtpBps", doc.wtp_bps, int(committed["wtpBps"])),
        ("votingDeadline", doc.voting_deadline, int(committed["votingDeadline"])),
        ("modelSpecHash", _hex(doc.model_spec_hash), committed["modelSpecHash"]),
        ("validationSetHash", _hex(doc.validation.plaintext_hash), committed["validationSetHash"]),
        ("selectionRoot", _hex(doc.selection_root), committed["selectionRoot"]),
        ("selected weight", sum(c for _, c in selection), int(committed["totalWeight"])),
        ("assetsHash (of its selection)", _hex(chain_link), committed["assetsHash"]),
        ("assetsRoot (of its selection)", _hex(assets_root), committed["assetsRoot"]),
    ]
    problems = [
        f"{name} is {mine} in the document but {chain} on chain"
        for name, mine, chain in checks
        if mine != chain
    ]
    if problems:
        raise DocumentError("proposal document disagrees with the chain: " + "; ".join(problems))
    return ProposalDocument(selection)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


# ----------------------------------------------------------------------------- results


def parse_result(
    raw: bytes,
    *,
    proposal_id: int,
    accuracy_bps: int,
    wtp_met: bool,
    model_hash: bytes,
    payout_root: bytes,
    node: str | None,
    consumer_fault: bool = False,
    seed_hash: bytes | None = None,
    price: int | None = None,
    owner_of: Callable[[int], str | None] | None = None,
    model_spec_hash: bytes | None = None,
) -> ResultDocument:
    """Check a result document against ``ResultSubmitted`` and its proposal.

    ``price`` is the escrowed data price the payout leaves must add up to, ``owner_of``
    names the owner of a registered asset (``None``: unknown), and ``model_spec_hash`` is the
    proposal's spec hash its model card must be of; without them those checks are skipped and
    every leaf's owner is left empty.
    """
    data = _json(raw, "result document")
    where = "result document"
    if data.get("version") != 1 or data.get("kind") != RESULT_KIND:
        raise DocumentError(
            f"{where} is not a version 1 {RESULT_KIND!r} document (version "
            f"{data.get('version')!r}, kind {data.get('kind')!r})"
        )
    mismatches = []
    if _int(data, "proposalId", where) != proposal_id:
        mismatches.append(f"proposalId {data['proposalId']} (the event says {proposal_id})")
    if _int(data, "accuracyBps", where) != accuracy_bps:
        mismatches.append(f"accuracyBps {data['accuracyBps']} (the event says {accuracy_bps})")
    if data.get("wtpMet") is not wtp_met:
        mismatches.append(f"wtpMet {data.get('wtpMet')!r} (the event says {wtp_met})")
    fault = data.get("consumerFault")
    if bool(fault) is not consumer_fault:
        mismatches.append(f"consumerFault {fault!r} (the event says {consumer_fault})")
    seed = data.get("seedHash")
    if seed is not None and seed_hash is not None:
        claimed_seed = _hex32(data, "seedHash", where)
        if claimed_seed != _hex(seed_hash):
            mismatches.append(f"seedHash {claimed_seed} (the event says {_hex(seed_hash)})")
    author = _address(data.get("node"), f"{where}: node")
    if node is not None and author != node:
        mismatches.append(f"node {author} (the proposal's node is {node})")
    model = _object(data, "model", where)
    model_cid = None
    if model is not None:
        model_cid = _str(model, "cid", f"{where}: model")
        claimed = _hex32(model, "modelHash", f"{where}: model")
        if claimed != _hex(model_hash):
            mismatches.append(f"modelHash {claimed} (the event says {_hex(model_hash)})")
    if mismatches:
        raise DocumentError(f"{where} disagrees with the chain: " + "; ".join(mismatches))
    epsilon = None if data.get("epsilonSpent") is None else _float(data, "epsilonSpent", where)
    if epsilon is not None and epsilon < 0:
        raise DocumentError(f"{where}: epsilonSpent must not be negative, got {epsilon}")
    scores = _object(data, "scores", where)
    scores_cid = None if scores is None else _str(scores, "cid", f"{where}: scores")
    payouts = _payouts(
        _object(data, "payouts", where), payout_root, where, price=price, owner_of=owner_of
    )
    reason = fault if isinstance(fault, str) and fault else None
    card = _model_card(data, accuracy_bps, model_spec_hash, where)
    return ResultDocument(epsilon, model_cid, scores_cid, payouts, reason, card)


def _model_card(
    data: dict[str, Any], accuracy_bps: int, model_spec_hash: bytes | None, where: str
) -> ModelCard | None:
    try:
        return card_from_result(
            data,
            accuracy_bps=accuracy_bps,
            model_spec_hash=model_spec_hash,
            what=f"{where}: modelCard",
        )
    except InvalidInputError as exc:
        raise DocumentError(one_line(exc)) from None


def _decimal(value: Any, what: str) -> int:
    text = str(value)
    if not text.isdigit():
        raise DocumentError(f"{what} {value!r} is not a whole number")
    return int(text)


def _payouts(
    data: dict[str, Any] | None,
    payout_root: bytes,
    where: str,
    *,
    price: int | None,
    owner_of: Callable[[int], str | None] | None,
) -> tuple[PayoutLeaf, ...]:
    if data is None:
        return ()
    leaves = _leaves(_payout_tree(data, payout_root, where), where, owner_of)
    total = sum(leaf.amount for leaf in leaves)
    if price is not None and total != price:
        raise DocumentError(
            f"{where}: the payout leaves pay {total} in all, the proposal's escrowed price is "
            f"{price}"
        )
    assets = data.get("assets")
    if not isinstance(assets, dict):
        raise DocumentError(f"{where}: payouts.assets must be an object of asset id → amount")
    stated_assets = {
        _decimal(asset, f"{where}: payout asset id"): _decimal(
            amount, f"{where}: payout amount of asset {asset}"
        )
        for asset, amount in assets.items()
    }
    in_tree = {leaf.asset_id: leaf.amount for leaf in leaves if leaf.amount}
    if {a: v for a, v in stated_assets.items() if v} != in_tree:
        raise DocumentError(f"{where}: payouts.assets disagree with the payout tree's leaves")
    amounts = data.get("amounts")
    if not isinstance(amounts, dict):
        raise DocumentError(f"{where}: payouts.amounts must be an object of address → amount")
    stated = {
        _address(account, f"{where}: payout account"): value
        for account, amount in amounts.items()
        if (value := _decimal(amount, f"{where}: payout amount of {account}"))
    }
    if owner_of is not None:
        # a provider is paid through the leaves of the assets it owns
        per_owner: dict[str, int] = {}
        for leaf in leaves:
            if leaf.amount:
                per_owner[leaf.owner] = per_owner.get(leaf.owner, 0) + leaf.amount
        if stated != per_owner:
            raise DocumentError(
                f"{where}: payouts.amounts disagree with the payout tree's leaves summed per "
                "asset owner"
            )
    return leaves


def _payout_tree(data: Mapping[str, Any], payout_root: bytes, where: str) -> StandardMerkleTree:
    dump = data.get("tree")
    if not isinstance(dump, dict):
        raise DocumentError(f"{where}: payouts.tree must be a Merkle tree dump")
    encoding = dump.get("leafEncoding")
    if encoding != list(PAYOUT_LEAF_ENCODING):
        # checked before loading: the loader hands the type names to the ABI encoder
        shown = repr(encoding)
        raise DocumentError(
            f"{where}: payout leaves are {shown if len(shown) <= 60 else shown[:57] + '...'}, "
            f"expected {list(PAYOUT_LEAF_ENCODING)} (position, assetId, amount)"
        )
    try:
        tree = StandardMerkleTree.load(dump)
    except VisdmError as exc:
        raise DocumentError(f"{where}: payouts.tree does not load: {exc}") from None
    if tree.leaf_encoding != PAYOUT_LEAF_ENCODING:
        raise DocumentError(
            f"{where}: payout leaves are {list(tree.leaf_encoding)}, expected "
            f"{list(PAYOUT_LEAF_ENCODING)} (position, assetId, amount)"
        )
    if tree.root != payout_root:
        raise DocumentError(
            f"{where}: the payout tree's root 0x{tree.root.hex()} differs from the payout root "
            f"0x{payout_root.hex()} on chain"
        )
    return tree


def _leaves(
    tree: StandardMerkleTree, where: str, owner_of: Callable[[int], str | None] | None
) -> tuple[PayoutLeaf, ...]:
    leaves: list[PayoutLeaf] = []
    positions: set[int] = set()
    assets: set[int] = set()
    # the tree validated, so each value is a uint256 (a number, or decimal or 0x text)
    numbers = (
        tuple(int(v, 0) if isinstance(v, str) else int(v) for v in value) for value in tree.values
    )
    for position, asset, amount in sorted(numbers):
        if position in positions:
            raise DocumentError(f"{where}: two payout leaves share selection position {position}")
        if asset in assets:
            raise DocumentError(f"{where}: asset {asset} has more than one payout leaf")
        if position > MAX_POSITION:
            raise DocumentError(
                f"{where}: a payout leaf pays selection position {position}, beyond any selection"
            )
        positions.add(position)
        assets.add(asset)
        owner = "" if owner_of is None else owner_of(asset) if asset <= BIGINT_MAX else None
        if owner is None:
            raise DocumentError(
                f"{where}: a payout leaf pays asset {asset}, which is not registered"
            )
        leaves.append(PayoutLeaf(position, asset, owner, amount))
    return tuple(leaves)


def parse_scores(raw: bytes, *, proposal_id: int, scores_hash: bytes) -> tuple[ScoreRow, ...]:
    """Check a scores blob against the event's ``scoresHash`` and read its samples."""
    _hash_matches(raw, scores_hash, "scores document", "scores hash")
    data = _json(raw, "scores document")
    where = "scores document"
    if data.get("version") != 1:
        raise DocumentError(f"{where} has version {data.get('version')!r}, expected 1")
    if _int(data, "proposalId", where) != proposal_id:
        raise DocumentError(
            f"{where} is for proposal {data['proposalId']}, the event is for {proposal_id}"
        )
    rows: list[ScoreRow] = []
    seen: set[tuple[int, int]] = set()
    for position, item in enumerate(_list(data, "samples", where)):
        at = f"score #{position}"
        if not isinstance(item, dict):
            raise DocumentError(f"{at} is not an object")
        key = (_int(item, "asset_id", at, low=1), _int(item, "index", at))
        if key in seen:
            raise DocumentError(f"{at}: asset {key[0]} sample {key[1]} is scored twice")
        seen.add(key)
        flags = item.get("flags", [])
        if not isinstance(flags, list) or not all(isinstance(f, str) and f for f in flags):
            raise DocumentError(f"{at}: flags must be a list of strings")
        founder = item.get("cluster_founder")
        try:
            evidence = read_evidence(item.get("evidence"))
        except ValueError as exc:
            raise DocumentError(f"{at}: evidence: {exc}") from None
        rows.append(
            ScoreRow(
                asset_id=key[0],
                index=key[1],
                sample_id=_hex32(item, "sample_id", at),
                provider=_address(item.get("provider"), f"{at}: provider"),
                value=_float(item, "value", at),
                cluster_founder=None if founder is None else _hex32(item, "cluster_founder", at),
                cluster_size=_opt_int(item, "cluster_size", at, low=1),
                flags=tuple(sorted(set(flags))),
                evidence=evidence,
            )
        )
    return tuple(rows)
