"""The sampled accuracy check's arithmetic, exactly as ``ZkAccuracyCheck.sol`` does it.

* :func:`min_correct`: the acceptance threshold c_min for k checked samples and a claimed
  accuracy a, the largest c with P[Bin(k, a) < c] ≤ 1 %, so an honest node is wrongly
  rejected at most 1 % of the time. The contract computes it in 18-decimal fixed point, term
  by term; this mirrors its integer operations so both sides agree on every input.
* :func:`false_accept`: P[Bin(k, a − δ) ≥ c_min], the chance that a node whose true accuracy
  is a − δ passes (exact, in floating point; for reporting only).
* :func:`draw_indices`: the k validation positions chain randomness picks, with replacement,
  which is what makes the count of correct samples exactly binomial.
* :func:`sample_leaf` / :func:`sample_tree`: the Merkle tree over (position, hash of the
  sample's quantised pixels, label) that a claim commits before the draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

from visdm.errors import ZkInputError
from visdm.merkle import PositionalMerkleTree

__all__ = [
    "FALSE_REJECT_BPS",
    "MAX_SAMPLES",
    "SAMPLE_LEAF_ENCODING",
    "draw_indices",
    "false_accept",
    "inputs_hash",
    "min_correct",
    "sample_tree",
]

#: the most samples one proof may check (the contract's bound as well)
MAX_SAMPLES = 256
#: the honest node's worst-case rejection probability, in basis points
FALSE_REJECT_BPS = 100
#: ABI types of a sample leaf: position in the validation set, inputs hash, label
SAMPLE_LEAF_ENCODING = ("uint256", "bytes32", "uint256")

#: the weight of the binomial's mode in :func:`min_correct`
_MODE_WEIGHT = 10**36
_BPS = 10_000
#: BN254's scalar field: public inputs are elements of it
FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SAMPLES:
        raise ZkInputError(f"k must be an integer in 1..{MAX_SAMPLES}, got {k!r}")


def _check_bps(accuracy_bps: int) -> None:
    if isinstance(accuracy_bps, bool) or not isinstance(accuracy_bps, int):
        raise ZkInputError(f"accuracy must be an integer in basis points, got {accuracy_bps!r}")
    if not 0 <= accuracy_bps <= _BPS:
        raise ZkInputError(f"accuracy must be within 0..10000 bps, got {accuracy_bps}")


def min_correct(k: int, accuracy_bps: int) -> int:
    """c_min: the largest c with P[Bin(k, a) < c] ≤ 1 %, a = ``accuracy_bps`` / 10,000.

    Integer arithmetic only, as on chain: the binomial weights are walked from the mode
    m = ⌊(k + 1)·a⌋, which gets weight 10³⁶, down and up by the ratios of neighbouring terms
    (``j·B / ((k − j + 1)·A)`` down, ``(k − j)·A / ((j + 1)·B)`` up, A = bps, B = 10,000 − A),
    so no weight exceeds the mode's and none overflows; a weight that rounds to 0 was below
    10⁻³⁶ of the mode's. The answer is the first j whose cumulative weight passes 1 % of the
    total.
    """
    _check_k(k)
    _check_bps(accuracy_bps)
    big_a, big_b = accuracy_bps, _BPS - accuracy_bps
    mode = min((k + 1) * big_a // _BPS, k)
    weights = [0] * (k + 1)
    weights[mode] = _MODE_WEIGHT
    for j in range(mode, 0, -1):  # big_a > 0 here: mode 0 when it is 0
        weights[j - 1] = weights[j] * j * big_b // ((k - j + 1) * big_a)
    for j in range(mode, k):  # big_b > 0 here: mode k when it is 0
        weights[j + 1] = weights[j] * (k - j) * big_a // ((j + 1) * big_b)
    total = sum(weights)
    cdf = 0
    for j in range(k + 1):
        cdf += weights[j]
        if cdf * _BPS > FALSE_REJECT_BPS * total:
            return j
    return k  # unreachable: the cumulative weight ends at the total


def false_accept(k: int, c_min: int, true_accuracy: float) -> float:
    """P[Bin(k, p) ≥ c_min]: the chance a node with true accuracy ``p`` passes."""
    _check_k(k)
    if not 0.0 <= true_accuracy <= 1.0:
        raise ZkInputError(f"true accuracy must be within 0..1, got {true_accuracy}")
    p = true_accuracy
    return sum(math.comb(k, j) * p**j * (1 - p) ** (k - j) for j in range(max(c_min, 0), k + 1))


def draw_indices(randomness: bytes, claim_id: int, count: int, k: int) -> list[int]:
    """The k positions (with replacement) ``keccak256(abi.encode(r, id, i)) mod n`` picks."""
    _check_k(k)
    if len(randomness) != 32:
        raise ZkInputError(f"randomness must be 32 bytes, got {len(randomness)}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ZkInputError(f"the validation set must hold at least one sample, got {count!r}")
    return [
        int.from_bytes(
            keccak(abi_encode(["bytes32", "uint256", "uint256"], [randomness, claim_id, i])), "big"
        )
        % count
        for i in range(k)
    ]


def inputs_hash(felts: Sequence[int]) -> bytes:
    """``keccak256(abi.encodePacked(uint256[] felts))``: one sample's quantised pixels."""
    if any(not 0 <= f < FIELD_MODULUS for f in felts):
        raise ZkInputError("a sample's public inputs must be elements of BN254's scalar field")
    return bytes(keccak(b"".join(f.to_bytes(32, "big") for f in felts)))


def sample_tree(felts: Sequence[Sequence[int]], labels: Sequence[int]) -> PositionalMerkleTree:
    """The tree over ``(position, inputs_hash, label)`` a claim commits the root of."""
    if len(felts) != len(labels):
        raise ZkInputError(f"{len(felts)} samples but {len(labels)} labels: give one per sample")
    if not felts:
        raise ZkInputError("the validation set is empty: commit at least one sample")
    return PositionalMerkleTree(
        [(i, inputs_hash(x), int(y)) for i, (x, y) in enumerate(zip(felts, labels, strict=True))],
        SAMPLE_LEAF_ENCODING,
    )
