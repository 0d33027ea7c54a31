"""The sampled accuracy rule (c_min, false accepts), the draw and the sample tree, and the
refusals of the proof pipeline that need no proving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from visdm.errors import ZkArtifactError, ZkInputError
from visdm.merkle import leaf_hash
from visdm.verify._zk import ZkCircuit, ZkProof, ZkSettings, node_srs_dir, quantise, signed
from visdm.verify._zk_rule import (
    FIELD_MODULUS,
    SAMPLE_LEAF_ENCODING,
    draw_indices,
    false_accept,
    inputs_hash,
    min_correct,
    sample_tree,
)

pytestmark = pytest.mark.unit


def reference_min_correct(k: int, bps: int) -> int:
    """The largest c with P[Bin(k, a) < c] ≤ 1 %, from scipy's binomial."""
    return max(c for c in range(k + 2) if binom.cdf(c - 1, k, bps / 10_000) <= 0.01)


@given(st.integers(1, 256), st.integers(0, 10_000))
@settings(max_examples=100, deadline=None)
def test_min_correct_is_the_binomial_threshold(k: int, bps: int) -> None:
    assert min_correct(k, bps) == reference_min_correct(k, bps)


def test_the_table_of_the_documentation() -> None:
    assert [min_correct(k, 8500) for k in (8, 32, 64, 256)] == [4, 22, 47, 204]
    c = min_correct(64, 8500)
    assert false_accept(64, c, 0.85 - 0.30) == pytest.approx(0.002, abs=5e-4)
    assert false_accept(64, c, 0.75) == pytest.approx(0.674, abs=5e-3)
    # the honest node's false rejection stays within 1 %
    for k in (4, 8, 32, 64):
        assert 1 - false_accept(k, min_correct(k, 8500), 0.85) <= 0.01


def test_the_ends_of_the_accuracy_range() -> None:
    assert min_correct(8, 10_000) == 8  # a perfect claim needs every sample right
    assert min_correct(8, 0) == 0


@pytest.mark.parametrize(
    ("k", "bps"), [(0, 5000), (257, 5000), (True, 5000), (8, -1), (8, 10_001), (8, 0.5)]
)
def test_min_correct_refuses_bad_input(k: object, bps: object) -> None:
    with pytest.raises(ZkInputError, match=r"k must be|accuracy must"):
        min_correct(k, bps)  # type: ignore[arg-type]


def test_the_draw_matches_the_contract_formula() -> None:
    r = bytes(range(32))
    drawn = draw_indices(r, 7, 1000, 8)
    expected = [
        int.from_bytes(keccak(abi_encode(["bytes32", "uint256", "uint256"], [r, 7, i])), "big")
        % 1000
        for i in range(8)
    ]
    assert drawn == expected
    assert all(0 <= i < 1000 for i in drawn)
    assert draw_indices(r, 8, 1000, 8) != drawn  # another claim, another draw


@pytest.mark.parametrize(
    ("randomness", "count", "k", "match"),
    [
        (b"\x00" * 31, 10, 4, "32 bytes"),
        (b"\x00" * 32, 0, 4, "at least one"),
        (b"\x00" * 32, 10, 0, "k must"),
    ],
)
def test_the_draw_refuses_bad_input(randomness: bytes, count: int, k: int, match: str) -> None:
    with pytest.raises(ZkInputError, match=match):
        draw_indices(randomness, 1, count, k)


def test_the_sample_tree_commits_position_pixels_and_label() -> None:
    felts = [[1, 2, FIELD_MODULUS - 1], [0, 0, 5], [3, 3, 3]]
    tree = sample_tree(felts, [2, 0, 1])
    assert len(tree) == 3
    leaf = leaf_hash(SAMPLE_LEAF_ENCODING, (1, inputs_hash(felts[1]), 0))
    path = tree.proof(1)
    node = leaf
    for sibling in path:
        node = keccak(min(node, sibling) + max(node, sibling))
    assert node == tree.root
    assert sample_tree(felts, [2, 1, 1]).root != tree.root  # a relabelled sample


@pytest.mark.parametrize(
    ("felts", "labels", "match"),
    [
        ([[1]], [0, 1], "1 samples but 2 labels"),
        ([], [], "empty"),
        ([[FIELD_MODULUS]], [0], "field"),
    ],
)
def test_the_sample_tree_refuses_bad_input(
    felts: list[list[int]], labels: list[int], match: str
) -> None:
    with pytest.raises(ZkInputError, match=match):
        sample_tree(felts, labels)


def test_quantisation_rounds_half_away_from_zero() -> None:
    images = np.array([[[0, 255, 127, 128]]], dtype=np.uint8)  # x = -1, 1, -0.0039, 0.0039
    assert quantise(images, 4).tolist() == [[-16, 16, 0, 0]]
    assert quantise(np.array([[[6, 249]]], dtype=np.uint8), 4).tolist() == [[-15, 15]]
    assert signed(FIELD_MODULUS - 3) == -3 and signed(3) == 3


def test_proof_predictions_read_signed_logits() -> None:
    logits = [[FIELD_MODULUS - 5, 2, 2], [0, FIELD_MODULUS - 1, FIELD_MODULUS - 2]]
    proof = ZkProof(b"", tuple([0, 0] + [v for row in logits for v in row]), 2, 1, 3)
    assert proof.logits() == [[-5, 2, 2], [0, -1, -2]]
    assert proof.predictions() == [1, 0]  # the first of equal logits wins, as on chain


def circuit_at(tmp_path: Path, k: int = 2) -> ZkCircuit:
    return ZkCircuit(tmp_path, tmp_path / "kzg12.srs", k, 4, 3, 12, ZkSettings())


def test_missing_artifacts_are_named(tmp_path: Path) -> None:
    circuit = circuit_at(tmp_path)
    images = np.zeros((2, 2, 2), dtype=np.uint8)
    with pytest.raises(ZkArtifactError, match=r"model\.compiled is missing: rebuild"):
        circuit.prove(images)
    with pytest.raises(ZkArtifactError, match=r"vka\.bin is missing"):
        circuit.vka_words()
    with pytest.raises(ZkArtifactError, match=r"vk\.key is missing"):
        circuit.verifier_source()
    (tmp_path / "vka.bin").write_bytes((3).to_bytes(8, "little") + b"\x00" * 40)
    with pytest.raises(ZkArtifactError, match="expected 96"):
        circuit.vka_words()


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((3, 2, 2), dtype=np.uint8), "exactly k=2"),
        (np.zeros((2, 2, 2), dtype=np.float32), "exactly k=2"),
        (np.zeros((2, 3, 3), dtype=np.uint8), "the circuit takes 4"),
    ],
)
def test_prove_refuses_images_of_the_wrong_count_or_shape(
    tmp_path: Path, images: np.ndarray, match: str
) -> None:
    with pytest.raises(ZkInputError, match=match):
        circuit_at(tmp_path).prove(images)


def test_build_refuses_a_bad_k(tmp_path: Path) -> None:
    for k in (0, 257, True):
        with pytest.raises(ZkInputError, match=r"k must be an integer in 1\.\.256"):
            ZkCircuit.build(
                None, input_shape=(1, 2, 2), num_classes=3, k=k, workdir=tmp_path, srs_dir=tmp_path
            )


def test_a_proof_file_of_another_shape_is_refused(tmp_path: Path) -> None:
    circuit = circuit_at(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ZkInputError, match="is not an ezkl proof file"):
        circuit.load_proof(bad)
    bad.write_text(json.dumps({"instances": [["00" * 32] * 5], "hex_proof": "0x00"}))
    with pytest.raises(ZkInputError, match="has 5 public inputs, the circuit for k=2 has 14"):
        circuit.load_proof(bad)
    with pytest.raises(ZkArtifactError, match="missing"):
        circuit.load_proof(tmp_path / "absent.json")


def test_the_srs_lives_in_the_node_directory(tmp_path: Path) -> None:
    assert node_srs_dir(tmp_path / "node") == tmp_path / "node" / "zk" / "srs"
