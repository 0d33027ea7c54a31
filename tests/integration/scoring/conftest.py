"""Fixtures of the scoring-round tests: the compute tests' small market (two providers'
attested Fashion-MNIST assets), a published reference, a funded pool and a scoring node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.roundkit import NAMES, Round
from visdm import scoring
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.compute import ScoringConfig, ScoringWorker

#: the deployment's rate: 0.001 token per scored sample
RATE = 10**15
#: a small reference keeps each scoring job to a few seconds
REFERENCE_SAMPLES = 150


@pytest.fixture
def images_per_provider() -> int:
    return 30


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


@pytest.fixture
def reference(rnd: Round, governance: LocalAccount) -> scoring.ScoringReference:
    """The pool's reference: Fashion-MNIST test images under the market's label names."""
    published = scoring.publish_reference(
        rnd.chain,
        rnd.deployment,
        rnd.store,
        governance,
        classes=NAMES,
        validation_samples=REFERENCE_SAMPLES,
        anchor_samples=REFERENCE_SAMPLES,
    )
    return published.reference


@pytest.fixture
def funded(rnd: Round, reference: scoring.ScoringReference) -> int:
    """The pool holds 1 token (1,000 samples' pay), paid in by the consumer."""
    consumer = rnd.accounts["consumer"].local_account
    scoring.fund(rnd.chain, rnd.deployment, consumer, 10**18)
    return 10**18


def scorer(rnd: Round, name: str = "node", **kwargs: object) -> ScoringWorker:
    config = ScoringConfig(workdir=rnd.settings.home / f"{name}-scoring", **kwargs)  # type: ignore[arg-type]
    return ScoringWorker(rnd.chain, rnd.deployment, rnd.store, rnd.accounts[name], config)


@pytest.fixture
def worker(rnd: Round, funded: int) -> Iterator[ScoringWorker]:
    w = scorer(rnd)
    yield w
    w.close()
