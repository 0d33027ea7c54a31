"""The market's attack tests, on Hardhat's node."""

from __future__ import annotations

import pytest

from tests.integration.market.test_attacks import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.portability, pytest.mark.attack]
