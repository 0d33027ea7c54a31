"""The documents the chain points to are checked field by field before anything is indexed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from eth_utils.crypto import keccak

from visdm.index._documents import (
    PAYOUT_LEAF_ENCODING,
    DocumentError,
    parse_metadata,
    parse_result,
    parse_scores,
)
from visdm.merkle import StandardMerkleTree

from ._world import NODE, PROVIDER, PROVIDER2, Image, World

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
            target[int(last) if last.isdigit() else last] = value

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


# ----------------------------------------------------------------------------- results

MODEL_HASH = keccak(text="model")


def _tree() -> StandardMerkleTree:
    return StandardMerkleTree.of(
        [(0, PROVIDER.address, 600), (1, PROVIDER2.address, 400)], PAYOUT_LEAF_ENCODING
    )


def _result() -> dict[str, Any]:
    return {
        "version": 1,
        "kind": "visdm-training-result",
        "proposalId": 3,
        "node": NODE.address,
        "accuracyBps": 8123,
        "wtpMet": True,
        "epsilonSpent": None,
        "model": {"cid": "bafkmodel", "modelHash": "0x" + MODEL_HASH.hex()},
        "scores": {"cid": "bafkscores"},
        "payouts": {
            "tree": _tree().dump(),
            "amounts": {PROVIDER.address: "600", PROVIDER2.address: "400", NODE.address: "0"},
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
    assert parsed.payouts == ((0, PROVIDER.address, 600), (1, PROVIDER2.address, 400))
    bare = dict(_result(), model=None, scores=None, payouts=None, epsilonSpent=1)
    assert _parse_result(bare).payouts == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_break("version", 2), "not a version 1"),
        (_break("kind", "other"), "not a version 1"),
        (_break("proposalId", 4), "proposalId 4"),
        (_break("accuracyBps", 9000), "accuracyBps 9000"),
        (_break("wtpMet", False), "wtpMet False"),
        (_break("wtpMet", 1), "wtpMet 1"),
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
        (_break("payouts.amounts", None), "payouts.amounts must be an object"),
        (_break(f"payouts.amounts.{PROVIDER.address}", "601"), "disagree with the payout tree"),
        (_break(f"payouts.amounts.{PROVIDER.address}", "six"), "is not a number"),
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
    other = StandardMerkleTree.of([(PROVIDER.address, 1)], ["address", "uint256"])
    doc = _result()
    doc["payouts"]["tree"] = other.dump()
    with pytest.raises(DocumentError, match="payout leaves are"):
        _parse_result(doc, payout_root=other.root)


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
        (_break("samples.0.value", float("nan")), "value must be a finite number"),
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
