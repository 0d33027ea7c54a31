"""The training market's contract tests (propose, vote, delegate, tally, quote, result,
claims), on Hardhat's node."""

from __future__ import annotations

import pytest

from tests.integration.market.test_training_market import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.portability]

# 300 assets registered one transaction at a time: 26 to 49 s on either node here, and what
# it checks is the contract's batching, which the anvil run covers
del test_tally_in_many_batches  # noqa: F821 - bound by the import above
