"""A verifier re-executes a real training job and settles the result through the court.

The node runs the job in the real sandbox; it seals the seed to a verifier (X25519), which
opens it against the committed seed hash and re-runs the same job in its own sandboxed
process. An honest result is confirmed and, after its window, pays its owners; a result whose
payout root pays the wrong owners is challenged, the committee of other bonded nodes votes it
wrong, the node's bond goes to the challenger and the consumer is refunded.

The committee members vote from the verifier's re-execution here (each would run the same
deterministic job: ``test_determinism.py`` shows two runs agree bit for bit), to keep the test
to two training runs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from eth_utils.crypto import keccak

from tests.integration.market.conftest import Market
from tests.integration.verify.conftest import BOND, WINDOW, Court
from visdm.chain.contracts import ProposalStatus, ResultCommitment
from visdm.compute.sandbox import SandboxJob, SandboxLimits, SandboxStatus, run_in_sandbox
from visdm.crypto import derive_x25519_keypair, unwrap_key
from visdm.datasets import load_fashion_mnist
from visdm.market import build_payout_tree, claim_for
from visdm.training import spec_hash
from visdm.types import Address
from visdm.verify import (
    JobSecrets,
    ResultCommitments,
    ResultVerifier,
    SettledAsset,
    Settlement,
    Verdict,
    determinism_envelope,
    judge,
    open_job_secrets,
    seal_job_secrets,
    settle_output,
)

pytestmark = pytest.mark.integration

ENTRY = "visdm.training:run_job"
SPEC = {
    "architecture": "mlp",
    "hidden": [32],
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 32,
    "optimizer": "sgd",
    "learning_rate": 0.1,
}
PER_ASSET, VAL, OFFER, COST = 80, 120, 1000, 50


def _inputs(root: Path, assets: dict[int, SettledAsset]) -> tuple[Path, dict[str, tuple[int, int]]]:
    train = PER_ASSET * len(assets)
    images, labels = load_fashion_mnist("train", limit=train + VAL)
    inputs = root / "in"
    inputs.mkdir()
    np.savez(inputs / "train.npz", images=images[:train], labels=labels[:train])
    np.savez(inputs / "validation.npz", images=images[train:], labels=labels[train:])
    ids = [f"0x{i + 1:064x}" for i in range(train)]
    order = sorted(assets, key=lambda a: assets[a].position)
    asset_of = [order[i // PER_ASSET] for i in range(train)]
    (inputs / "samples.json").write_text(
        json.dumps(
            {
                "labels": [int(v) for v in labels[:train]],
                "sample_ids": ids,
                "providers": [str(assets[a].owner) for a in asset_of],
                "asset_ids": asset_of,
                "rank": list(range(train)),
                "links": [],
            }
        )
    )
    return inputs, {
        s: (a, i % PER_ASSET) for i, (s, a) in enumerate(zip(ids, asset_of, strict=True))
    }


def _run(
    root: Path,
    name: str,
    seed: bytes,
    inputs: Path,
    where: dict[str, tuple[int, int]],
    assets: dict[int, SettledAsset],
) -> tuple[ResultCommitments, Settlement, dict[str, object]]:
    out = root / name
    out.mkdir()
    job = SandboxJob(
        job_id=name,
        entry_point=ENTRY,
        input_dir=inputs,
        output_dir=out,
        limits=SandboxLimits(memory_bytes=6 << 30, cpu_s=600, wall_s=300),
        params={"spec": SPEC, "seed": seed.hex(), "valuation": {"k": 5}},
    )
    result = run_in_sandbox(job, allowed_entry_points={ENTRY})
    assert result.status is SandboxStatus.SUCCEEDED, (result.error, result.log_tail)
    assert result.return_value is not None
    commitments, settlement = settle_output(
        out, result.return_value, proposal_id=0, amount=OFFER, sample_assets=where, assets=assets
    )
    versions = result.return_value["versions"]
    assert isinstance(versions, dict)
    return commitments, settlement, determinism_envelope({k: str(v) for k, v in versions.items()})


def _approved(mk: Market, selection: list[tuple[int, int]]) -> int:
    """A proposal of ``SPEC`` voted through at its offer (every owner asks 0)."""
    terms = replace(mk.terms(selection, offer=OFFER, wtp_bps=1000), model_spec_hash=spec_hash(SPEC))
    pid, _ = mk.market.propose(mk.roles["consumer"], terms)
    for owner in {mk.assets.asset(a).owner for a, _ in selection}:
        mk.market.vote(mk._account_of(owner), pid, 0)
    mk.advance(3601)
    mk.tally(pid, selection)
    return pid


def _post(ct: Court, pid: int, c: ResultCommitments, payout_root: bytes) -> None:
    ct.mk.market.submit_result(
        ct.node,
        pid,
        ResultCommitment(
            accuracy_bps=c.accuracy_bps,
            result_cid="bafkreiresult",
            model_hash=c.model_hash,
            payout_root=payout_root,
            scores_hash=c.scores_hash,
            seed_hash=c.seed_hash,
        ),
    )


@pytest.mark.attack
def test_a_verifier_confirms_an_honest_result_and_gets_a_cheat_slashed(
    ct: Court, tmp_path: Path
) -> None:
    mk, court = ct.mk, ct.court
    owners = [mk.roles["provider"], mk.roles["provider2"], mk.new_provider("provider3")]
    ids = [mk.add_asset(o, PER_ASSET) for o in owners]
    selection = [(a, PER_ASSET) for a in ids]
    assets = {a: SettledAsset(i, Address(owners[i].address)) for i, a in enumerate(ids)}
    inputs, where = _inputs(tmp_path, assets)
    seed = bytes(range(32))
    node_run, node_settled, node_env = _run(tmp_path, "node", seed, inputs, where, assets)

    # the node seals the seed (and the validation key) to the verifier; the verifier opens it
    # against the seed hash the result commits, and re-executes in its own sandboxed process
    verifier = ct.verifiers[0]
    keys = derive_x25519_keypair(bytes(verifier.key))
    sealed = seal_job_secrets(
        JobSecrets(seed=seed, validation_key=keccak(b"validation")),
        proposal_id=1,
        verifier=verifier.address,
        verifier_key=keys.public,
    )
    opened = open_job_secrets(
        sealed,
        proposal_id=1,
        verifier=verifier.address,
        unwrap=lambda w: unwrap_key(w, keys.private),
        seed_hash=node_run.seed_hash,
    )
    again, _, our_env = _run(tmp_path, "verifier", opened.seed, inputs, where, assets)
    checker = ResultVerifier(mk.market, court, verifier)

    # an honest round: confirmed, released after the window, the owners paid by value
    honest = _approved(mk, selection)
    mk.start(honest, cost=COST)
    _post(ct, honest, node_run, node_run.payout_root)
    finding = judge(checker.posted(honest).commitments, again, theirs=node_env, ours=our_env)
    assert finding.verdict is Verdict.CONFIRM, finding.reason
    assert checker.act(honest, finding) is Verdict.CONFIRM
    mk.advance(WINDOW)
    court.release(mk.roles["stranger"], honest)
    tree = node_settled.payout.tree
    assert tree is not None
    requests = [
        claim_for(tree, honest, a, ids) for a in ids if node_settled.payout.asset_amounts.get(a)
    ]
    mk.market.claim_many(mk.roles["stranger"], requests)
    assert mk.market.proposal(honest).unclaimed == 0

    # a cheating round: the same job, but a payout root that pays one owner everything
    consumer = mk.roles["consumer"].address
    cheat = _approved(mk, selection)
    mk.start(cheat, cost=COST)
    before = mk.market.credit_of(consumer)
    wrong = build_payout_tree({ids[0]: OFFER}, {a: i for i, a in enumerate(ids)})
    assert wrong.root != node_run.payout_root
    _post(ct, cheat, node_run, wrong.root)
    finding = judge(checker.posted(cheat).commitments, again, theirs=node_env, ours=our_env)
    assert finding.verdict is Verdict.CHALLENGE and finding.differences == ("payout_root",)
    checker.act(cheat, finding)
    record = court.challenge_of(cheat)
    assert record.challenger == verifier.address and len(record.committee) == 3
    for member in record.committee:
        ResultVerifier(mk.market, court, ct.account(member)).vote(cheat, finding)
    court.resolve(mk.roles["stranger"], cheat)
    assert mk.market.proposal(cheat).status is ProposalStatus.CANCELLED
    assert mk.market.credit_of(consumer) == before + OFFER + COST
    assert court.stake_of(ct.node.address) == (BOND, 0)
    assert court.stake_of(verifier.address) == (3 * BOND, 0)
