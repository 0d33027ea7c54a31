"""Federated training across regional compute nodes with Flower (DESIGN §2, §4).

A proposal whose assets may only be trained in different regions is trained by a federation:
the coordinating node runs a Flower SuperLink and the ServerApp, each regional node a SuperNode
whose ClientApp trains on that region's share of the selection only.

* :mod:`visdm.federation.processes`: :class:`~visdm.federation.processes.Federation` starts and
  stops the SuperLink (TLS with a CA made per round, SuperNode authentication with the named
  nodes' keys only) and the SuperNodes, each its own process, and runs a round with ``flwr run``.
* :mod:`visdm.federation.server_app`: FedAvg / FedProx rounds, drop-outs against the accepted
  share, then exact TKNN-Shapley values from counts (:mod:`visdm.valuation._tknn_shapley`).
* :mod:`visdm.federation.client_app`: the regional node's local DP-SGD round (the zoo, Opacus,
  the PRV accountant kept across rounds) and its TKNN count and value steps.

Importing this package loads neither Flower nor torch: the modules above do, when used.
"""

from typing import TYPE_CHECKING

from visdm._lazy import lazy_exports

if TYPE_CHECKING:
    from visdm.federation._pki import RoundTLS, SuperNodeKey, make_round_tls, new_supernode_key
    from visdm.federation.processes import Federation, RunStatus, SuperNodeProcess

__all__ = [
    "Federation",
    "RoundTLS",
    "RunStatus",
    "SuperNodeKey",
    "SuperNodeProcess",
    "make_round_tls",
    "new_supernode_key",
]

_WHERE = {
    "RoundTLS": "._pki",
    "SuperNodeKey": "._pki",
    "make_round_tls": "._pki",
    "new_supernode_key": "._pki",
    "Federation": ".processes",
    "RunStatus": ".processes",
    "SuperNodeProcess": ".processes",
}

__getattr__ = lazy_exports(__name__, _WHERE)
