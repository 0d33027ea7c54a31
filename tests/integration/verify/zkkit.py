"""The small trained model and circuits the accuracy-proof tests share: a zoo ``mlp`` (8×8
greyscale, hidden [4], 4 classes) trained on a learnable quadrant task, its ezkl circuit for
k = 4 samples, another (untrained) model's circuit, and the validation set's sample tree.
Built once per session (about 15 s): the market-bound tests and the stand-alone ones share it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from visdm.merkle import PositionalMerkleTree
from visdm.training import build_model, parse_model_spec, train
from visdm.verify._zk import ZkCircuit
from visdm.verify._zk_rule import sample_tree

K = 4
SPEC = parse_model_spec(
    {
        "architecture": "mlp",
        "input_shape": [1, 8, 8],
        "num_classes": 4,
        "epochs": 3,
        "batch_size": 16,
        "optimizer": "adam",
        "learning_rate": 0.05,
        "hidden": [4],
    }
)


def quadrant_images(n: int, seed: int) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Noise with one bright quadrant; the label is the quadrant."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 80, (n, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 4, n)
    for image, label in zip(images, labels, strict=True):
        r, c = divmod(int(label), 2)
        image[4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 150
    return images, labels


@dataclass
class Kit:
    model: torch.nn.Module
    circuit: ZkCircuit
    other: ZkCircuit  # another model's circuit
    val_x: NDArray[np.uint8]
    val_y: NDArray[np.int64]
    tree: PositionalMerkleTree
    accuracy_bps: int


def build_kit(root: Path) -> Kit:
    train_x, train_y = quadrant_images(256, 1)
    val_x, val_y = quadrant_images(32, 2)
    result = train(SPEC, train_x, train_y, val_x, val_y, seed=bytes(32))
    circuit = ZkCircuit.build(
        result.model,
        input_shape=(1, 8, 8),
        num_classes=4,
        k=K,
        workdir=root / "model",
        srs_dir=root / "srs",
    )
    torch.manual_seed(3)
    other = ZkCircuit.build(
        build_model(SPEC).eval(),
        input_shape=(1, 8, 8),
        num_classes=4,
        k=K,
        workdir=root / "other",
        srs_dir=root / "srs",
    )
    tree = sample_tree(circuit.public_inputs(val_x), [int(y) for y in val_y])
    return Kit(result.model, circuit, other, val_x, val_y, tree, result.accuracy_bps)
