"""What the better default buys on the demo's market: the old and the new round spec, trained
on the same images, scored on the same validation set, with the same seeds.

The market's round trains once, with the node's secret randomness, so it cannot show what the
consumer would have got with the spec the demo used before (an MLP with Adam,
``round_spec(..., improved=False)``). This trains both in this process, outside the market, on
the providers' images as labelled (noise included) and the consumer's validation set without
its planted copies (the node's screen drops them). ``visdm demo`` reports one seed;
``benchmarks/training.py`` the mean of three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from visdm.datasets import load_fashion_mnist

from ._cast import DemoConfig, _holdings, validation_arrays

__all__ = ["compare_specs"]


def compare_specs(
    config: DemoConfig, seeds: Sequence[bytes], *, num_threads: int = 1
) -> list[dict[str, Any]]:
    """``before`` and ``now``: each spec's architecture, DP budget, training images and accuracy
    in percent per seed (``accuracies``) and their mean (``accuracy``)."""
    from visdm.demo._play import round_spec
    from visdm.training import train

    x, y = load_fashion_mnist("train", limit=config.images_per_provider * len(config.cast))
    held = _holdings(config, y)
    x_train = np.concatenate([x[idx] for _, idx, _ in held])
    y_train = np.concatenate([labels for _, _, labels in held])
    xv, yv = validation_arrays(config)
    xv, yv = xv[config.validation_copies :], yv[config.validation_copies :]
    n = len(y_train)
    rows = []
    for label, improved in (("before", False), ("now", True)):
        spec = round_spec(config, n, improved=improved)
        accs = [
            train(spec, x_train, y_train, xv, yv, seed=s, num_threads=num_threads).accuracy_bps
            / 100
            for s in seeds
        ]
        dp = spec.get("dp") or {}
        rows.append(
            {
                "spec": label,
                "architecture": spec["architecture"],
                "optimizer": spec["optimizer"],
                "epsilon": dp.get("target_epsilon"),
                "trainImages": n,
                "validationImages": len(yv),
                "accuracies": accs,
                "accuracy": float(np.mean(accs)),
            }
        )
    return rows
