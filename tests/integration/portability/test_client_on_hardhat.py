"""ChainClient's transactions, nonces and revert decoding, on Hardhat's node."""

from __future__ import annotations

import pytest

from tests.integration.chain.test_client import *  # noqa: F403

pytestmark = [pytest.mark.integration, pytest.mark.portability]
