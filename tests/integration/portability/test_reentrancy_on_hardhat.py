"""The reentrancy test of the market's escrow, on Hardhat's node."""

from __future__ import annotations

import pytest

from tests.integration.market.test_reentrancy import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.portability]
