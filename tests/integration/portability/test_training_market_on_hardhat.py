"""The training market's contract tests (propose, vote, delegate, tally, quote, result,
claims), on Hardhat's node."""

from __future__ import annotations

import pytest

from tests.integration.market.test_training_market import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.portability]

# hundreds of votes in many tally batches: 26 s on Hardhat's node, and the batching is the
# contract's own logic, not the node's, so anvil's run covers it
del test_tally_in_many_batches  # noqa: F821 - bound by the import above
