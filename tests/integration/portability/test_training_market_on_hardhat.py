"""The training market's contract tests (propose, vote, delegate, tally, quote, result,
claims), on Hardhat's node."""

from __future__ import annotations

import pytest

from tests.integration.market.test_training_market import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.portability]
