"""A verifier's sealed secrets, its sampling lottery and its verdicts."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from eth_utils.crypto import keccak

from visdm.crypto import derive_x25519_keypair, unwrap_key
from visdm.errors import InvalidInputError
from visdm.verify import (
    JobSecrets,
    ResultCommitments,
    Verdict,
    judge,
    open_job_secrets,
    sampled,
    seal_job_secrets,
)

VERIFIER = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
KEYS = derive_x25519_keypair(bytes(range(1, 33)))
OTHER = derive_x25519_keypair(bytes(range(2, 34)))
SECRETS = JobSecrets(seed=b"\x01" * 32, validation_key=b"\x02" * 32, asset_keys={12: b"\x03" * 32})
ENV = {"machine": "x86_64", "cpuCapability": "AVX2", "threads": 1, "versions": {"torch": "2"}}
COMMITTED = ResultCommitments(
    accuracy_bps=8500,
    model_hash=b"\x0a" * 32,
    scores_hash=b"\x0b" * 32,
    payout_root=b"\x0c" * 32,
    seed_hash=keccak(b"\x01" * 32),
    spec_hash=b"\x0d" * 32,
)


def _open(data: bytes, *, private: bytes = KEYS.private, **kw: object) -> JobSecrets:
    args: dict[str, object] = {
        "proposal_id": 7,
        "verifier": VERIFIER,
        "seed_hash": keccak(SECRETS.seed),
    }
    args.update(kw)
    return open_job_secrets(data, unwrap=lambda w: unwrap_key(w, private), **args)  # type: ignore[arg-type]


def test_sealed_secrets_open_for_their_verifier_only() -> None:
    data = seal_job_secrets(SECRETS, proposal_id=7, verifier=VERIFIER, verifier_key=KEYS.public)
    assert SECRETS.seed.hex() not in data.decode()
    assert _open(data) == SECRETS
    with pytest.raises(InvalidInputError, match="cannot be opened by"):
        _open(data, private=OTHER.private)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"proposal_id": 8}, "not sealed for this re-execution"),
        (
            {"verifier": "0xCdCDCdCdcdcdcdCdcDcDCdcDcDCdCdcdCdcDCDcD"},
            "not sealed for this re-execution",
        ),
        ({"verifier": "0xabc"}, "not a checksummed address"),
    ],
)
def test_secrets_for_another_job_or_verifier_are_refused(kw: dict[str, object], match: str) -> None:
    data = seal_job_secrets(SECRETS, proposal_id=7, verifier=VERIFIER, verifier_key=KEYS.public)
    with pytest.raises(InvalidInputError, match=match):
        _open(data, **kw)


@pytest.mark.attack
def test_a_node_cannot_hand_a_verifier_another_seed() -> None:
    """A node that trained with one seed and seals another (to make re-execution disagree with
    an honest challenger's, or to hide its own run) is caught by the committed seed hash."""
    forged = replace(SECRETS, seed=b"\x09" * 32)
    data = seal_job_secrets(forged, proposal_id=7, verifier=VERIFIER, verifier_key=KEYS.public)
    with pytest.raises(InvalidInputError, match="does not hash to the seed hash"):
        _open(data)
    # without the check the forged seed would be opened and used
    assert (
        open_job_secrets(
            data,
            proposal_id=7,
            verifier=VERIFIER,
            unwrap=lambda w: unwrap_key(w, KEYS.private),
            seed_hash=keccak(forged.seed),
        ).seed
        == forged.seed
    )


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b"[]",
        json.dumps({"kind": "other", "version": 1}).encode(),
        json.dumps(
            {"kind": "visdm-job-secrets", "version": 1, "proposalId": 7, "verifier": VERIFIER}
        ).encode(),
        json.dumps(
            {
                "kind": "visdm-job-secrets",
                "version": 1,
                "proposalId": 7,
                "verifier": VERIFIER,
                "seed": "zz",
                "validationKey": "0x00",
                "assetKeys": {},
            }
        ).encode(),
        json.dumps(
            {
                "kind": "visdm-job-secrets",
                "version": 1,
                "proposalId": 7,
                "verifier": VERIFIER,
                "seed": "0x00",
                "validationKey": "0x00",
                "assetKeys": {"-1": "0x00"},
            }
        ).encode(),
    ],
)
def test_a_broken_secrets_document_is_one_clear_error(doc: bytes) -> None:
    with pytest.raises(InvalidInputError):
        _open(doc)


def test_sealing_refuses_keys_of_the_wrong_length() -> None:
    with pytest.raises(InvalidInputError, match="data key of asset 12 must be 32 bytes"):
        seal_job_secrets(
            replace(SECRETS, asset_keys={12: b"short"}),
            proposal_id=7,
            verifier=VERIFIER,
            verifier_key=KEYS.public,
        )


def test_the_lottery_follows_the_share_and_the_block() -> None:
    blocks = [keccak(i.to_bytes(4, "big")) for i in range(2000)]
    hits = sum(sampled(7, VERIFIER, 0.25, block_hash=b) for b in blocks)
    assert 400 < hits < 600  # about a quarter, seeds fixed
    assert not any(sampled(7, VERIFIER, 0, block_hash=b) for b in blocks[:50])
    assert all(sampled(7, VERIFIER, 1, block_hash=b) for b in blocks[:50])
    for share in (-0.1, 1.5, True, "half"):
        with pytest.raises(InvalidInputError, match="share of results to verify"):
            sampled(7, VERIFIER, share, block_hash=blocks[0])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="block hash is 32 bytes"):
        sampled(7, VERIFIER, 0.5, block_hash=b"\x00")


def test_the_verdicts() -> None:
    same = judge(COMMITTED, COMMITTED, theirs=ENV, ours=ENV)
    assert same.verdict is Verdict.CONFIRM
    lied = replace(COMMITTED, accuracy_bps=9500, payout_root=b"\x0e" * 32)
    found = judge(lied, COMMITTED, theirs=ENV, ours=ENV)
    assert found.verdict is Verdict.CHALLENGE
    assert found.differences == ("accuracy_bps", "payout_root")
    elsewhere = judge(lied, COMMITTED, theirs=ENV, ours={**ENV, "cpuCapability": "AVX512"})
    assert elsewhere.verdict is Verdict.ABSTAIN and "cpuCapability" in elsewhere.reason
    # a missed WTP delivers nothing: only its accuracy and seed count
    missed = replace(COMMITTED, model_hash=bytes(32), scores_hash=bytes(32), payout_root=bytes(32))
    assert judge(missed, COMMITTED, theirs=ENV, ours=ENV).verdict is Verdict.CONFIRM
    false_miss = replace(missed, accuracy_bps=100)
    assert judge(false_miss, COMMITTED, theirs=ENV, ours=ENV).differences == ("accuracy_bps",)
