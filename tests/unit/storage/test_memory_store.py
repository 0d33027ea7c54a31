"""MemoryStore, the fake other packages' unit tests use, passes the same conformance suite."""

from __future__ import annotations

import pytest

from visdm.storage import ContentStore, MemoryStore
from visdm.types import Cid

from .conformance import ContentStoreConformance, Corrupt

pytestmark = pytest.mark.unit


class TestMemoryStore(ContentStoreConformance):
    @pytest.fixture
    def store(self) -> ContentStore:
        return MemoryStore()

    @pytest.fixture
    def corrupt(self, store: ContentStore) -> Corrupt:
        assert isinstance(store, MemoryStore)

        def corrupt(cid: Cid, data: bytes) -> None:
            store.corrupt_for_testing(cid, data)

        return corrupt
