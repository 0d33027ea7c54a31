"""Storage tests; ``conformance`` is shared with tests/integration/storage."""

import pytest

# conformance.py is not a test_*.py module: have pytest rewrite its asserts for readable failures
pytest.register_assert_rewrite("tests.unit.storage.conformance")
