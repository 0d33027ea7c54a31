"""The accuracy claim's zero-knowledge proof, end to end on anvil: a tiny trained zoo ``mlp``
(8×8 greyscale, hidden [4], 4 classes), its ezkl circuit for k = 4 samples, ezkl's reusable
verifier compiled with the pinned solcjs, and ``ZkAccuracyCheck`` drawing the samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from eth_account.signers.local import LocalAccount

from tests.integration.verify.zkkit import SPEC, K, Kit
from visdm.chain.client import ChainClient
from visdm.errors import ContractRevertError, ZkInputError
from visdm.training import build_model
from visdm.verify._zk import ZkCircuit, ZkProof, ZkSettings
from visdm.verify._zk_chain import ZkAccuracyCheckClient, ZkDeployment, deploy_zk_check
from visdm.verify._zk_rule import FIELD_MODULUS, min_correct, sample_tree

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL_HASH = bytes(range(32))
CLAIM = 7


def mine_past_the_draw(chain: ChainClient) -> None:
    """Mine the block whose hash draws the samples, and one more: a call runs in the latest
    block, whose own hash is not readable yet."""
    chain.advance_time(1)
    chain.advance_time(1)


@dataclass
class Claimed:
    check: ZkAccuracyCheckClient
    deployment: ZkDeployment
    indices: list[int]


def commit_and_draw(
    chain: ChainClient,
    node: LocalAccount,
    kit: Kit,
    *,
    accuracy_bps: int | None = None,
    circuit: ZkCircuit | None = None,
) -> Claimed:
    circuit = circuit or kit.circuit
    deployment = deploy_zk_check(chain, node, circuit, samples=K)
    check = ZkAccuracyCheckClient(chain, deployment.check)
    bps = kit.accuracy_bps if accuracy_bps is None else accuracy_bps
    check.commit(
        node, CLAIM, circuit=circuit, model_hash=MODEL_HASH, tree=kit.tree, accuracy_bps=bps
    )
    mine_past_the_draw(chain)
    return Claimed(check, deployment, check.drawn_indices(CLAIM))


def test_an_honest_proof_on_the_drawn_samples_is_accepted(
    chain: ChainClient, node: LocalAccount, kit: Kit
) -> None:
    assert kit.accuracy_bps >= 9000  # the quadrant task is learnable: the claim is a real one
    c = commit_and_draw(chain, node, kit)
    assert c.deployment.verifier_code_bytes < 24_576  # fits EIP-170 without an anvil flag
    assert all(0 <= i < len(kit.val_y) for i in c.indices)
    proof = kit.circuit.prove(kit.val_x[c.indices])
    assert kit.circuit.verify(proof)
    assert proof.inputs() == [kit.circuit.public_inputs(kit.val_x[[i]])[0] for i in c.indices]
    correct = sum(p == kit.val_y[i] for p, i in zip(proof.predictions(), c.indices, strict=True))
    assert correct >= min_correct(K, kit.accuracy_bps)
    c.check.prove(node, CLAIM, proof, circuit=kit.circuit, tree=kit.tree, indices=c.indices)
    claim = c.check.claim(CLAIM)
    assert (claim.status, claim.correct) == ("accepted", correct)
    assert claim.vka_digest == kit.circuit.vka_digest
    assert claim.model_hash == MODEL_HASH
    assert [c.check.min_correct(k, a) for k, a in ((4, 7500), (64, 8500), (8, 10_000))] == [
        min_correct(4, 7500),
        47,
        8,
    ]


def test_a_valid_proof_showing_too_few_correct_samples_rejects_the_claim(
    chain: ChainClient, node: LocalAccount, kit: Kit
) -> None:
    """An untrained model claimed at 100 %: its own circuit, a valid proof, a rejection."""
    c = commit_and_draw(chain, node, kit, accuracy_bps=10_000, circuit=kit.other)
    proof = kit.other.prove(kit.val_x[c.indices])
    correct = sum(p == kit.val_y[i] for p, i in zip(proof.predictions(), c.indices, strict=True))
    assert correct < K
    c.check.prove(node, CLAIM, proof, circuit=kit.other, tree=kit.tree, indices=c.indices)
    assert (c.check.claim(CLAIM).status, c.check.claim(CLAIM).correct) == ("rejected", correct)


@pytest.mark.attack
def test_a_proof_from_another_model_is_rejected(
    chain: ChainClient, node: LocalAccount, kit: Kit
) -> None:
    c = commit_and_draw(chain, node, kit)
    forged = kit.other.prove(kit.val_x[c.indices])
    assert kit.other.verify(forged)  # a valid proof, of the wrong circuit
    with pytest.raises(ContractRevertError) as err:
        c.check.prove(node, CLAIM, forged, circuit=kit.other, tree=kit.tree, indices=c.indices)
    assert err.value.error_name == "ZkAccuracyCheckWrongCircuit"
    # nor does it pass under the committed circuit's key
    with pytest.raises(ContractRevertError) as err:
        c.check.prove(node, CLAIM, forged, circuit=kit.circuit, tree=kit.tree, indices=c.indices)
    assert err.value.error_name == "ZkAccuracyCheckInvalidProof"
    assert c.check.claim(CLAIM).status == "pending"


def claim_all_correct(proof: ZkProof, labels: list[int]) -> ZkProof:
    """Rewrite the public logits so that every sample's label wins."""
    instances = list(proof.instances)
    base = proof.k * proof.features
    for i, label in enumerate(labels):
        for j in range(proof.classes):
            instances[base + i * proof.classes + j] = (64 if j == label else -64) % FIELD_MODULUS
    return proof.with_instances(instances)


@pytest.mark.attack
def test_tampered_logits_claiming_more_correct_samples_are_rejected(
    chain: ChainClient, node: LocalAccount, kit: Kit
) -> None:
    c = commit_and_draw(chain, node, kit, accuracy_bps=10_000)
    proof = kit.circuit.prove(kit.val_x[c.indices])
    labels = [int(kit.val_y[i]) for i in c.indices]
    forged = claim_all_correct(proof, labels)
    assert forged.predictions() == labels  # without the proof check this would pass 100 %
    assert not kit.circuit.verify(forged)
    with pytest.raises(ContractRevertError) as err:
        c.check.prove(node, CLAIM, forged, circuit=kit.circuit, tree=kit.tree, indices=c.indices)
    assert err.value.error_name == "ZkAccuracyCheckInvalidProof"


@pytest.mark.attack
def test_a_proof_on_samples_other_than_the_drawn_ones_is_rejected(
    chain: ChainClient, node: LocalAccount, kit: Kit
) -> None:
    """The node proves on samples of its own choosing, every one a genuine committed sample
    the model gets right: only the draw stops it."""
    c = commit_and_draw(chain, node, kit, accuracy_bps=10_000)
    picks = [i for i in range(len(kit.val_y)) if i not in c.indices][:K]
    proof = kit.circuit.prove(kit.val_x[picks])
    with pytest.raises(ContractRevertError) as err:
        c.check.prove(node, CLAIM, proof, circuit=kit.circuit, tree=kit.tree, indices=picks)
    assert err.value.error_name == "ZkAccuracyCheckNotDrawnSample"
    # the drawn samples' paths and labels do not cover the chosen samples' pixels either
    with pytest.raises(ContractRevertError) as err:
        c.check.prove(node, CLAIM, proof, circuit=kit.circuit, tree=kit.tree, indices=c.indices)
    assert err.value.error_name == "ZkAccuracyCheckNotDrawnSample"
    assert c.check.claim(CLAIM).status == "pending"


def test_the_refusals_around_a_claim(
    chain: ChainClient, node: LocalAccount, stranger: LocalAccount, kit: Kit
) -> None:
    deployment = deploy_zk_check(chain, node, kit.circuit, samples=K)
    check = ZkAccuracyCheckClient(chain, deployment.check)
    commit = {"circuit": kit.circuit, "model_hash": MODEL_HASH, "tree": kit.tree}
    check.commit(node, CLAIM, accuracy_bps=9000, **commit)  # type: ignore[arg-type]
    with pytest.raises(ContractRevertError) as err:  # the draw's block is not mined yet
        check.drawn_indices(CLAIM)
    assert err.value.error_name == "ZkAccuracyCheckNotDrawnYet"
    with pytest.raises(ContractRevertError) as err:
        check.commit(node, CLAIM, accuracy_bps=9000, **commit)  # type: ignore[arg-type]
    assert err.value.error_name == "ZkAccuracyCheckWrongStatus"
    with pytest.raises(ContractRevertError) as err:
        check.commit(node, CLAIM + 1, accuracy_bps=10_001, **commit)  # type: ignore[arg-type]
    assert err.value.error_name == "ZkAccuracyCheckBadInput"
    mine_past_the_draw(chain)
    indices = check.drawn_indices(CLAIM)
    proof = kit.circuit.prove(kit.val_x[indices])
    with pytest.raises(ContractRevertError) as err:
        check.prove(stranger, CLAIM, proof, circuit=kit.circuit, tree=kit.tree, indices=indices)
    assert err.value.error_name == "ZkAccuracyCheckNotNode"
    short = ZkProof(proof.proof, proof.instances[:-1], K, proof.features, proof.classes)
    with pytest.raises(ContractRevertError) as err:
        check.prove(node, CLAIM, short, circuit=kit.circuit, tree=kit.tree, indices=indices)
    assert err.value.error_name == "ZkAccuracyCheckBadInput"
    with pytest.raises(ContractRevertError) as err:  # 256 blocks to prove in
        chain.transact(node, check.contract.functions.expire(CLAIM))
    assert err.value.error_name == "ZkAccuracyCheckNotDrawnYet"


def test_with_hashed_inputs_each_sample_is_one_public_hash(
    chain: ChainClient, node: LocalAccount, kit: Kit, tmp_path: Path
) -> None:
    """The Poseidon-hashed variant: one public instance per sample, the same contract."""
    torch.manual_seed(5)
    circuit = ZkCircuit.build(
        build_model(SPEC).eval(),
        input_shape=(1, 8, 8),
        num_classes=4,
        k=2,
        workdir=tmp_path / "hashed",
        srs_dir=tmp_path / "srs",
        settings=ZkSettings(hashed_inputs=True),
    )
    assert circuit.public_width == 1
    tree = sample_tree(circuit.public_inputs(kit.val_x), [int(y) for y in kit.val_y])
    deployment = deploy_zk_check(chain, node, circuit, samples=2)
    check = ZkAccuracyCheckClient(chain, deployment.check)
    check.commit(node, CLAIM, circuit=circuit, model_hash=MODEL_HASH, tree=tree, accuracy_bps=0)
    mine_past_the_draw(chain)
    indices = check.drawn_indices(CLAIM)
    proof = circuit.prove(kit.val_x[indices])
    assert len(proof.instances) == 2 * (1 + 4)
    assert proof.inputs() == [circuit.public_inputs(kit.val_x[[i]])[0] for i in indices]
    other = [i for i in range(len(kit.val_y)) if i not in indices][:2]
    with pytest.raises(ContractRevertError) as err:  # a hash of undrawn samples
        check.prove(
            node,
            CLAIM,
            circuit.prove(kit.val_x[other]),
            circuit=circuit,
            tree=tree,
            indices=indices,
        )
    assert err.value.error_name == "ZkAccuracyCheckNotDrawnSample"
    check.prove(node, CLAIM, proof, circuit=circuit, tree=tree, indices=indices)
    assert check.claim(CLAIM).status == "accepted"  # a claim of 0 % needs no correct sample


def test_a_verifier_rebuilds_the_committed_circuit_from_the_model_and_its_settings(
    kit: Kit, tmp_path: Path
) -> None:
    """What ties the vka digest to the model hash off chain: the same model and the node's
    published settings file give the same digest under the same SRS; another model does
    not."""
    rebuilt = ZkCircuit.build(
        kit.model,
        input_shape=(1, 8, 8),
        num_classes=4,
        k=K,
        workdir=tmp_path / "again",
        srs_dir=kit.circuit.srs_path.parent,
        published_settings=kit.circuit.settings_path,
    )
    assert rebuilt.vka_digest == kit.circuit.vka_digest
    torch.manual_seed(3)
    other = ZkCircuit.build(
        build_model(SPEC).eval(),
        input_shape=(1, 8, 8),
        num_classes=4,
        k=K,
        workdir=tmp_path / "other",
        srs_dir=kit.circuit.srs_path.parent,
        published_settings=kit.circuit.settings_path,
    )
    assert other.vka_digest != kit.circuit.vka_digest
    hashed = ZkSettings(hashed_inputs=True)
    with pytest.raises(ZkInputError, match="asks for another circuit"):
        ZkCircuit.build(
            kit.model,
            input_shape=(1, 8, 8),
            num_classes=4,
            k=K,
            workdir=tmp_path / "bad",
            srs_dir=kit.circuit.srs_path.parent,
            settings=hashed,
            published_settings=kit.circuit.settings_path,
        )
