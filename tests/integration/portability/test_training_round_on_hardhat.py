"""One full training round on Hardhat's node: propose → vote → tally → quote → startTraining →
the node trains in the sandbox → sealed model and result → claims, with the same test that runs
it on anvil."""

from __future__ import annotations

import pytest

from tests.integration.compute.test_training_round import (
    test_round_trains_delivers_the_model_and_pays_the_providers,
)

__all__ = ["test_round_trains_delivers_the_model_and_pays_the_providers"]

pytestmark = [pytest.mark.integration, pytest.mark.portability]
