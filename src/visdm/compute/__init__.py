"""The compute node: the only party that ever sees decrypted data (design 1, 3.2, 3.4).

:class:`AssetWorker` follows the chain with a durable cursor and attests the public metadata
of every asset it may process; :class:`NodeState` is its SQLite state; :mod:`.sandbox` runs
training jobs isolated from the network and the filesystem; :class:`ScoringWorker` scores
batches for the scoring pool when the node is idle.

Names are loaded on first use (PEP 562) so that the sandbox worker, which imports
``visdm.compute.sandbox``, does not pay for web3 at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visdm._lazy import lazy_exports

if TYPE_CHECKING:
    from ._jobs import Job, JobJournal
    from ._node import AssetWorker, NodeConfig
    from ._scoring import ScoringConfig, ScoringJournal, ScoringWorker
    from ._state import AssetOutcome, NodeState
    from ._training import JobFailedError, TrainingConfig, TrainingWorker

__all__ = [
    "AssetOutcome",
    "AssetWorker",
    "Job",
    "JobFailedError",
    "JobJournal",
    "NodeConfig",
    "NodeState",
    "ScoringConfig",
    "ScoringJournal",
    "ScoringWorker",
    "TrainingConfig",
    "TrainingWorker",
]

_WHERE = {
    "AssetWorker": "._node",
    "NodeConfig": "._node",
    "AssetOutcome": "._state",
    "NodeState": "._state",
    "ScoringConfig": "._scoring",
    "ScoringJournal": "._scoring",
    "ScoringWorker": "._scoring",
    "Job": "._jobs",
    "JobJournal": "._jobs",
    "JobFailedError": "._training",
    "TrainingConfig": "._training",
    "TrainingWorker": "._training",
}

__getattr__ = lazy_exports(__name__, _WHERE)
