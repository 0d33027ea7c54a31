"""Who gets a job's secrets, and the verifier's journal: pure parts of ``--verify``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from eth_utils.address import to_checksum_address

from visdm.chain.contracts import ComputeNodeRecord
from visdm.errors import InvalidInputError
from visdm.proposals import PublicAsset
from visdm.types import Address
from visdm.verify import (
    Finding,
    Verdict,
    VerifyConfig,
    VerifyJournal,
    VerifyWorker,
    secret_recipients,
)

NODE, CONSUMER, OWNER = (Address(f"0x{c * 40}") for c in "abc")
KEY = bytes([5]) * 32


def _node(who: str, *, region: int = 0, active: bool = True, key: bytes = KEY) -> ComputeNodeRecord:
    return ComputeNodeRecord(
        address=Address(who),
        signer=Address(who),
        region=region,
        admitted=active,
        suspended=False,
        encryption_key=key,
        endpoint="",
    )


def _asset(asset_id: int, *, regions: int = 0b1) -> PublicAsset:
    record = SimpleNamespace(asset_id=asset_id, owner=OWNER, region_mask=regions)
    return cast("PublicAsset", SimpleNamespace(record=record))


def test_secrets_go_only_to_nodes_every_used_asset_allows() -> None:
    ok = "0x" + "1" * 40
    candidates = [
        _node(NODE),  # the training node itself: neither sealed to nor listed
        _node(ok),
        _node("0x" + "2" * 40, region=1),
        _node("0x" + "3" * 40, active=False),
        _node("0x" + "4" * 40, key=bytes(32)),
        _node(CONSUMER),
        _node(OWNER),
    ]
    used = [_asset(1), _asset(2, regions=0b11)]
    got = secret_recipients(candidates, used, node=NODE, consumer=CONSUMER)
    assert [str(n.address) for n in got.allowed] == [ok]
    refused = got.refused
    assert refused["0x" + "2" * 40] == "asset 1 does not allow its region"
    assert refused["0x" + "3" * 40] == "it is not an active admitted node"
    assert refused["0x" + "4" * 40] == "it registered no X25519 key to seal to"
    assert refused[CONSUMER] == "it is the consumer of the round"
    assert refused[OWNER].endswith("of the round and would judge its own pay")
    assert NODE not in refused


def test_the_journal_keeps_each_result_once_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "verify.sqlite3"
    journal = VerifyJournal(path)
    with journal.transaction():
        assert journal.add(7, b"\x01" * 32, "bafyresult", own=False, drawn=True)
        assert not journal.add(7, b"\x02" * 32, "bafyother", own=True, drawn=False)  # replayed
        journal.set_cursor(41)
    finding = Finding(Verdict.CHALLENGE, ("accuracy_bps", "payout_root"), "differs")
    journal.update(7, finding=finding, acted=True)
    journal.close()

    again = VerifyJournal(path)
    try:
        check = again.get(7)
        assert check is not None and check.finding == finding
        assert (check.block_hash, check.drawn, check.own, check.acted, check.voted) == (
            b"\x01" * 32,
            True,
            False,
            True,
            False,
        )
        assert again.cursor() == 41
        assert [c.proposal_id for c in again.checks(open_only=True)] == [7]
        again.update(7, state="done")
        assert again.checks(open_only=True) == []
        assert again.get(8) is None
        with pytest.raises(ValueError, match="unknown check field"):
            again.update(7, seed=b"x")
    finally:
        again.close()


@pytest.mark.parametrize("share", [1.5, -0.1, True, "0.5"])
def test_a_share_outside_0_to_1_is_refused_before_anything_starts(
    tmp_path: Path, share: Any
) -> None:
    account = SimpleNamespace(address="0x" + "1" * 40)
    with pytest.raises(InvalidInputError, match="share of results to verify"):
        VerifyWorker(
            cast("Any", None),
            cast("Any", None),
            cast("Any", None),
            cast("Any", account),
            VerifyConfig(workdir=tmp_path, share=share),
        )
    assert not (tmp_path / "verify.sqlite3").exists()


# --- what a peer hands a verifier: every bad document is an abstention with the reason ------

_VERIFIER = to_checksum_address("0x" + "d1" * 20)


class _Store:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        return self.blobs[cid]


def _recheck(result: bytes, secrets: bytes, seed: bytes) -> Finding:
    """``VerifyWorker._recheck`` on a stub chain and store: the posted result commits
    ``keccak(seed)``; the re-execution itself must not be reached."""
    from eth_utils.crypto import keccak

    from visdm.crypto import derive_x25519_keypair, unwrap_key
    from visdm.verify import PostedResult, ResultCommitments

    keys = derive_x25519_keypair(bytes([3]) * 32)
    committed = ResultCommitments(1, bytes(32), bytes(32), bytes(32), keccak(seed), bytes(32))
    worker = object.__new__(VerifyWorker)
    worker.store = cast("Any", _Store({"result": result, "secrets": secrets}))
    worker.account = cast(
        "Any",
        SimpleNamespace(address=_VERIFIER, unwrap_key=lambda w: unwrap_key(w, keys.private)),
    )
    worker.verifier = cast(
        "Any",
        SimpleNamespace(posted=lambda _pid: PostedResult(committed, bytes(32), "result")),
    )
    worker.reexecutor = cast("Any", SimpleNamespace())  # no reexecute(): reaching it fails
    record = cast("Any", SimpleNamespace(node="0x" + "e" * 40))
    check = cast("Any", SimpleNamespace(proposal_id=4))
    return worker._recheck(check, record)


def _sealed(proposal_id: int, verifier: str, seed: bytes) -> bytes:
    from visdm.crypto import derive_x25519_keypair
    from visdm.verify import JobSecrets, seal_job_secrets

    public = derive_x25519_keypair(bytes([3]) * 32).public
    secrets = JobSecrets(seed=seed, validation_key=bytes(32))
    return seal_job_secrets(
        secrets, proposal_id=proposal_id, verifier=verifier, verifier_key=public
    )


SEED = bytes(range(32))


@pytest.mark.parametrize(
    ("result", "secrets", "says"),
    [
        (b"\xff not json", b"", "result document"),
        (b'{"envelope": {}}', b"", "sealed no secrets"),
        (b'{"verifierSecrets": ["secrets"]}', b"", "sealed no secrets"),
        (b'{"verifierSecrets": {"%s": 7}}' % _VERIFIER.encode(), b"", "sealed no secrets"),
        (
            b'{"verifierSecrets": {"%s": "secrets"}}' % _VERIFIER.encode(),
            _sealed(5, _VERIFIER, SEED),
            "not proposal 4",
        ),
        (
            b'{"verifierSecrets": {"%s": "secrets"}}' % _VERIFIER.encode(),
            _sealed(4, _VERIFIER, bytes(32)),
            "another seed than it trained with",
        ),
        (b'{"verifierSecrets": {"%s": "secrets"}}' % _VERIFIER.encode(), b"[]", "secrets"),
    ],
)
def test_a_bad_result_or_secrets_document_is_an_abstention_with_the_reason(
    result: bytes, secrets: bytes, says: str
) -> None:
    finding = _recheck(result, secrets, SEED)
    assert finding.verdict is Verdict.ABSTAIN
    assert says in finding.reason and "\n" not in finding.reason


def test_secrets_that_open_reach_the_re_execution() -> None:
    result = b'{"verifierSecrets": {"%s": "secrets"}}' % _VERIFIER.encode()
    finding = _recheck(result, _sealed(4, _VERIFIER, SEED), SEED)
    # the stub has no reexecute(): reaching it is an abstention that names the failure
    assert finding == Finding(Verdict.ABSTAIN, (), "re-execution failed: AttributeError")


# --- the worker's moves on one result, on a stub chain --------------------------------------

_ME = to_checksum_address("0x" + "a1" * 20)
_OTHER = to_checksum_address("0x" + "b2" * 20)


class _Chain:
    """What ``VerifyWorker.step`` reads and sends, recorded."""

    def __init__(self, *, now: int, deadline: int, challenge: Any = None) -> None:
        from visdm.chain.contracts import ChallengeRecord, ProofState, ProposalStatus

        self.now = now
        self.sent: list[tuple[str, int]] = []
        self.record = SimpleNamespace(
            status=ProposalStatus.COMPLETED, deadline=deadline, node=_OTHER
        )
        self.challenge = challenge or ChallengeRecord(None, 0, 0, 0, False, None, 0, ())
        self.proof = ProofState(None, "none")

    def proposal(self, _pid: int) -> Any:
        return self.record

    def challenge_of(self, _pid: int) -> Any:
        return self.challenge

    def latest_timestamp(self) -> int:
        return self.now

    def fund_from_dev_faucet(self, _who: str) -> None:
        return None

    def release(self, _who: Any, pid: int) -> None:
        self.sent.append(("release", pid))

    def proof_of(self, _pid: int) -> Any:
        return self.proof

    def overturn_unproven(self, _who: Any, pid: int) -> None:
        self.sent.append(("overturn", pid))

    def resolve(self, _who: Any, pid: int) -> None:
        self.sent.append(("resolve", pid))


def _worker(tmp_path: Path, chain: _Chain) -> VerifyWorker:
    worker = object.__new__(VerifyWorker)
    worker.market = worker.court = worker.client = cast("Any", chain)
    worker.account = cast("Any", SimpleNamespace(address=_ME, local_account=None))
    worker.journal = VerifyJournal(tmp_path / "verify.sqlite3")

    def never(*_: object) -> Finding:
        raise AssertionError("re-executed a result it should not have")

    worker._recheck = never  # type: ignore[method-assign]
    return worker


@pytest.mark.parametrize(("own", "drawn"), [(True, False), (False, True)])
def test_an_own_or_a_late_drawn_result_is_not_re_executed_but_released_after_its_window(
    tmp_path: Path, own: bool, drawn: bool
) -> None:
    chain = _Chain(now=1_000, deadline=900)  # the window closed before the worker got to it
    worker = _worker(tmp_path, chain)
    try:
        with worker.journal.transaction():
            worker.journal.add(3, bytes(32), "bafyresult", own=own, drawn=drawn)
        assert worker.step(3) == 1
        assert chain.sent == [("release", 3)]
        assert worker.journal.checks(open_only=True) == []
        chain.record.deadline = 0  # released: the next poll has nothing to do
        assert worker.step(3) == 0 and chain.sent == [("release", 3)]
    finally:
        worker.journal.close()


@pytest.mark.parametrize(("failed", "move"), [("rejected", "overturn"), ("accepted", "release")])
def test_a_result_waiting_for_its_accuracy_proof_is_settled_by_the_proof(
    tmp_path: Path, failed: str, move: str
) -> None:
    from visdm.chain.contracts import ProofState

    chain = _Chain(now=1_000, deadline=900)
    chain.proof = ProofState(_OTHER, "pending")
    worker = _worker(tmp_path, chain)
    try:
        with worker.journal.transaction():
            worker.journal.add(3, bytes(32), "bafyresult", own=True, drawn=False)
        assert worker.step(3) == 0 and chain.sent == []  # the node may still prove
        assert [c.proposal_id for c in worker.journal.checks(open_only=True)] == [3]
        chain.proof = ProofState(_OTHER, failed)
        assert worker.step(3) == 1
        assert chain.sent == [(move, 3)]
        assert worker.journal.checks(open_only=True) == []
    finally:
        worker.journal.close()


def test_a_split_committee_is_left_to_governance_without_a_transaction(tmp_path: Path) -> None:
    from visdm.chain.contracts import ChallengeRecord

    split = ChallengeRecord(_OTHER, 950, 1, 1, False, _OTHER, 1, (_OTHER, _OTHER))
    chain = _Chain(now=1_000, deadline=2_000, challenge=split)
    worker = _worker(tmp_path, chain)
    try:
        with worker.journal.transaction():
            worker.journal.add(3, bytes(32), "bafyresult", own=False, drawn=False)
        assert worker.step(3) == 0
        assert chain.sent == []
        assert worker.journal.get(3).state == "done"  # type: ignore[union-attr]
    finally:
        worker.journal.close()
