"""The documents the chain points to are checked field by field before anything is indexed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visdm.index._documents import (
    PAYOUT_LEAF_ENCODING,
    DocumentError,
    PayoutLeaf,
    check_proposal,
    parse_metadata,
    parse_result,
    parse_scores,
)
from visdm.merkle import StandardMerkleTree

from ._world import (
    CHAIN_ID,
    CONSUMER,
    CONTRACTS,
    NODE,
    PROVIDER,
    PROVIDER2,
    SPEC_JSON,
    STRANGER,
    VALIDATION_HASH,
    Image,
    World,
    assets_hash,
    assets_root,
)

pytestmark = pytest.mark.unit

SID = "0x" + "11" * 32
OTHER = "0x" + "22" * 32


def test_the_payout_leaf_matches_the_valuation() -> None:
    from visdm.valuation import PAYOUT_LEAF_ENCODING as VALUATION_LEAF

    assert tuple(VALUATION_LEAF) == PAYOUT_LEAF_ENCODING


def test_the_status_names_match_the_contract_wrapper() -> None:
    from visdm.chain.contracts import ProposalStatus
    from visdm.index._apply import PROPOSAL_STATUSES

    assert tuple(s.name.lower() for s in ProposalStatus) == PROPOSAL_STATUSES


def test_the_label_limit_matches_ingestion() -> None:
    from visdm.index._filters import MAX_LABEL_CHARS
    from visdm.ingest import MAX_LABEL_CHARS as INGEST_MAX

    assert MAX_LABEL_CHARS == INGEST_MAX


# ----------------------------------------------------------------------------- metadata


def _metadata() -> tuple[dict[str, Any], bytes]:
    w = World()
    asset = w.register(PROVIDER, ["cat", "dog"])
    raw = w.metadata(asset, [Image("cat"), Image("dog")], links=[((1, 1), (1, 0), 3)])
    return json.loads(raw), w.manifest_hashes[asset]


def _parse_metadata(doc: dict[str, Any], manifest: bytes, sample_count: int = 2) -> Any:
    raw = json.dumps(doc).encode()
    return parse_metadata(
        raw, metadata_hash=keccak(raw), manifest_hash=manifest, sample_count=sample_count
    )


def test_a_node_metadata_document_parses() -> None:
    doc, manifest = _metadata()
    parsed = _parse_metadata(doc, manifest)
    assert [s.label for s in parsed.samples] == ["cat", "dog"]
    assert parsed.samples[0].format == "PNG" and parsed.radius == 8
    assert parsed.links[0].distance == 3


def _break(path: str, value: Any) -> Any:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is KeyError:
            del target[last]
        else:
            target[int(last) if isinstance(target, list) else last] = value

    return apply


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_break("format", "visdm-metadata/2"), "format 'visdm-metadata/2'"),
        (_break("manifestHash", "0x" + "00" * 32), "describes manifest"),
        (_break("samples", {}), "samples must be a list"),
        (_break("samples.0", "cat"), "sample #0 is not an object"),
        (_break("samples.0.index", 2), "outside the asset's 2 samples"),
        (_break("samples.1.index", 0), "described twice"),
        (_break("samples.0.index", -1), "index must be an integer"),
        (_break("samples.0.label", ""), "label must be a non-empty string"),
        (_break("samples.0.label", "x" * 65), "over 64 characters"),
        (_break("samples.0.phash", "XYZ"), "phash must be 16"),
        (_break("samples.0.width", 0), "width must be an integer ≥ 1"),
        (_break("samples.0.width", 2**63), "width must be at most 9223372036854775807"),
        (_break("samples.0.channels", 2**31), "channels must be at most 2147483647"),
        (_break("duplicateRadius", 2**40), "duplicateRadius must be at most"),
        (_break("samples.0.brightness", "bright"), "brightness must be a finite number"),
        (_break("samples.0.blur", KeyError), "blur must be a finite number"),
        (_break("samples.0.sampleId", "0x12"), "sampleId must be 0x and 64 hex"),
        (_break("samples.0.format", 5), "format must be a string or null"),
        (_break("duplicateLinks.0.distance", 65), "over 64 bits"),
        (_break("duplicateLinks.0.otherId", KeyError), "otherId must be"),
        (_break("duplicateLinks.0", 7), "duplicate link #0 is not an object"),
        (_break("rejected", [3]), "rejected sample #0 is not an object"),
    ],
)
def test_malformed_metadata_is_refused_with_the_reason(change: Any, message: str) -> None:
    doc, manifest = _metadata()
    broken = copy.deepcopy(doc)
    change(broken)
    with pytest.raises(DocumentError, match=message):
        _parse_metadata(broken, manifest)


def test_a_self_link_and_foreign_bytes_are_refused() -> None:
    doc, manifest = _metadata()
    sid = doc["samples"][0]["sampleId"]
    doc["duplicateLinks"] = [{"sampleId": sid, "otherId": sid, "distance": 0}]
    with pytest.raises(DocumentError, match="to itself"):
        _parse_metadata(doc, manifest)
    with pytest.raises(DocumentError, match="not JSON"):
        parse_metadata(
            b"\xff", metadata_hash=keccak(b"\xff"), manifest_hash=manifest, sample_count=1
        )
    with pytest.raises(DocumentError, match="not a JSON object"):
        parse_metadata(b"[]", metadata_hash=keccak(b"[]"), manifest_hash=manifest, sample_count=1)


# ----------------------------------------------------------------------------- proposals

SELECTION = [(1, (0, 2)), (4, (1,))]
SELECTION_ROOT = keccak(text="selection")


def _proposal(**overrides: Any) -> bytes:
    kwargs: dict[str, Any] = {
        "offer": 1000,
        "wtp_bps": 8000,
        "deadline": 5000,
        "selection_root": SELECTION_ROOT,
    }
    kwargs.update(overrides)
    selection = kwargs.pop("selection", SELECTION)
    return World().proposal_document(selection, **kwargs)


def _committed(**overrides: Any) -> dict[str, Any]:
    committed = {
        "consumer": CONSUMER.address,
        "node": NODE.address,
        "offer": "1000",
        "wtpBps": 8000,
        "votingDeadline": 5000,
        "totalWeight": 3,
        "assetsHash": "0x" + assets_hash([(1, 2), (4, 1)]).hex(),
        "assetsRoot": "0x" + assets_root([1, 4]).hex(),
        "selectionRoot": "0x" + SELECTION_ROOT.hex(),
        "modelSpecHash": "0x" + keccak(SPEC_JSON).hex(),
        "validationSetHash": "0x" + VALIDATION_HASH.hex(),
    }
    committed.update(overrides)
    return committed


def _check(raw: bytes, **overrides: Any) -> Any:
    return check_proposal(
        raw,
        chain_id=CHAIN_ID,
        market=CONTRACTS["TrainingMarket"],
        committed=_committed(**overrides),
    )


def test_a_signed_proposal_document_gives_its_selection() -> None:
    assert _check(_proposal()).selection == ((1, 2), (4, 1))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"offer": "999"}, "offer is 1000 in the document but 999 on chain"),
        ({"wtpBps": 9000}, "wtpBps is 8000"),
        ({"votingDeadline": 1}, "votingDeadline is 5000"),
        ({"node": STRANGER.address}, "node is"),
        ({"consumer": STRANGER.address}, "consumer is"),
        ({"totalWeight": 4}, "selected weight is 3"),
        ({"selectionRoot": "0x" + "00" * 32}, "selectionRoot is"),
        ({"modelSpecHash": "0x" + "00" * 32}, "modelSpecHash is"),
        ({"validationSetHash": "0x" + "00" * 32}, "validationSetHash is"),
        ({"assetsHash": "0x" + assets_hash([(1, 2), (4, 2)]).hex()}, "assetsHash"),
        ({"assetsRoot": "0x" + assets_root([4, 1]).hex()}, "assetsRoot"),
    ],
)
def test_a_proposal_document_that_disagrees_with_the_chain_is_refused(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(DocumentError, match=f"disagrees with the chain: .*{message}"):
        _check(_proposal(), **overrides)


def test_a_proposal_document_must_be_signed_by_its_consumer_for_this_market() -> None:
    with pytest.raises(DocumentError, match="does not verify"):
        check_proposal(
            _proposal(), chain_id=1, market=CONTRACTS["TrainingMarket"], committed=_committed()
        )
    with pytest.raises(DocumentError, match="does not verify"):
        check_proposal(_proposal(), chain_id=CHAIN_ID, market=NODE.address, committed=_committed())
    # the consumer's signature covers the selection: a provider cannot add its asset
    tampered = _proposal().replace(b'id="4"', b'id="5"')
    with pytest.raises(DocumentError, match="does not verify"):
        _check(tampered, assetsHash="0x" + assets_hash([(1, 2), (5, 1)]).hex())
    with pytest.raises(DocumentError, match="does not verify"):
        _check(b"\xff not xml")


def test_a_selection_the_event_does_not_commit_is_refused() -> None:
    other = _proposal(selection=[(1, (0, 2)), (7, (1,))])
    with pytest.raises(DocumentError, match=r"assetsHash \(of its selection\).*assetsRoot"):
        _check(other)


# ----------------------------------------------------------------------------- results

MODEL_HASH = keccak(text="model")
SEED_HASH = keccak(text="seed")
OWNERS = {1: PROVIDER.address, 2: PROVIDER2.address, 3: PROVIDER.address}


def _tree(rows: list[tuple[int, int, int]] | None = None) -> StandardMerkleTree:
    return StandardMerkleTree.of(rows or [(0, 1, 600), (1, 2, 400)], PAYOUT_LEAF_ENCODING)


def _result(tree: StandardMerkleTree | None = None) -> dict[str, Any]:
    tree = tree or _tree()
    assets: dict[str, int] = {}
    amounts: dict[str, int] = {NODE.address: 0}
    for _, asset, amount in tree.values:
        assets[str(asset)] = assets.get(str(asset), 0) + int(amount)
        owner = OWNERS[int(asset)]
        amounts[owner] = amounts.get(owner, 0) + int(amount)
    return {
        "version": 1,
        "kind": "visdm-training-result",
        "proposalId": 3,
        "node": NODE.address,
        "accuracyBps": 8123,
        "wtpMet": True,
        "epsilonSpent": None,
        "seedHash": "0x" + SEED_HASH.hex(),
        "model": {"cid": "bafkmodel", "modelHash": "0x" + MODEL_HASH.hex()},
        "scores": {"cid": "bafkscores"},
        "payouts": {
            "tree": tree.dump(),
            "amounts": {a: str(v) for a, v in amounts.items()},
            "assets": {a: str(v) for a, v in assets.items()},
        },
        "futureField": {"ignored": True},
    }


def _parse_result(doc: dict[str, Any], **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "proposal_id": 3,
        "accuracy_bps": 8123,
        "wtp_met": True,
        "model_hash": MODEL_HASH,
        "payout_root": _tree().root,
        "node": NODE.address,
        "seed_hash": SEED_HASH,
        "price": 1000,
        "owner_of": OWNERS.get,
    }
    kwargs.update(overrides)
    return parse_result(json.dumps(doc).encode(), **kwargs)


def test_a_result_document_parses() -> None:
    parsed = _parse_result(_result())
    assert (parsed.model_cid, parsed.scores_cid, parsed.epsilon_spent) == (
        "bafkmodel",
        "bafkscores",
        None,
    )
    assert parsed.payouts == (
        PayoutLeaf(0, 1, PROVIDER.address, 600),
        PayoutLeaf(1, 2, PROVIDER2.address, 400),
    )
    assert parsed.fault_reason is None
    bare = dict(_result(), model=None, scores=None, payouts=None, epsilonSpent=1)
    assert _parse_result(bare).payouts == ()


def test_a_provider_with_several_assets_is_paid_their_sum() -> None:
    tree = _tree([(0, 1, 500), (1, 2, 400), (2, 3, 100)])
    doc = _result(tree)
    assert doc["payouts"]["amounts"][PROVIDER.address] == "600"
    parsed = _parse_result(doc, payout_root=tree.root)
    assert [(leaf.asset_id, leaf.owner) for leaf in parsed.payouts] == [
        (1, PROVIDER.address),
        (2, PROVIDER2.address),
        (3, PROVIDER.address),
    ]


def test_a_consumer_fault_result_keeps_its_reason() -> None:
    doc = dict(
        _result(),
        wtpMet=False,
        consumerFault="the validation set cannot be used",
        seedHash=None,
        model=None,
        scores=None,
        payouts=None,
    )
    parsed = _parse_result(doc, wtp_met=False, consumer_fault=True, seed_hash=bytes(32), price=0)
    assert parsed.fault_reason == "the validation set cannot be used"
    with pytest.raises(DocumentError, match="consumerFault 'the validation"):
        _parse_result(doc, wtp_met=False, consumer_fault=False, price=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_break("version", 2), "not a version 1"),
        (_break("kind", "other"), "not a version 1"),
        (_break("proposalId", 4), "proposalId 4"),
        (_break("accuracyBps", 9000), "accuracyBps 9000"),
        (_break("wtpMet", False), "wtpMet False"),
        (_break("wtpMet", 1), "wtpMet 1"),
        (_break("consumerFault", "bad input"), "consumerFault 'bad input'"),
        (_break("seedHash", "0x" + "00" * 32), "seedHash 0x00"),
        (_break("seedHash", "seed"), "seedHash must be 0x"),
        (_break("node", PROVIDER.address), "node 0x"),
        (_break("node", "me"), "node must be an Ethereum address"),
        (_break("model.modelHash", "0x" + "00" * 32), "modelHash 0x00"),
        (_break("model.cid", ""), "cid must be a non-empty string"),
        (_break("model", "bafk"), "model must be an object or null"),
        (_break("epsilonSpent", -1), "must not be negative"),
        (_break("epsilonSpent", "tiny"), "epsilonSpent must be a finite number"),
        (_break("scores.cid", None), "scores: cid"),
        (_break("payouts.tree", None), "payouts.tree must be a Merkle tree dump"),
        (_break("payouts.tree.format", "v0"), "does not load"),
        (_break("payouts.assets", None), "payouts.assets must be an object"),
        (_break("payouts.assets.1", "601"), "payouts.assets disagree with the payout tree"),
        (_break("payouts.assets.1", "six"), "amount of asset 1 'six' is not a whole number"),
        (_break("payouts.assets.one", "0"), "asset id 'one' is not a whole number"),
        (_break("payouts.amounts", None), "payouts.amounts must be an object"),
        (_break(f"payouts.amounts.{PROVIDER.address}", "601"), "summed per asset owner"),
        (_break(f"payouts.amounts.{PROVIDER.address}", "0"), "summed per asset owner"),
        (_break(f"payouts.amounts.{PROVIDER.address}", "six"), "is not a whole number"),
        (_break("payouts.amounts.me", "1"), "payout account must be an Ethereum address"),
    ],
)
def test_a_result_that_disagrees_with_the_chain_is_refused(change: Any, message: str) -> None:
    doc = _result()
    change(doc)
    with pytest.raises(DocumentError, match=message):
        _parse_result(doc)


def test_a_payout_tree_must_be_the_committed_one() -> None:
    with pytest.raises(DocumentError, match="differs from the payout root"):
        _parse_result(_result(), payout_root=keccak(text="another root"))
    # the old format named accounts: a leaf must name a selected asset
    old = StandardMerkleTree.of(
        [(0, PROVIDER.address, 600), (1, PROVIDER2.address, 400)],
        ["uint256", "address", "uint256"],
    )
    doc = _result()
    doc["payouts"]["tree"] = old.dump()
    with pytest.raises(DocumentError, match=r"payout leaves are .*address.*\(position, assetId"):
        _parse_result(doc, payout_root=old.root)


def test_payout_leaves_must_add_up_to_the_escrowed_price() -> None:
    with pytest.raises(
        DocumentError, match="pay 1000 in all, the proposal's escrowed price is 999"
    ):
        _parse_result(_result(), price=999)
    # a WTP-missed round escrows nothing any more: a payout tree for it pays nobody
    with pytest.raises(DocumentError, match="escrowed price is 0"):
        _parse_result(_result(), price=0)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(0, 1, 600), (0, 2, 400)], "two payout leaves share selection position 0"),
        ([(0, 1, 600), (1, 1, 400)], "asset 1 has more than one payout leaf"),
        ([(0, 1, 600), (1, 9, 400)], "pays asset 9, which is not registered"),
        ([(0, 1, 600), (1, 2**64, 400)], f"pays asset {2**64}, which is not registered"),
        ([(0, 1, 600), (2**32, 2, 400)], f"position {2**32}, beyond any selection"),
    ],
)
def test_payout_leaves_name_each_position_and_registered_asset_once(
    rows: list[tuple[int, int, int]], message: str
) -> None:
    tree = _tree(rows)
    doc = _result(_tree())
    doc["payouts"]["tree"] = tree.dump()
    with pytest.raises(DocumentError, match=message):
        _parse_result(doc, payout_root=tree.root)


# ----------------------------------------------------------------------------- scores


def _scores(samples: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "version": 1,
        "proposalId": 3,
        "samples": samples
        if samples is not None
        else [
            {
                "sample_id": SID,
                "asset_id": 1,
                "index": 0,
                "provider": PROVIDER.address.lower(),
                "value": 0.0012,
                "cluster_founder": OTHER,
                "cluster_size": 2,
                "flags": ["copied", "noisy", "copied"],
            }
        ],
    }


def _parse_scores(doc: dict[str, Any]) -> Any:
    raw = json.dumps(doc).encode()
    return parse_scores(raw, proposal_id=3, scores_hash=keccak(raw))


def test_scores_parse() -> None:
    (row,) = _parse_scores(_scores())
    assert (row.asset_id, row.index, row.provider) == (1, 0, PROVIDER.address)
    assert (row.value, row.cluster_founder, row.flags) == (0.0012, OTHER, ("copied", "noisy"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_break("version", 0), "version 0"),
        (_break("proposalId", 2), "is for proposal 2"),
        (_break("samples", None), "samples must be a list"),
        (_break("samples.0", []), "score #0 is not an object"),
        (_break("samples.0.asset_id", 0), "asset_id must be an integer ≥ 1"),
        (_break("samples.0.asset_id", 2**64), "asset_id must be at most"),
        (_break("samples.0.index", 2**63), "index must be at most"),
        (_break("samples.0.value", float("nan")), "value must be finite, got nan"),
        (_break("samples.0.provider", "0x12"), "provider must be an Ethereum address"),
        (_break("samples.0.flags", "noisy"), "flags must be a list of strings"),
        (_break("samples.0.cluster_size", 0), "cluster_size must be an integer ≥ 1"),
        (_break("samples.0.cluster_founder", "founder"), "cluster_founder must be 0x"),
    ],
)
def test_malformed_scores_are_refused(change: Any, message: str) -> None:
    doc = _scores()
    change(doc)
    with pytest.raises(DocumentError, match=message):
        _parse_scores(doc)


def test_scores_must_be_the_committed_bytes_and_name_each_sample_once() -> None:
    doc = _scores()
    doc["samples"].append(dict(doc["samples"][0]))
    with pytest.raises(DocumentError, match="scored twice"):
        _parse_scores(doc)
    with pytest.raises(DocumentError, match="differs from the scores hash"):
        parse_scores(b"{}", proposal_id=3, scores_hash=keccak(b"other"))


# ----------------------------------------------------------------------------- fuzzing

_PROPOSAL = _proposal()
_RESULT = json.dumps(_result()).encode()


def _mutated(raw: bytes, data: st.DataObject) -> bytes:
    """``raw`` with a few bytes replaced, inserted or cut (a damaged or forged document)."""
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(out)))
        kind = data.draw(st.sampled_from(("replace", "insert", "cut")))
        chunk = data.draw(st.binary(min_size=1, max_size=8))
        if kind == "replace":
            out[at : at + len(chunk)] = chunk
        elif kind == "insert":
            out[at:at] = chunk
        else:
            del out[at : at + len(chunk)]
    return bytes(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_proposal_document_is_refused_never_a_crash(data: st.DataObject) -> None:
    raw = _mutated(_PROPOSAL, data)
    try:
        parsed = _check(raw)
    except DocumentError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:  # a change the consumer's signature does not cover cannot touch the selection
        assert parsed.selection == ((1, 2), (4, 1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_result_document_is_refused_never_a_crash(data: st.DataObject) -> None:
    raw = _mutated(_RESULT, data)
    try:
        parsed = parse_result(
            raw,
            proposal_id=3,
            accuracy_bps=8123,
            wtp_met=True,
            model_hash=MODEL_HASH,
            payout_root=_tree().root,
            node=NODE.address,
            seed_hash=SEED_HASH,
            price=1000,
            owner_of=OWNERS.get,
        )
    except DocumentError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:  # the payout root pins the leaves
        assert parsed.payouts in ((), _parse_result(_result()).payouts)


@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=6,
    ),
    key=st.sampled_from(("payouts", "tree", "assets", "amounts", "seedHash", "consumerFault")),
)
def test_any_json_in_a_payouts_field_is_refused_or_read(value: Any, key: str) -> None:
    doc = _result()
    target = doc if key in ("payouts", "seedHash", "consumerFault") else doc["payouts"]
    target[key] = value
    try:
        parsed = _parse_result(doc)
    except DocumentError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert parsed.payouts in ((), _parse_result(_result()).payouts)
