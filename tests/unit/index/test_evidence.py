"""Reading the evidence a scores row publishes with a ``noisy`` flag: every field is checked, a
bad one refuses the scores document with a one-line reason, and what is kept reads back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.index._documents import DocumentError, parse_scores
from visdm.index._evidence import FlagEvidence, read_evidence

from ._world import EVIDENCE

pytestmark = pytest.mark.unit

SID = "0x" + "11" * 32
PROVIDER = "0x" + "ab" * 20


def _parse(evidence: Any) -> Any:
    row = {
        "sample_id": SID,
        "asset_id": 1,
        "index": 0,
        "provider": PROVIDER,
        "value": -0.01,
        "cluster_founder": SID,
        "cluster_size": 1,
        "flags": ["noisy"],
        "evidence": evidence,
    }
    raw = json.dumps({"version": 1, "proposalId": 3, "samples": [row]}).encode()
    return parse_scores(raw, proposal_id=3, scores_hash=keccak(raw))


def test_the_published_evidence_is_read_and_round_trips() -> None:
    (row,) = _parse(EVIDENCE)
    assert row.evidence == FlagEvidence(**EVIDENCE)
    assert FlagEvidence.from_json(row.evidence.to_json()) == row.evidence
    # rows from a writer that publishes no evidence still parse
    (old,) = _parse(None)
    assert old.evidence is None and old.flags == ("noisy",)


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        (None, [], "evidence must be an object or null"),
        ("t", "low", r"t must be a finite number or null, got 'low'"),
        ("t", True, "t must be a finite number or null"),
        ("value_se", -1.0, "value_se must not be negative"),
        ("peer_agreement", 1.5, r"peer_agreement must be in \[0, 1\] or null"),
        ("peers", -1, "peers must be a whole number ≥ 0"),
        ("peers", 2.0, "peers must be a whole number ≥ 0"),
        ("provider_players", None, "provider_players must be a whole number ≥ 0"),
        ("provider_players", 2**63, "provider_players must be a whole number ≥ 0"),
        ("provider_suspects", 25, r"provider_suspects \(25\) exceeds provider_players \(24\)"),
        ("provider_p", 1.5, r"provider_p must be a number in \[0, 1\]"),
        ("base_rate", None, r"base_rate must be a number in \[0, 1\], got None"),
    ],
)
def test_malformed_evidence_refuses_the_scores(field: str | None, bad: Any, message: str) -> None:
    evidence = bad if field is None else {**EVIDENCE, field: bad}
    with pytest.raises(DocumentError, match=f"score #0: evidence: {message}") as info:
        _parse(evidence)
    assert "\n" not in str(info.value)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from([*EVIDENCE, "other"]),
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3)),
        ),
        st.integers(),
        st.text(max_size=5),
    )
)
def test_any_evidence_is_read_or_refused_with_a_value_error(value: Any) -> None:
    try:
        evidence = read_evidence(value)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert evidence is None or FlagEvidence.from_json(evidence.to_json()) == evidence
