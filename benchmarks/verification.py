"""Verifiable results: re-execution equality, verification cost and challenge settlement.

Run: ``python benchmarks/verification.py [--quick] [--json]``. Machine-dependent rows (times)
come from one run on whatever machine runs it; gas is deterministic for the chain state.

Rows:
* re-execution equality: the same training job (``mlp``, DP-SGD at ε = 8 in full, without DP
  at ``--quick``; valuation on) run twice in the real sandbox, two separate worker processes,
  with one seed: 1 when the model hash, the scores hash and the payout root agree bit for bit;
* time to verify a round beside the time to train it: the verifier's sandboxed re-execution
  plus :func:`visdm.verify.settle_output` against the node's sandboxed job (ratio = train /
  verify, so > 1 would mean verifying is cheaper: it is not, re-execution costs a training);
* challenge to settlement on anvil: gas of ``challenge`` (committee of 3 drawn), each committee
  ``vote``, ``resolve`` (slashing, refund) and their sum, and the wall time of those
  transactions on a local dev chain; the chain time a challenge can take is bounded by the
  court's ruling period (900 s here), which dominates on a real chain;
* gas of the honest path's extra step (``ResultCourt.release`` after the window).
* the court with an accuracy check named (no proof involved): gas of ``setZkCheck``,
  ``startTraining`` under a check against without, a ``commit`` bound to the market's result,
  and ``overturnUnproven`` of a result whose claim never came.

* the zero-knowledge proof of the accuracy claim (``benchmarks/_zk_rows.py``): for a zoo
  ``mlp`` trained on Fashion-MNIST and k samples, the circuit size, proving-key size, setup
  and proof time beside the plain evaluation of the same samples, peak RSS of the proving
  process, quantised vs float argmax agreement, and on anvil the gas of ``ZkAccuracyCheck``
  (commit, then prove on the drawn samples). ``--quick``: hidden [4] on 8×8, k = 4; full:
  hidden [8] on 28×28 at k = 8, 32, 64, the default [256, 128] at k = 8, and hidden [8] at
  k = 8 with Poseidon-hashed inputs, each under a wall-clock limit (a step that does not
  finish is reported with the limit).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from _harness import Row, emit, parse_args
from _zk_rows import zk_rows
from visdm.chain.anvil import start_anvil
from visdm.chain.client import ChainClient
from visdm.chain.contracts import (
    CourtParameters,
    MarketParameters,
    ProposalTerms,
    Quote,
    ResultCommitment,
    ResultCourt,
    TrainingMarket,
)
from visdm.chain.deployment import deploy_marketplace
from visdm.compute.sandbox import SandboxJob, SandboxLimits, SandboxStatus, run_in_sandbox
from visdm.datasets import load_fashion_mnist
from visdm.market import sign_quote
from visdm.market.tally import submit_tally
from visdm.types import Address, Role
from visdm.verify import ResultCommitments, SettledAsset, settle_output

ENTRY = "visdm.training:run_job"
SEED = bytes(range(32)).hex()
PRICE = 1_000_000
WINDOW, RULING = 600, 900
BOND = 100 * 10**18


def _spec(*, dp: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "architecture": "mlp",
        "hidden": [64],
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "epochs": 1,
        "batch_size": 32,
        "optimizer": "sgd",
        "learning_rate": 0.1,
    }
    if dp:
        spec["dp"] = {"target_epsilon": 8.0, "delta": 1e-5}
    return spec


def _inputs(root: Path, train: int, val: int) -> tuple[Path, dict[str, tuple[int, int]]]:
    images, labels = load_fashion_mnist("train", limit=train + val)
    inputs = root / "in"
    inputs.mkdir()
    np.savez(inputs / "train.npz", images=images[:train], labels=labels[:train])
    np.savez(inputs / "validation.npz", images=images[train:], labels=labels[train:])
    ids = [f"0x{i + 1:064x}" for i in range(train)]
    per = train // 3
    asset_of = [11 + min(i // per, 2) for i in range(train)]
    (inputs / "samples.json").write_text(
        json.dumps(
            {
                "labels": [int(v) for v in labels[:train]],
                "sample_ids": ids,
                "providers": [str(_ASSETS[a].owner) for a in asset_of],
                "asset_ids": asset_of,
                "rank": list(range(train)),
                "links": [],
            }
        )
    )
    return inputs, {s: (a, i) for i, (s, a) in enumerate(zip(ids, asset_of, strict=True))}


_ASSETS = {11 + i: SettledAsset(position=i, owner=Address(f"0x{0xA1 + i:040x}")) for i in range(3)}


def _execute(
    root: Path, inputs: Path, where: dict[str, tuple[int, int]], name: str, spec: dict[str, Any]
) -> tuple[ResultCommitments, float]:
    """One sandboxed job and its settlement; returns the commitments and the wall seconds."""
    out = root / name
    out.mkdir()
    job = SandboxJob(
        job_id=name,
        entry_point=ENTRY,
        input_dir=inputs,
        output_dir=out,
        limits=SandboxLimits(memory_bytes=6 << 30, cpu_s=1200, wall_s=900),
        params={"spec": spec, "seed": SEED, "valuation": {"k": 5}},
    )
    started = time.perf_counter()
    result = run_in_sandbox(job, allowed_entry_points={ENTRY})
    if result.status is not SandboxStatus.SUCCEEDED or result.return_value is None:
        raise SystemExit(f"the training job failed: {result.error}")
    commitments, _ = settle_output(
        out, result.return_value, proposal_id=1, amount=PRICE, sample_assets=where, assets=_ASSETS
    )
    return commitments, time.perf_counter() - started


def reexecution_rows(*, quick: bool) -> list[Row]:
    train, val = (240, 120) if quick else (2_000, 500)
    spec = _spec(dp=not quick)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs, where = _inputs(root, train, val)
        node, train_s = _execute(root, inputs, where, "node", spec)
        verifier, verify_s = _execute(root, inputs, where, "verifier", spec)
    same = node.differences(verifier) == []
    what = f"{train} images, mlp, {'no DP' if quick else 'DP-SGD eps 8'}"
    return [
        Row(
            f"re-execution equal: model hash ({what})",
            float(node.model_hash == verifier.model_hash),
            "bool",
        ),
        Row(
            f"re-execution equal: scores hash ({what})",
            float(node.scores_hash == verifier.scores_hash),
            "bool",
        ),
        Row(
            f"re-execution equal: payout root ({what})",
            float(node.payout_root == verifier.payout_root),
            "bool",
            target="1",
            meets=same,
        ),
        Row(
            f"time to verify a round ({what})",
            verify_s,
            "s",
            peer="time to train it (the node's sandboxed job)",
            peer_value=train_s,
            ratio=train_s / verify_s,
        ),
    ]


def _account(name: str) -> LocalAccount:
    account: LocalAccount = Account.from_key(keccak(text=f"visdm-bench-verify/{name}"))
    return account


def court_rows() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        anvil = start_anvil(state_file=None, log_file=Path(tmp) / "anvil.log")
        try:
            return _court_rows(ChainClient(anvil.rpc_url, timeout_s=60, tx_timeout_s=60))
        finally:
            anvil.stop()


def _court_rows(c: ChainClient) -> list[Row]:
    names = ("gov", "node", "consumer", "provider", "v1", "v2", "v3", "v4")
    gov, node, consumer, provider, *verifiers = (_account(n) for n in names)
    for a in (gov, node, consumer, provider, *verifiers):
        c.fund_from_dev_faucet(a.address)
    params = MarketParameters(
        min_batch_size=1,
        min_selection_samples=1,
        min_selection_providers=1,
        challenge_window=WINDOW,
    )
    dep = deploy_marketplace(
        c,
        gov,
        parameters=params,
        court=CourtParameters(bond=BOND, committee_size=3, ruling_period=RULING),
    )
    stakeholders, assets, market = (
        dep.stakeholder_registry(c),
        dep.asset_registry(c),
        dep.training_market(c),
    )
    token, court = dep.payment_token(c), dep.result_court(c)
    for i, n in enumerate((node, *verifiers)):
        stakeholders.admit_node(
            gov,
            n.address,
            signer=n.address,
            region="local",
            encryption_key=bytes([i + 1]) * 32,
            endpoint=f"http://127.0.0.1:{9200 + i}/",
        )
        token.faucet(n, 2 * BOND)
        token.approve(n, court.address, 2 * BOND)
        court.deposit(n, 2 * BOND)
    stakeholders.register(provider, Role.PROVIDER, b"\x07" * 32)
    stakeholders.register(consumer, Role.CONSUMER, b"\x08" * 32)
    token.faucet(consumer, 10**6 * 10**18)
    token.approve(consumer, market.address, 2**256 - 1)

    started_gas: list[int] = []

    def round_to_result() -> int:
        asset, _ = assets.register_asset(
            provider,
            manifest_hash=keccak(text=f"m{time.time_ns()}"),
            samples_root=keccak(text="r"),
            sample_count=10,
            allowed_regions=["local"],
            key_nodes=[node.address],
            manifest_cid="bafkreim",
        )
        assets.attest_metadata(
            node,
            asset,
            metadata_hash=keccak(text="md"),
            accepted_count=10,
            metadata_cid="bafkreimd",
            key_nodes=[node.address],
        )
        terms = ProposalTerms(
            asset_ids=(asset,),
            sample_counts=(10,),
            selection_root=keccak(text="s"),
            offer=1000,
            wtp_bps=5000,
            node=node.address,
            voting_deadline=c.latest_timestamp() + 120,
            model_spec_hash=keccak(text="spec"),
            validation_set_hash=keccak(text="val"),
        )
        pid, _ = market.propose(consumer, terms)
        market.vote(provider, pid, 0)
        c.advance_time(121)
        submit_tally(market, assets, dep.delegation_registry(c), gov, pid, selection=[(asset, 10)])
        quote = Quote(pid, 50, 3600, c.latest_timestamp() + 600)
        started_gas.append(
            market.start_training(
                consumer, pid, quote, sign_quote(bytes(node.key), c.chain_id, market.address, quote)
            ).gas_used
        )
        market.submit_result(
            node,
            pid,
            ResultCommitment(
                accuracy_bps=9000, result_cid="bafkreires", payout_root=keccak(text="p")
            ),
        )
        return pid

    honest = round_to_result()
    c.advance_time(WINDOW)
    release_gas = court.release(gov, honest).gas_used

    cheat = round_to_result()
    started = time.perf_counter()
    committee, opened = court.challenge(verifiers[0], cheat)
    by_address: dict[str, LocalAccount] = {v.address: v for v in verifiers}
    votes = [court.vote(by_address[m], cheat, result_correct=False).gas_used for m in committee]
    resolved = court.resolve(gov, cheat)
    wall = time.perf_counter() - started
    total = opened.gas_used + sum(votes) + resolved.gas_used
    token.faucet(node, BOND)  # the slashed bond back: two more jobs follow
    token.approve(node, court.address, BOND)
    court.deposit(node, BOND)
    zk = _zk_court_rows(c, (gov, node), market, court, round_to_result, started_gas)
    return [
        Row("ResultCourt.release of an unchallenged result, after the window", release_gas, "gas"),
        Row("challenge (committee of 3 drawn, bond locked)", opened.gas_used, "gas"),
        Row("committee vote (median of 3)", float(sorted(votes)[1]), "gas"),
        Row("resolve: node slashed, consumer refunded", resolved.gas_used, "gas"),
        Row("challenge to settlement, all transactions", total, "gas"),
        Row(
            "challenge to settlement, wall time on a local anvil",
            wall,
            "s",
            target=f"chain time <= ruling period {RULING} s",
        ),
        *zk,
    ]


def _zk_court_rows(
    c: ChainClient,
    accounts: tuple[LocalAccount, LocalAccount],
    market: TrainingMarket,
    court: ResultCourt,
    round_to_result: Callable[[], int],
    started_gas: list[int],
) -> list[Row]:
    """The court with an accuracy check named: the transactions that need no proof (the
    verifier is never called on these paths, so any address stands in for it; the proof's
    own gas is in the ZK rows)."""
    from visdm.verify import ZkAccuracyCheckClient

    gov, node = accounts
    check, _ = c.deploy(gov, "ZkAccuracyCheck", gov.address, 8, market.address)
    named = court.set_zk_check(gov, str(check)).gas_used
    without = started_gas[-1]
    claimed = round_to_result()
    with_check = started_gas[-1]
    zk = ZkAccuracyCheckClient(c, str(check))
    record = market.proposal(claimed)
    fn = zk.contract.functions.commit(
        claimed,
        b"\x01" * 32,
        record.model_hash,
        b"\x02" * 32,
        500,
        784,
        10,
        record.accuracy_bps,
        "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    )
    committed = c.transact(node, fn, action="commit").gas_used
    unproven = round_to_result()
    c.advance_time(WINDOW)
    overturned = court.overturn_unproven(gov, unproven).gas_used
    return [
        Row("ResultCourt.setZkCheck", named, "gas"),
        Row(
            "startTraining under an accuracy check (the court records it)",
            with_check,
            "gas",
            peer="without a check",
            peer_value=without,
            ratio=with_check / without,
        ),
        Row(
            "ZkAccuracyCheck.commit bound to the market's result (59-character CID)",
            committed,
            "gas",
        ),
        Row(
            "overturnUnproven: no claim by the window's end, bond to the consumer",
            overturned,
            "gas",
        ),
    ]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rows = reexecution_rows(quick=args.quick) + court_rows() + zk_rows(quick=args.quick)
    emit(
        "verification",
        rows,
        as_json=args.json,
        packages=["torch", "opacus", "numpy", "web3", "ezkl"],
        notes={"machine": "figures from the machine that ran it; times are wall seconds"},
    )


if __name__ == "__main__":
    main()
