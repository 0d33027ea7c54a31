"""Verifiable results (DESIGN §7): what a result commits to and how another node checks it.

* :func:`settle` / :func:`settle_output` / :class:`ResultCommitments`: the scores document,
  payout tree and hashes of a training job's output, computed the one way the publishing node
  and every verifier compute them;
* :func:`determinism_envelope`: the library versions, thread count and CPU kernel family
  inside which a re-execution matches the original bit for bit.

Importing this package does not import torch.
"""

from visdm.verify._envelope import (
    ENVELOPE_KEYS,
    TRAINING_THREADS,
    cpu_capability,
    determinism_envelope,
)
from visdm.verify._settle import (
    ResultCommitments,
    SelectedAsset,
    Settlement,
    settle,
    settle_output,
)

__all__ = [
    "ENVELOPE_KEYS",
    "TRAINING_THREADS",
    "ResultCommitments",
    "SelectedAsset",
    "Settlement",
    "cpu_capability",
    "determinism_envelope",
    "settle",
    "settle_output",
]
