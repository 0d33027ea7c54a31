"""The training proposal document: values, XML writer, hardened parser, hash and signature.

``proposal_hash = keccak256(C14N2(document without <signature>))``, exactly as for asset
manifests. The consumer signs ``TrainingProposal(bytes32 proposalHash, address consumer,
address node)`` in the market's EIP-712 domain, so a proposal signed for another chain, market,
consumer or node does not verify. The signature is embedded as the last element, so the
proposal stays one blob and one CID (the ``proposalCid`` of ``ProposalCreated``).

A local key signs with :func:`sign_proposal`; a browser wallet signs
:func:`proposal_typed_data` (what ``eth_signTypedData_v4`` takes) and
:func:`attach_proposal_signature` embeds its signature once it recovers to the consumer. Both
end in the same signed XML.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, cast

from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak
from lxml import etree

from visdm.crypto import recover_typed, sign_typed, verify_typed
from visdm.errors import InvalidProposalError, SignatureError
from visdm.labels import label_key
from visdm.market.quotes import market_domain
from visdm.types import Address, Cid
from visdm.xmlsafe import canonical_xml, load_schema, parse_untrusted_xml, validate_xml

__all__ = [
    "MAX_PROPOSAL_BYTES",
    "PROPOSAL_NAMESPACE",
    "PROPOSAL_TYPES",
    "ParsedProposal",
    "SelectedAsset",
    "TrainingProposal",
    "ValidationSetRef",
    "attach_proposal_signature",
    "parse_proposal",
    "proposal_hash",
    "proposal_typed_data",
    "sign_proposal",
    "verify_proposal",
    "write_proposal",
]

PROPOSAL_NAMESPACE = "urn:visdm:training-proposal:1"
MAX_PROPOSAL_BYTES = 16 * 1024 * 1024
_NS = f"{{{PROPOSAL_NAMESPACE}}}"
PROPOSAL_TYPES = {
    "TrainingProposal": [
        {"name": "proposalHash", "type": "bytes32"},
        {"name": "consumer", "type": "address"},
        {"name": "node", "type": "address"},
    ]
}


@dataclass(frozen=True, slots=True)
class SelectedAsset:
    """The samples chosen from one asset, by their index in the asset's manifest."""

    asset_id: int
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ValidationSetRef:
    """Where the encrypted validation set is, what its plaintext hashes to, and its key."""

    cid: Cid
    plaintext_hash: bytes
    samples: int
    wrapped_key: bytes


@dataclass(frozen=True, slots=True)
class TrainingProposal:
    """Everything a consumer proposes; ``classes[i]`` is the label the model calls class ``i``."""

    chain_id: int
    market: Address
    consumer: Address
    node: Address
    created_at: int
    offer: int
    wtp_bps: int
    voting_deadline: int
    classes: tuple[str, ...]
    model_spec_json: bytes
    model_spec_hash: bytes
    validation: ValidationSetRef
    selection: tuple[SelectedAsset, ...]
    selection_root: bytes
    min_share_bps: int = 0
    version: int = 1

    def __post_init__(self) -> None:
        problems = []
        for name in ("market", "consumer", "node"):
            if not is_checksum_address(getattr(self, name)):
                problems.append(f"{name} {getattr(self, name)!r} is not a checksummed address")
        if not 0 <= self.wtp_bps <= 10_000:
            problems.append(f"wtpBps {self.wtp_bps} is outside 0..10000")
        if not 0 <= self.min_share_bps <= 10_000:
            problems.append(f"minShareBps {self.min_share_bps} is outside 0..10000")
        if len({label_key(c) for c in self.classes}) != len(self.classes):
            problems.append("class names repeat (letter case and Unicode forms count as the same)")
        ids = [a.asset_id for a in self.selection]
        if not self.selection:
            problems.append("the selection is empty")
        if ids != sorted(set(ids)):
            problems.append("selected asset ids must be strictly increasing")
        for asset in self.selection:
            if not asset.indexes:
                problems.append(f"asset {asset.asset_id}: no sample selected")
            if list(asset.indexes) != sorted(set(asset.indexes)):
                problems.append(f"asset {asset.asset_id}: indexes must be strictly increasing")
        if keccak(self.model_spec_json) != self.model_spec_hash:
            problems.append("modelSpec hash is not keccak256 of the spec's canonical JSON")
        if problems:
            raise InvalidProposalError("invalid proposal: " + "; ".join(problems))

    @property
    def sample_counts(self) -> tuple[int, ...]:
        return tuple(len(a.indexes) for a in self.selection)

    @property
    def asset_ids(self) -> tuple[int, ...]:
        return tuple(a.asset_id for a in self.selection)

    @property
    def validation_aad(self) -> bytes:
        """What binds the sealed validation set to this proposal (:func:`validation_aad`)."""
        from ._validation import validation_aad

        return validation_aad(
            chain_id=self.chain_id,
            market=self.market,
            consumer=self.consumer,
            node=self.node,
            selection_root=self.selection_root,
            model_spec_hash=self.model_spec_hash,
        )


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, _NS + tag, attrib=attrs)
    if text is not None:
        element.text = text
    return element


def _build(p: TrainingProposal, signature: bytes | None) -> etree._Element:
    root = etree.Element(
        _NS + "trainingProposal",
        nsmap=cast(Any, {None: PROPOSAL_NAMESPACE}),
        version=str(p.version),
    )
    _sub(root, "market", chainId=str(p.chain_id), address=p.market)
    _sub(root, "consumer", p.consumer)
    _sub(root, "node", p.node)
    _sub(root, "createdAt", str(p.created_at))
    _sub(
        root,
        "terms",
        offer=str(p.offer),
        wtpBps=str(p.wtp_bps),
        minShareBps=str(p.min_share_bps),
        votingDeadline=str(p.voting_deadline),
    )
    classes = _sub(root, "classes")
    for name in p.classes:
        _sub(classes, "class", name)
    _sub(root, "modelSpec", p.model_spec_json.decode(), hash="0x" + p.model_spec_hash.hex())
    validation = _sub(
        root,
        "validationSet",
        cid=p.validation.cid,
        hash="0x" + p.validation.plaintext_hash.hex(),
        samples=str(p.validation.samples),
    )
    _sub(validation, "wrappedKey", base64.b64encode(p.validation.wrapped_key).decode())
    selection = _sub(root, "selection", root="0x" + p.selection_root.hex())
    for asset in p.selection:
        _sub(
            selection,
            "asset",
            " ".join(map(str, asset.indexes)),
            id=str(asset.asset_id),
            count=str(len(asset.indexes)),
        )
    if signature is not None:
        _sub(root, "signature", "0x" + signature.hex())
    return root


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    xsd = resources.files("visdm.proposals").joinpath("training-proposal.xsd").read_bytes()
    return load_schema(xsd)


def _validate(root: etree._Element) -> None:
    validate_xml(
        root,
        _schema(),
        what="proposal",
        schema_name="training-proposal schema (version 1)",
        namespace=PROPOSAL_NAMESPACE,
        error=InvalidProposalError,
    )


def write_proposal(p: TrainingProposal, *, signature: bytes | None = None) -> bytes:
    """The proposal as UTF-8 XML; checked against the schema before it is returned."""
    root = _build(p, signature)
    _validate(root)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


def proposal_hash(p: TrainingProposal) -> bytes:
    """``keccak256`` of the C14N 2.0 form of the unsigned document."""
    return bytes(keccak(canonical_xml(_build(p, None))))


@dataclass(frozen=True, slots=True)
class ParsedProposal:
    """A proposal read from XML, its embedded signature and the hash that signature covers."""

    proposal: TrainingProposal
    signature: bytes | None
    proposal_hash: bytes


def _text(element: etree._Element | None) -> str:
    return "" if element is None or element.text is None else element.text.strip()


def _address(text: str, what: str) -> Address:
    if not is_checksum_address(text):
        raise InvalidProposalError(f"proposal {what} {text!r} is not an EIP-55 checksummed address")
    return Address(to_checksum_address(text))


def _read(root: etree._Element) -> TrainingProposal:
    ns = _NS

    def one(tag: str) -> etree._Element:
        element = root.find(ns + tag)
        if element is None:  # the schema requires each; checked rather than assumed
            raise InvalidProposalError(f"proposal has no <{tag}> element")
        return element

    market, terms, validation, selection = (
        one(t) for t in ("market", "terms", "validationSet", "selection")
    )
    assets = []
    for element in selection.iter(ns + "asset"):
        indexes = tuple(int(i) for i in (element.text or "").split())
        if int(element.get("count", "0")) != len(indexes):
            raise InvalidProposalError(
                f"proposal line {element.sourceline}: asset {element.get('id')} says "
                f"count={element.get('count')} but lists {len(indexes)} indexes"
            )
        assets.append(SelectedAsset(int(element.get("id", "0")), indexes))
    try:
        wrapped = base64.b64decode("".join(_text(one("validationSet")[0]).split()), validate=True)
    except (binascii.Error, ValueError, IndexError):
        raise InvalidProposalError("proposal's validationSet wrappedKey is not base64") from None
    spec = one("modelSpec")
    return TrainingProposal(
        chain_id=int(market.get("chainId", "0")),
        market=_address(market.get("address", ""), "market"),
        consumer=_address(_text(one("consumer")), "consumer"),
        node=_address(_text(one("node")), "node"),
        created_at=int(_text(one("createdAt"))),
        offer=int(terms.get("offer", "0")),
        wtp_bps=int(terms.get("wtpBps", "0")),
        min_share_bps=int(terms.get("minShareBps", "0")),
        voting_deadline=int(terms.get("votingDeadline", "0")),
        classes=tuple(_text(c) for c in one("classes").iter(ns + "class")),
        model_spec_json=(spec.text or "").encode(),
        model_spec_hash=bytes.fromhex(spec.get("hash", "0x")[2:]),
        validation=ValidationSetRef(
            cid=Cid(validation.get("cid", "")),
            plaintext_hash=bytes.fromhex(validation.get("hash", "0x")[2:]),
            samples=int(validation.get("samples", "0")),
            wrapped_key=wrapped,
        ),
        selection=tuple(assets),
        selection_root=bytes.fromhex(selection.get("root", "0x")[2:]),
        version=int(root.get("version", "0")),
    )


def parse_proposal(data: bytes, *, max_bytes: int = MAX_PROPOSAL_BYTES) -> ParsedProposal:
    """Parse untrusted proposal bytes (hardened, see :mod:`visdm.xmlsafe`) and check its rules.

    Raises :class:`~visdm.errors.InvalidProposalError` naming the problem.
    """
    tree = parse_untrusted_xml(
        data, what="proposal", max_bytes=max_bytes, error=InvalidProposalError
    )
    root = tree.getroot()
    _validate(root)
    signature_element = root.find(_NS + "signature")
    signature = None
    if signature_element is not None:
        signature = bytes.fromhex(_text(signature_element)[2:])
        root.remove(signature_element)
    return ParsedProposal(_read(root), signature, bytes(keccak(canonical_xml(root))))


def _message(digest: bytes, p: TrainingProposal) -> dict[str, object]:
    return {"proposalHash": digest, "consumer": p.consumer, "node": p.node}


#: the EIP-712 domain's fields as a wallet's typed data declares them (always all four)
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def proposal_typed_data(p: TrainingProposal) -> dict[str, Any]:
    """The EIP-712 typed data a consumer signs for ``p``, as JSON for ``eth_signTypedData_v4``
    (the hash as 0x-hex): exactly what :func:`sign_proposal` signs."""
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS, **PROPOSAL_TYPES},
        "primaryType": "TrainingProposal",
        "domain": market_domain(p.chain_id, p.market).as_dict(),
        "message": {**_message(b"", p), "proposalHash": "0x" + proposal_hash(p).hex()},
    }


def attach_proposal_signature(p: TrainingProposal, signature: bytes) -> bytes:
    """The signed XML of ``p`` with ``signature`` embedded, once it recovers to ``p``'s
    consumer. Raises :class:`~visdm.errors.SignatureError` naming both addresses otherwise
    (another key, or a signature over another document)."""
    domain = market_domain(p.chain_id, p.market)
    message = _message(proposal_hash(p), p)
    signer = recover_typed(signature, domain, PROPOSAL_TYPES, "TrainingProposal", message)
    if signer != p.consumer:
        raise SignatureError(
            f"the proposal's signature recovers to {signer}, not to the proposal's consumer "
            f"{p.consumer}: sign it with the consumer's key; nothing was stored"
        )
    return write_proposal(p, signature=signature)


def sign_proposal(p: TrainingProposal, private_key: bytes) -> bytes:
    """Sign ``p`` as its consumer; returns the signed XML. Refuses anyone else's key."""
    domain = market_domain(p.chain_id, p.market)
    message = _message(proposal_hash(p), p)
    signature = sign_typed(private_key, domain, PROPOSAL_TYPES, "TrainingProposal", message)
    return attach_proposal_signature(p, signature)


def verify_proposal(data: bytes | ParsedProposal, *, chain_id: int, market: str) -> ParsedProposal:
    """Parse (if needed) and check that the consumer signed exactly this document for this
    chain and market. Raises :class:`~visdm.errors.SignatureError` otherwise."""
    parsed = data if isinstance(data, ParsedProposal) else parse_proposal(data)
    p = parsed.proposal
    if parsed.signature is None:
        raise SignatureError(f"proposal of {p.consumer} is not signed: it has no <signature>")
    if p.chain_id != chain_id or str(p.market) != str(to_checksum_address(market)):
        raise SignatureError(
            f"proposal is for market {p.market} on chain {p.chain_id}, not {market} on "
            f"chain {chain_id}"
        )
    verify_typed(
        parsed.signature,
        market_domain(chain_id, market),
        PROPOSAL_TYPES,
        "TrainingProposal",
        _message(parsed.proposal_hash, p),
        expected_signer=p.consumer,
    )
    return parsed
