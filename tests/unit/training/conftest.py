"""Small Fashion-MNIST subsets and specs shared by the training tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from visdm.datasets import load_fashion_mnist

#: a fixed job seed: the tests play the node, which would draw one with new_job_seed()
SEED = bytes(range(32))

Data = tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8], NDArray[np.int64]]


@pytest.fixture(scope="session")
def fmnist() -> Data:
    """512 training and 256 validation images (the first of each split)."""
    x, y = load_fashion_mnist("train", limit=512)
    xv, yv = load_fashion_mnist("test", limit=256)
    return x, y, xv, yv


def make_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "architecture": "small_cnn",
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "epochs": 1,
        "batch_size": 32,
        "optimizer": "adam",
        "learning_rate": 1e-3,
    }
    spec.update(overrides)
    return spec
