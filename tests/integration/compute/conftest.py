"""Fixtures of the compute-node tests: a small market with two providers' attested assets."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.roundkit import Round
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment


@pytest.fixture
def images_per_provider() -> int:
    """Override in a module to make the market smaller."""
    return 60


@pytest.fixture
def rnd(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
    images_per_provider: int,
) -> Round:
    r = Round(chain, deployment, tmp_path / "home", dict(funded_roles))
    r.add_assets(tmp_path, per_provider=images_per_provider)
    return r
