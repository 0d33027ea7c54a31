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

Steps 1 and 4's proof need the trained model and the decoded validation set; the rest needs the
chain. :func:`prove_claim` does the chain's part and hands the other to a :class:`ClaimProver`:
:class:`InProcessProver` (what :func:`prove_result` uses), or the compute node's prover, which
runs both in its sandbox so that the node process never decodes the consumer's images.

:func:`expected_sample_root` is the check a node holding the consumer's validation set makes:
the root a claim should commit for it, given the circuit's settings file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from eth_account.signers.local import LocalAccount
from numpy.typing import NDArray

from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus, ResultCourt, TrainingMarket
from visdm.errors import ContractRevertError, VisdmError, ZkInputError
from visdm.merkle import PositionalMerkleTree
from visdm.storage import ContentStore
from visdm.verify._zk import ZkCircuit, ZkProof, ZkSettings, felt, quantise
from visdm.verify._zk_chain import ZkAccuracyCheckClient
from visdm.verify._zk_rule import sample_tree

__all__ = [
    "ClaimProver",
    "InProcessProver",
    "ZkProofRun",
    "expected_sample_root",
    "prove_claim",
    "prove_result",
]

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


class ClaimProver(Protocol):
    """The half of proving that needs the model and the validation set in the clear: building
    the circuit (and the sample tree it commits) and proving the drawn samples. In process
    (:class:`InProcessProver`) or in the node's sandbox (``visdm.compute``); the chain half is
    :func:`prove_claim`'s."""

    def build(self, k: int) -> tuple[ZkCircuit, PositionalMerkleTree]:
        """The circuit of the trained model for k samples, and the validation set's tree."""
        ...

    def resume(self, k: int) -> tuple[ZkCircuit, PositionalMerkleTree] | None:
        """The circuit and tree built earlier for this claim, if they are still at hand."""
        ...

    def prove(self, circuit: ZkCircuit, indices: Sequence[int]) -> ZkProof:
        """The proof of the validation samples at ``indices``, in draw order."""
        ...


@dataclass
class InProcessProver:
    """Builds and proves in this process: ``model`` is the trained network in eval mode (the
    one whose hash the result committed), ``val_x``/``val_y`` the consumer's validation images
    (uint8) and labels, in the order the accuracy was measured."""

    model: Any
    input_shape: tuple[int, int, int]
    num_classes: int
    val_x: NDArray[np.uint8]
    val_y: Sequence[int] | NDArray[np.int64]
    workdir: Path | str
    srs_dir: Path | str
    settings: ZkSettings | None = None

    def build(self, k: int) -> tuple[ZkCircuit, PositionalMerkleTree]:
        labels = [int(y) for y in self.val_y]
        if len(labels) != len(self.val_x) or not labels:
            raise ZkInputError(
                f"{len(self.val_x)} validation images and {len(labels)} labels: give one label "
                "per image"
            )
        circuit = ZkCircuit.build(
            self.model,
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            k=k,
            workdir=self.workdir,
            srs_dir=self.srs_dir,
            settings=self.settings,
        )
        return circuit, sample_tree(circuit.public_inputs(np.asarray(self.val_x)), labels)

    def resume(self, k: int) -> tuple[ZkCircuit, PositionalMerkleTree] | None:
        return None  # the in-process circuit lives as long as its caller

    def prove(self, circuit: ZkCircuit, indices: Sequence[int]) -> ZkProof:
        return circuit.prove(np.asarray(self.val_x)[list(indices)])


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
    """Commit and prove the accuracy claim of ``proposal_id``'s submitted result, in process
    (:class:`InProcessProver` with :func:`prove_claim`).

    ``model`` is the trained network in eval mode (the one whose hash the result committed),
    ``val_x``/``val_y`` the consumer's validation images (uint8) and labels, in the order the
    accuracy was measured. Raises :class:`~visdm.errors.ZkInputError` when the job needs no
    proof or its result is not a WTP-met one still in its window, and
    :class:`~visdm.errors.ContractRevertError` when the check refuses a step. A claim already
    committed and settled (accepted, rejected, expired) is returned as it stands.
    """
    prover = InProcessProver(
        model, input_shape, num_classes, val_x, val_y, workdir, srs_dir, settings
    )
    return prove_claim(
        client,
        market,
        court,
        store,
        account,
        proposal_id=proposal_id,
        prover=prover,
        draw_timeout_s=draw_timeout_s,
    )


def prove_claim(
    client: ChainClient,
    market: TrainingMarket,
    court: ResultCourt,
    store: ContentStore,
    account: LocalAccount,
    *,
    proposal_id: int,
    prover: ClaimProver,
    draw_timeout_s: float = 120.0,
) -> ZkProofRun:
    """The chain half of proving ``proposal_id``'s claim, with ``prover`` for the rest: store
    the circuit's settings file, register the vka, commit, wait for the draw, send the proof.

    A claim this node committed earlier and left pending is proven with the circuit
    ``prover.resume`` still has (a node restarted between commit and proof); one already
    accepted, rejected or expired is returned as it stands, nothing sent.
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
    check = ZkAccuracyCheckClient(client, proof_state.check)
    seconds: dict[str, float] = {}
    gas: dict[str, int] = {}
    k = check.samples()
    if proof_state.status != "none":
        return _committed(check, store, prover, proposal_id, k, draw_timeout_s, account)
    started = time.perf_counter()
    circuit, tree = prover.build(k)
    seconds["circuit"] = time.perf_counter() - started
    circuit_cid = str(store.put(circuit.settings_path.read_bytes(), pin=True))
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
    return _prove_drawn(
        check,
        prover,
        account,
        proposal_id,
        (circuit, tree, circuit_cid),
        draw_timeout_s,
        gas,
        seconds,
    )


def _prove_drawn(  # noqa: PLR0917 - two private call sites
    check: ZkAccuracyCheckClient,
    prover: ClaimProver,
    account: LocalAccount,
    proposal_id: int,
    built: tuple[ZkCircuit, PositionalMerkleTree, str],
    draw_timeout_s: float,
    gas: dict[str, int],
    seconds: dict[str, float],
) -> ZkProofRun:
    circuit, tree, circuit_cid = built
    indices = _await_draw(check.client, check, proposal_id, draw_timeout_s)
    started = time.perf_counter()
    proof = prover.prove(circuit, indices)
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


def _committed(  # noqa: PLR0917 - one private call site
    check: ZkAccuracyCheckClient,
    store: ContentStore,
    prover: ClaimProver,
    proposal_id: int,
    k: int,
    draw_timeout_s: float,
    account: LocalAccount,
) -> ZkProofRun:
    """A claim committed before: prove it if it is pending and its circuit is at hand,
    otherwise say where it stands."""
    claim = check.claim(proposal_id)
    circuit_cid = check.circuit_cid(proposal_id) or ""
    if claim.status == "pending":
        built = prover.resume(k)
        if built is None or built[0].vka_digest != claim.vka_digest:
            raise ZkInputError(
                f"proposal {proposal_id}'s accuracy claim is committed and pending, but the "
                "circuit it committed is not at hand to prove it: it expires 256 blocks after "
                "its commitment, and the court then overturns the result"
            )
        return _prove_drawn(
            check, prover, account, proposal_id, (*built, circuit_cid), draw_timeout_s, {}, {}
        )
    try:
        indices = tuple(check.drawn_indices(proposal_id))
    except ContractRevertError:
        indices = ()  # the draw is no longer readable
    logrows = 0
    if circuit_cid:
        with contextlib.suppress(VisdmError, ValueError, KeyError, TypeError):
            logrows = int(json.loads(store.get(circuit_cid))["run_args"]["logrows"])
    return ZkProofRun(proposal_id, claim.status, claim.correct, indices, circuit_cid, logrows)


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
