"""A node outside an asset's regions gets no secrets of a round that used the asset.

The node seals a job's seed and data keys only to bonded nodes that every used asset allows
(:func:`visdm.verify.secret_recipients`): a bonded node in a region the assets refuse must
not get them, or being bonded would be a way around the owner's choice of regions.
"""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from tests.integration.verify.conftest import SPEC, VALIDATION, WTP_BPS, Checked, bonded_account
from visdm.ingest import decrypt_sample
from visdm.proposals import load_checked_proposal
from visdm.verify import JobSecrets, open_job_secrets, publish_job_secrets

pytestmark = pytest.mark.integration


@pytest.mark.attack
def test_a_bonded_node_in_a_region_the_assets_refuse_gets_no_secrets(
    vr: Checked, monkeypatch: pytest.MonkeyPatch
) -> None:
    rnd = vr.rnd
    rnd.registry.add_region(vr.governance, "elsewhere")
    outsider = bonded_account(rnd, vr.governance, "outsider", bytes([9]) * 32, region="elsewhere")
    pid = rnd.propose(wtp_bps=WTP_BPS, spec=SPEC, validation=VALIDATION)
    checked = load_checked_proposal(rnd.market, rnd.deployment, rnd.chain, rnd.store, pid)
    node = rnd.accounts["node"]
    keys = {
        a: node.unwrap_key(checked.public[a].manifest.key_for(node.address).wrapped)
        for a in rnd.asset_ids
    }
    seed = bytes(range(32))
    secrets = JobSecrets(seed=seed, validation_key=bytes(32), asset_keys=keys)

    def publish() -> dict[str, dict[str, str]]:
        return publish_job_secrets(
            secrets,
            proposal_id=pid,
            node=node.address,
            consumer=checked.document.consumer,
            used=[checked.public[a] for a in rnd.asset_ids],
            court=vr.court,
            registry=rnd.registry,
            store=rnd.store,
        )

    index = publish()
    assert set(index["verifierSecrets"]) == {vr.checker.address, vr.member.address}
    assert "does not allow its region" in index["verifiersLeftOut"][outsider.address]

    # with the region check switched off, the outsider opens a provider's data key and reads
    # an image its region was refused
    monkeypatch.setattr("visdm.verify._publish._refusal", lambda *_: None)
    leaked = publish()["verifierSecrets"][outsider.address]
    opened = open_job_secrets(
        rnd.store.get(leaked),
        proposal_id=pid,
        verifier=outsider.address,
        unwrap=outsider.unwrap_key,
        seed_hash=keccak(seed),
    )
    sample = checked.samples[0]
    image = decrypt_sample(
        rnd.store, sample.cid, index=sample.index, data_key=opened.asset_keys[sample.asset_id]
    )
    assert image.startswith(b"\x89PNG")
