"""A training node backs its submitted result with the accuracy proof the court waits for.

When the market's court named a ``ZkAccuracyCheck`` at the job's start
(``ResultCourt.proofOf``), the node's WTP-met result counts only once the check accepts a claim
of it. :func:`prove_result` is what the node runs after ``submitResult``, in order:

1. build the circuit of the model it trained for the check's k (:meth:`ZkCircuit.build`; the
   SRS is cached per size under the node's ``zk/srs``);
2. store the circuit's settings file: with the model file it is what anyone needs to rebuild the
   verifying-key artifact and compare its digest with the committed one;
3. register the artifact with the check's reusable verifier and commit the claim
   with the result's own model hash and accuracy, the validation set's sample root and the
   settings file's CID (emitted in ``ClaimCommitted``);
4. wait for the block whose hash draws the k positions (on a dev chain with no other traffic the
   node mines it), prove exactly those samples and send the proof.

:func:`expected_sample_root` is the check a node holding the consumer's validation set makes:
the root a claim should commit for it, given the circuit's settings file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount
from numpy.typing import NDArray

from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus, ResultCourt, TrainingMarket
from visdm.errors import ContractRevertError, ZkInputError
from visdm.storage import ContentStore
from visdm.verify._zk import ZkCircuit, ZkSettings, felt, quantise
from visdm.verify._zk_chain import ZkAccuracyCheckClient
from visdm.verify._zk_rule import sample_tree

__all__ = ["ZkProofRun", "expected_sample_root", "prove_result"]

log = logging.getLogger("visdm.node.zk")


@dataclass(frozen=True)
class ZkProofRun:
    """What proving one result did: the claim's outcome, where its settings file is, and the
    gas and seconds of each step."""

    proposal_id: int
    status: str
    correct: int
    indices: tuple[int, ...]
    circuit_cid: str
    logrows: int
    gas: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def prove_result(
    client: ChainClient,
    market: TrainingMarket,
    court: ResultCourt,
    store: ContentStore,
    account: LocalAccount,
    *,
    proposal_id: int,
    model: Any,
    input_shape: tuple[int, int, int],
    num_classes: int,
    val_x: NDArray[np.uint8],
    val_y: Sequence[int] | NDArray[np.int64],
    workdir: Path | str,
    srs_dir: Path | str,
    settings: ZkSettings | None = None,
    draw_timeout_s: float = 120.0,
) -> ZkProofRun:
    """Commit and prove the accuracy claim of ``proposal_id``'s submitted result.

    ``model`` is the trained network in eval mode (the one whose hash the result committed),
    ``val_x``/``val_y`` the consumer's validation images (uint8) and labels, in the order the
    accuracy was measured. Raises :class:`~visdm.errors.ZkInputError` when the job needs no
    proof or its result is not a WTP-met one still in its window, and
    :class:`~visdm.errors.ContractRevertError` when the check refuses a step.
    """
    proof_state = court.proof_of(proposal_id)
    if proof_state.check is None:
        raise ZkInputError(
            f"proposal {proposal_id}'s job was started without an accuracy check: nothing to prove"
        )
    record = market.proposal(proposal_id)
    if record.status is not ProposalStatus.COMPLETED or record.deadline == 0:
        raise ZkInputError(
            f"proposal {proposal_id} has no held WTP-met result ({record.status.name.lower()}): "
            "only such a result's accuracy is proven"
        )
    labels = [int(y) for y in val_y]
    if len(labels) != len(val_x) or not labels:
        raise ZkInputError(
            f"{len(val_x)} validation images and {len(labels)} labels: give one label per image"
        )
    check = ZkAccuracyCheckClient(client, proof_state.check)
    seconds: dict[str, float] = {}
    gas: dict[str, int] = {}
    started = time.perf_counter()
    circuit = ZkCircuit.build(
        model,
        input_shape=input_shape,
        num_classes=num_classes,
        k=check.samples(),
        workdir=workdir,
        srs_dir=srs_dir,
        settings=settings,
    )
    seconds["circuit"] = time.perf_counter() - started
    circuit_cid = str(store.put(circuit.settings_path.read_bytes(), pin=True))
    tree = sample_tree(circuit.public_inputs(np.asarray(val_x)), labels)
    _register(client, account, check, circuit, gas)
    committed = check.commit(
        account,
        proposal_id,
        circuit=circuit,
        model_hash=record.model_hash,
        tree=tree,
        accuracy_bps=record.accuracy_bps,
        circuit_cid=circuit_cid,
    )
    gas["commit"] = committed.gas_used
    log.info("proposal %d: accuracy claim committed, circuit %s", proposal_id, circuit_cid)
    indices = _await_draw(client, check, proposal_id, draw_timeout_s)
    started = time.perf_counter()
    proof = circuit.prove(np.asarray(val_x)[indices])
    seconds["prove"] = time.perf_counter() - started
    proved = check.prove(account, proposal_id, proof, circuit=circuit, tree=tree, indices=indices)
    gas["prove"] = proved.gas_used
    claim = check.claim(proposal_id)
    log.info(
        "proposal %d: accuracy proof %s (%d of %d drawn samples correct)",
        proposal_id,
        claim.status,
        claim.correct,
        len(indices),
    )
    return ZkProofRun(
        proposal_id,
        claim.status,
        claim.correct,
        tuple(indices),
        circuit_cid,
        circuit.logrows,
        gas,
        seconds,
    )


#: the one function of ezkl's reusable verifier the node calls itself: rendering and compiling
#: the verifier's source for its full ABI would cost as much as building a small circuit
_REGISTER_ABI = [
    {
        "type": "function",
        "name": "registerVka",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "vka", "type": "bytes32[]"}],
        "outputs": [{"name": "vka_digest", "type": "bytes32"}],
    }
]


def _register(
    client: ChainClient,
    account: LocalAccount,
    check: ZkAccuracyCheckClient,
    circuit: ZkCircuit,
    gas: dict[str, int],
) -> None:
    """Register the circuit's verifying-key artifact with the check's verifier (registering
    an artifact again only sets its flag again; the verifier offers no read of it)."""
    verifier = client.w3.eth.contract(address=check.verifier(), abi=_REGISTER_ABI)  # type: ignore[call-overload]
    fn = verifier.functions.registerVka(circuit.vka_words())
    gas["register_vka"] = client.transact(account, fn, action="register the vka").gas_used


def _await_draw(
    client: ChainClient, check: ZkAccuracyCheckClient, claim_id: int, timeout_s: float
) -> list[int]:
    """The drawn positions, once the block after the commitment exists and a later one runs
    the call. A dev chain mines only on traffic, so there the node mines the blocks itself."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check.drawn_indices(claim_id)
        except ContractRevertError as exc:
            if exc.error_name != "ZkAccuracyCheckNotDrawnYet" or time.monotonic() > deadline:
                raise
        if client.is_dev_chain:
            client.rpc(lambda: client.w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
        else:
            time.sleep(2.0)


def expected_sample_root(
    settings_document: Mapping[str, Any] | bytes,
    val_x: NDArray[np.uint8],
    val_y: Sequence[int] | NDArray[np.int64],
) -> bytes:
    """The sample root a claim must commit for this validation set under a circuit's settings
    file (its input scale and whether inputs are hashed): what a node holding the consumer's
    validation set compares with the committed ``sampleRoot``."""
    doc = (
        json.loads(settings_document) if isinstance(settings_document, bytes) else settings_document
    )
    run_args = doc.get("run_args") if isinstance(doc, Mapping) else None
    if not isinstance(run_args, Mapping) or not isinstance(run_args.get("input_scale"), int):
        raise ZkInputError("the circuit settings carry no run_args.input_scale: not ezkl settings")
    visibility = str(run_args.get("input_visibility", "")).lower()
    if "hashed" in visibility:
        scale = int(run_args["input_scale"])
        circuit = ZkCircuit(
            Path("."), Path("."), 1, 1, 2, 1, ZkSettings(input_scale=scale, hashed_inputs=True)
        )
        felts = circuit.public_inputs(np.asarray(val_x))
    else:
        felts = [
            [felt(int(v)) for v in row]
            for row in quantise(np.asarray(val_x), int(run_args["input_scale"]))
        ]
    return sample_tree(felts, [int(y) for y in val_y]).root
