"""The accuracy proof's rows for ``benchmarks/verification.py``: ezkl proving cost and gas.

Each configuration (a zoo ``mlp`` trained on Fashion-MNIST, k samples) is proven in a child
process (``python benchmarks/_zk_rows.py CONFIG_JSON``) under a wall-clock limit, so its peak
RSS is its own and a step that runs out of time is reported as not finished. The child prints
one JSON line per finished step. The parent then deploys ezkl's reusable verifier and
``ZkAccuracyCheck`` on anvil and measures the gas of the verifier on the child's proof and,
where proving is quick, of a whole claim (commit, then prove on the drawn samples).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _harness import Row

STEPS = ("train", "circuit", "prove", "verify")


def _config(
    hidden: list[int], side: int, k: int, limit_s: int, *, hashed: bool = False
) -> dict[str, Any]:
    return {"hidden": hidden, "side": side, "k": k, "limit_s": limit_s, "hashed": hashed}


def configs(*, quick: bool) -> list[dict[str, Any]]:
    if quick:
        return [_config([4], 8, 4, 120)]
    return [
        _config([8], 28, 8, 900),
        _config([8], 28, 32, 900),
        _config([8], 28, 64, 900),
        _config([256, 128], 28, 8, 900),  # the zoo mlp's default size
        _config([8], 28, 8, 900, hashed=True),  # one public Poseidon hash per sample
    ]


def _spec(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "architecture": "mlp",
        "input_shape": [1, cfg["side"], cfg["side"]],
        "num_classes": 10,
        # hidden [8] needs the small batches and epochs to learn Fashion-MNIST at all (55 %)
        "epochs": 10,
        "batch_size": 16,
        "optimizer": "adam",
        "learning_rate": 0.003,
        "hidden": cfg["hidden"],
    }


def _data(side: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from visdm.datasets import load_fashion_mnist

    images, labels = load_fashion_mnist("train", limit=n)
    if side != images.shape[1]:
        images = np.stack(
            [np.asarray(Image.fromarray(i).resize((side, side), Image.BILINEAR)) for i in images]
        )
    return images.astype(np.uint8), labels


def _emit(step: str, **values: Any) -> None:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step": step, "peak_rss_mib": rss, **values}), flush=True)


def child(cfg: dict[str, Any], workdir: Path) -> None:
    """Train, build the circuit, prove the first k validation samples, verify."""
    import torch

    from visdm.training import train
    from visdm.verify import ZkCircuit, ZkSettings

    torch.set_num_threads(1)
    side, k = cfg["side"], cfg["k"]
    x, y = _data(side, 1200)
    started = time.perf_counter()
    result = train(_spec(cfg), x[:1000], y[:1000], x[1000:], y[1000:], seed=bytes(32))
    _emit("train", seconds=time.perf_counter() - started, accuracy_bps=result.accuracy_bps)
    started = time.perf_counter()
    circuit = ZkCircuit.build(
        result.model,
        input_shape=(1, side, side),
        num_classes=10,
        k=k,
        workdir=workdir / "circuit",
        srs_dir=workdir / "srs",
        settings=ZkSettings(hashed_inputs=cfg.get("hashed", False)),
    )
    _emit(
        "circuit",
        seconds=time.perf_counter() - started,
        logrows=circuit.logrows,
        pk_bytes=circuit.proving_key_bytes,
        timings=circuit.timings,
        meta={"k": k, "features": circuit.features, "classes": 10, "logrows": circuit.logrows},
    )
    val = x[1000 : 1000 + k]
    started = time.perf_counter()
    proof = circuit.prove(val)
    prove_s = time.perf_counter() - started
    batch = torch.from_numpy(val).float().div(127.5).sub(1.0).unsqueeze(1)
    with torch.no_grad():
        float_pred = result.model(batch).argmax(1).tolist()
        evals = []
        for _ in range(20):
            t0 = time.perf_counter()
            result.model(batch)
            evals.append(time.perf_counter() - t0)
    agree = sum(a == b for a, b in zip(proof.predictions(), float_pred, strict=True))
    _emit("prove", seconds=prove_s, eval_s=float(np.median(evals)), agree=agree, k=k)
    started = time.perf_counter()
    ok = circuit.verify(proof)
    _emit("verify", seconds=time.perf_counter() - started, ok=ok)


def run_config(cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run one configuration in a child process; returns its steps and how it ended."""
    cmd = [sys.executable, __file__, json.dumps(cfg), str(workdir)]
    steps: dict[str, Any] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            out, _ = proc.communicate(timeout=cfg["limit_s"])
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            steps["timed_out"] = True
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    for line in out.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            steps[doc["step"]] = doc
    steps["children_peak_rss_mib"] = children
    return steps


def _label(cfg: dict[str, Any]) -> str:
    hashed = ", hashed inputs" if cfg.get("hashed") else ""
    return f"mlp {cfg['hidden']} on {cfg['side']}×{cfg['side']}, k = {cfg['k']}{hashed}"


def _gas_rows(
    cfg: dict[str, Any], workdir: Path, meta: dict[str, Any], *, full_flow: bool
) -> list[Row]:
    """Gas on anvil: the verifier alone on the child's proof; with ``full_flow`` also the
    check's commit and its prove on the drawn samples (which proves once more)."""
    from eth_account import Account
    from eth_utils.crypto import keccak
    from web3.exceptions import Web3RPCError

    from visdm.chain.anvil import start_anvil
    from visdm.chain.client import ChainClient
    from visdm.verify import (
        ZkAccuracyCheckClient,
        ZkCircuit,
        ZkSettings,
        deploy_zk_check,
        sample_tree,
    )
    from visdm.verify._zk import compile_verifier

    label = _label(cfg)
    rows: list[Row] = []
    circuit = ZkCircuit(
        workdir / "circuit",
        workdir / "srs" / f"kzg{meta['logrows']}.srs",
        meta["k"],
        meta["features"],
        meta["classes"],
        meta["logrows"],
        ZkSettings(hashed_inputs=cfg.get("hashed", False)),
    )
    x, y = _data(cfg["side"], 1200)
    val_x, val_y = x[1000:], y[1000:]
    node = Account.from_key(keccak(text="visdm-bench/zk-node"))
    anvil = start_anvil(state_file=None, log_file=workdir / "anvil.log")
    try:
        chain = ChainClient(anvil.rpc_url, timeout_s=60, tx_timeout_s=120)
        chain.fund_from_dev_faucet(node.address)
        deployment = deploy_zk_check(chain, node, circuit, samples=meta["k"])
        # the verifier alone, on the child's proof of the first k samples
        verifier = chain.w3.eth.contract(
            address=deployment.verifier, abi=compile_verifier(circuit.verifier_source())["abi"]
        )
        first = circuit.load_proof(workdir / "circuit" / "proof.json")
        limit = int(chain.w3.eth.get_block("latest")["gasLimit"])
        try:
            verify_gas = verifier.functions.verifyProof(
                first.proof, list(first.instances), circuit.vka_words()
            ).estimate_gas({"from": node.address})
        except Web3RPCError as exc:
            # more than a block holds, or a call larger than the node accepts: no transaction
            # can carry this proof
            why = "exceeds the block" if "gas" in str(exc) else "is refused by the node"
            rows.append(
                Row(
                    f"{label}: the verifier's verifyProof alone {why}",
                    limit,
                    "gas",
                    target=f"<= {limit:,} (block gas limit)",
                    meets=False,
                )
            )
            return rows
        rows.append(
            Row(
                f"{label}: the verifier's verifyProof alone",
                verify_gas,
                "gas",
                target=f"<= {limit:,} (block gas limit)",
                meets=verify_gas <= limit,
            )
        )
        if not full_flow:
            return rows
        check = ZkAccuracyCheckClient(chain, deployment.check)
        tree = sample_tree(circuit.public_inputs(val_x), [int(v) for v in val_y])
        committed = check.commit(
            node, 1, circuit=circuit, model_hash=b"\x01" * 32, tree=tree, accuracy_bps=5000
        )
        chain.advance_time(1)
        chain.advance_time(1)
        indices = check.drawn_indices(1)
        proof = circuit.prove(val_x[indices], name="drawn")
        proved = check.prove(node, 1, proof, circuit=circuit, tree=tree, indices=indices)
        claim = check.claim(1)
    finally:
        anvil.stop()
    return [
        *rows,
        Row(
            f"{label}: reusable verifier's code size",
            deployment.verifier_code_bytes,
            "bytes",
            target="<= 24,576 (EIP-170)",
            meets=deployment.verifier_code_bytes <= 24_576,
        ),
        Row(
            f"{label}: register the circuit's verifying-key artifact",
            deployment.gas["register_vka"],
            "gas",
        ),
        Row(f"{label}: commit the claim", committed.gas_used, "gas"),
        Row(
            f"{label}: prove (verify proof, {meta['k']} Merkle paths, argmax, c_min)",
            proved.gas_used,
            "gas",
        ),
        Row(f"{label}: claim {claim.status}, correct of drawn", claim.correct, "samples"),
    ]


def zk_rows(*, quick: bool) -> list[Row]:
    rows: list[Row] = []
    for cfg in configs(quick=quick):
        with tempfile.TemporaryDirectory(prefix="visdm-zk-") as tmp:
            workdir = Path(tmp)
            steps = run_config(cfg, workdir)
            label = _label(cfg)
            done = [s for s in STEPS if s in steps]
            if "train" in steps:
                accuracy = steps["train"]["accuracy_bps"] / 100
                rows.append(Row(f"{label}: model's validation accuracy", accuracy, "%"))
            if "circuit" in steps:
                c = steps["circuit"]
                rows.append(Row(f"{label}: circuit size", c["logrows"], "log2 rows"))
                rows.append(Row(f"{label}: proving key", c["pk_bytes"] / 2**20, "MiB"))
                rows.append(Row(f"{label}: export, SRS and setup", c["seconds"], "s"))
            if "prove" in steps:
                p = steps["prove"]
                rows.append(
                    Row(
                        f"{label}: prove",
                        p["seconds"],
                        "s",
                        peer="plain float evaluation",
                        peer_value=p["eval_s"],
                        ratio=p["seconds"] / max(p["eval_s"], 1e-9),
                    )
                )
                rows.append(
                    Row(f"{label}: quantised argmax = float argmax", p["agree"], f"of {p['k']}")
                )
            if "verify" in steps:
                rows.append(Row(f"{label}: verify off chain", steps["verify"]["seconds"], "s"))
            peak = max(
                [s.get("peak_rss_mib", 0.0) for s in steps.values() if isinstance(s, dict)] + [0.0]
            )
            rows.append(Row(f"{label}: peak RSS of the proving process", peak, "MiB"))
            if steps.get("timed_out") or done != list(STEPS):
                missing = next(s for s in STEPS if s not in steps)
                rows.append(Row(f"{label}: did not finish '{missing}' within", cfg["limit_s"], "s"))
                continue
            # the whole claim proves once more in the parent: only where proving is quick
            full_flow = steps["prove"]["seconds"] < 60
            rows.extend(_gas_rows(cfg, workdir, steps["circuit"]["meta"], full_flow=full_flow))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    child(json.loads(sys.argv[1]), Path(sys.argv[2]))
