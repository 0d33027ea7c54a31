"""A Flower ``Grid`` whose regions answer in this process: the round's logic without processes.

:class:`LocalGrid` hands each message of :func:`visdm.federation.server_app.run_federated` to the
ClientApp's handlers with one region's node config, so a benchmark (or a test) measures what
federation does to accuracy and values apart from what processes, TLS and the network cost.
Each region still keeps its own state directory, seed and accountant file, as on a node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flwr.app import Message
from flwr.supercore.task_identity import TaskIdentity

from visdm.federation.client_app import handle_query, handle_train

__all__ = ["LocalGrid"]


class LocalGrid:
    """Nodes ``101, 102, ...`` in the order of ``node_configs``, all answering in-process."""

    def __init__(
        self, node_configs: Mapping[str, Mapping[str, Any]], run_config: Mapping[str, Any]
    ) -> None:
        self.nodes = {101 + i: dict(c) for i, c in enumerate(node_configs.values())}
        self.run_config = dict(run_config)
        self.bytes_down = self.bytes_up = 0
        # a ServerApp process has these set by the SuperLink; messages are stamped with them
        TaskIdentity.run_id = TaskIdentity.task_id = 1
        TaskIdentity.node_id = 1

    def get_node_ids(self) -> Iterable[int]:
        return list(self.nodes)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for msg in messages:
            node = int(msg.metadata.dst_node_id)
            handler = handle_train if msg.metadata.message_type == "train" else handle_query
            content = handler(msg, self.run_config, self.nodes[node])
            self.bytes_down += _size(msg.content)
            self.bytes_up += _size(content)
            replies.append(Message(content, reply_to=msg))
        return replies


def _size(content: Any) -> int:
    """Bytes of the arrays and lists a message carries (what the wire must move at least)."""
    total = 0
    for record in content.array_records.values():
        total += sum(len(a.data) for a in record.values())
    for record in content.config_records.values():
        for value in record.values():
            total += 8 * len(value) if isinstance(value, list) else 8
    return total
