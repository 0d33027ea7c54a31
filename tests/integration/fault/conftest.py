"""One marketplace on loopback for the fault suite, shared by its tests: anvil with a state
file (as ``visdm chain up`` runs it), two providers' attested assets, and a ``visdm node
serve`` process whose JSON-RPC goes through a fault-injecting proxy. Each test leaves it
healthy (node up, chain up, store in place, proxy clean) for the next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.fault._proxy import FaultyRpcProxy
from tests.integration.fault._world import World

#: the seed of every random choice in this suite (fault points, proxy faults)
SEED = 20261202


@pytest.fixture(scope="module")
def proxy() -> Iterator[FaultyRpcProxy]:
    # the upstream is set once the world knows its chain port
    with FaultyRpcProxy("http://127.0.0.1:1", seed=SEED) as p:
        yield p


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    proxy: FaultyRpcProxy,
    monkeypatch_module: pytest.MonkeyPatch,
) -> Iterator[World]:
    # two providers, eight images each and a 1 s node poll keep the suite near a minute of CPU
    w = World(
        tmp_path_factory.mktemp("fault-world"),
        providers=2,
        consumers=1,
        images=8,
        persist_chain=True,
        node_poll_s=1.0,
    )
    try:
        w.setup()
        w.add_assets()
        proxy.upstream = w.rpc_url
        w.node_rpc_url = proxy.url
        # a delayed answer outlasts the node's patience: a real timeout, not a slow success
        monkeypatch_module.setenv("VISDM_RPC_TIMEOUT", "2")
        w.start_node()
        w.wait_attested()
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp
