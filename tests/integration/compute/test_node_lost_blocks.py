"""A chain restarted from an older state (anvil killed before it saved its last blocks) has
forgotten the node's attestation: the node notices that the newest block it saw is gone, reads
the events again and attests the asset afresh — once, with no duplicate samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.compute.test_asset_flow import Flow, flow, write_folder
from visdm.chain.contracts import AssetStatus

pytestmark = pytest.mark.integration
__all__ = ["flow"]  # the fixture, shared with the asset-flow tests


@pytest.mark.parametrize("mined_since", [0, 5], ids=["head-behind", "other-blocks-since"])
def test_an_attestation_the_chain_lost_is_made_again(
    flow: Flow, tmp_path: Path, mined_since: int
) -> None:
    added = flow.add("provider", write_folder(tmp_path / "a", [1, 2, 3]))
    w3 = flow.chain.w3
    saved = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    worker = flow.worker()
    try:
        worker.poll()
        assert flow.assets.asset(added.asset_id).status == AssetStatus.ACTIVE
        # the chain comes back from the state saved before the attestation
        assert w3.provider.make_request("evm_revert", [saved])["result"]  # type: ignore[arg-type]
        flow.chain.reset_nonces()
        for _ in range(mined_since):  # others' blocks: the height alone would not tell
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert flow.assets.asset(added.asset_id).status == AssetStatus.PENDING
        worker.poll()
        record = flow.assets.asset(added.asset_id)
        assert (record.status, record.accepted_count) == (AssetStatus.ACTIVE, 3)
        assert len(worker.state.active_samples()) == 3  # not six: the old ones were forgotten
        assert worker.poll() <= 1 and worker.poll() == 0  # and nothing is attested twice
    finally:
        worker.close()
    assert len(flow.assets.logs("MetadataAttested")) == 1
    assert flow.outcome(added.asset_id).outcome == "attested"  # type: ignore[union-attr]
