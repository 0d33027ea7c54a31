"""The compute node: the only party that ever sees decrypted data (design 1, 3.2, 3.4).

:class:`AssetWorker` follows the chain with a durable cursor and attests the public metadata
of every asset it may process; :class:`NodeState` is its SQLite state.
"""

from ._node import AssetWorker, NodeConfig
from ._state import AssetOutcome, NodeState

__all__ = ["AssetOutcome", "AssetWorker", "NodeConfig", "NodeState"]
