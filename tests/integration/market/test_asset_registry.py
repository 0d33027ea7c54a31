"""AssetRegistry and node admission: success paths, every custom error, every role."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from tests.integration.market.conftest import Market
from visdm.chain.contracts import AssetStatus
from visdm.errors import ContractRevertError, InvalidInputError

pytestmark = pytest.mark.integration


def reverts(name: str):  # type: ignore[no-untyped-def]
    class _Match:
        def __enter__(self) -> None:
            self.ctx = pytest.raises(ContractRevertError)
            self.info = self.ctx.__enter__()

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            suppressed = self.ctx.__exit__(*exc)
            assert self.info.value.error_name == name, str(self.info.value)
            return suppressed

    return _Match()


def register(mk: Market, owner, count: int = 10, regions=("local",), key_nodes=None):  # type: ignore[no-untyped-def]
    return mk.assets.register_asset(
        owner,
        manifest_hash=keccak(text="m"),
        samples_root=keccak(text="r"),
        sample_count=count,
        allowed_regions=regions,
        key_nodes=key_nodes or [mk.roles["node"].address],
        manifest_cid="bafkreim",
    )


def test_register_attest_withdraw(mk: Market) -> None:
    provider, node = mk.roles["provider"], mk.roles["node"]
    asset_id, tx = register(mk, provider, 42)
    (event,) = mk.assets.events("AssetRegistered", tx.receipt)
    assert event["args"]["manifestCid"] == "bafkreim"
    record = mk.assets.asset(asset_id)
    assert (record.owner, record.status, record.sample_count) == (
        provider.address,
        AssetStatus.PENDING,
        42,
    )
    assert record.region_mask == 1
    assert mk.assets.node_allowed(asset_id, node.address)
    tx = mk.assets.attest_metadata(
        node, asset_id, metadata_hash=keccak(text="md"), accepted_count=40, metadata_cid="bafkreimd"
    )
    (event,) = mk.assets.events("MetadataAttested", tx.receipt)
    assert event["args"]["node"] == node.address
    record = mk.assets.asset(asset_id)
    assert (record.status, record.accepted_count) == (AssetStatus.ACTIVE, 40)
    mk.assets.withdraw_asset(provider, asset_id)
    assert mk.assets.asset(asset_id).status == AssetStatus.WITHDRAWN


def test_register_errors(mk: Market) -> None:
    with reverts("AssetRegistryNotProvider"):
        register(mk, mk.roles["consumer"])
    with reverts("AssetRegistryNotProvider"):
        register(mk, mk.roles["stranger"])
    with reverts("AssetRegistryInvalidAsset"):
        register(mk, mk.roles["provider"], 0)
    with reverts("AssetRegistryNoRegions"):
        register(mk, mk.roles["provider"], 5, regions=())
    with reverts("StakeholderRegistryUnknownRegion"):
        register(mk, mk.roles["provider"], 5, regions=("mars",))
    with pytest.raises(InvalidInputError, match="1 to 32 bytes"):
        register(mk, mk.roles["provider"], 5, regions=("x" * 33,))
    # the key holders must be given, ascending and without repeats
    node = mk.roles["node"].address
    local = [b"local".ljust(32, b"\0")]
    for holders in ([], [node, node], sorted([node, mk.roles["stranger"].address], reverse=True)):
        fn = mk.assets._contract.functions.registerAsset(
            keccak(text="m"), keccak(text="r"), 5, local, holders, "bafkreim"
        )
        with reverts("AssetRegistryInvalidKeyNodes"):
            mk.chain.transact(mk.roles["provider"], fn, action="registerAsset")


def test_attest_errors_and_roles(mk: Market) -> None:
    provider, node = mk.roles["provider"], mk.roles["node"]
    asset_id, _ = register(mk, provider, 10)

    def attest(who, aid=asset_id, accepted=10):  # type: ignore[no-untyped-def]
        return mk.assets.attest_metadata(
            who, aid, metadata_hash=keccak(text="x"), accepted_count=accepted, metadata_cid="c"
        )

    for who in ("provider", "consumer", "governance", "stranger"):
        with reverts("AssetRegistryNodeNotAllowed"):
            attest(mk.roles[who])
    with reverts("AssetRegistryUnknownAsset"):
        attest(node, aid=999)
    with reverts("AssetRegistryTooManyAccepted"):
        attest(node, accepted=11)
    # a suspended node is no longer allowed; reinstated, it is again
    mk.stakeholders.suspend_node(mk.roles["governance"], node.address)
    with reverts("AssetRegistryNodeNotAllowed"):
        attest(node)
    mk.stakeholders.reinstate_node(mk.roles["governance"], node.address)
    attest(node)
    with reverts("AssetRegistryWrongStatus"):
        attest(node)


@pytest.mark.attack
def test_a_node_without_the_data_key_cannot_attest(mk: Market) -> None:
    """An active node in a region the owner allowed, but holding no wrapped key for the asset,
    tries to attest it with made-up metadata (and to pass itself off as a key holder)."""
    gov = mk.roles["governance"]
    intruder = mk.new_account("keyless-node")
    mk.stakeholders.admit_node(
        gov,
        intruder.address,
        signer=intruder.address,
        region="local",
        encryption_key=b"\x03" * 32,
        endpoint="http://127.0.0.1:9/",
    )
    asset_id, _ = register(mk, mk.roles["provider"], 10)
    assert mk.assets.node_allowed(asset_id, intruder.address)  # the region check alone passes

    def attest(holders):  # type: ignore[no-untyped-def]
        return mk.assets.attest_metadata(
            intruder,
            asset_id,
            metadata_hash=keccak(text="made up"),
            accepted_count=10,
            metadata_cid="bafkreifake",
            key_nodes=holders,
        )

    with reverts("AssetRegistryNotKeyHolder"):
        attest(None)  # the registered holders
    with reverts("AssetRegistryInvalidKeyNodes"):
        attest([intruder.address])  # a list of its own making
    with reverts("AssetRegistryInvalidKeyNodes"):
        attest([mk.roles["node"].address, intruder.address])
    assert mk.assets.asset(asset_id).status == AssetStatus.PENDING
    # the real key holder can
    mk.assets.attest_metadata(
        mk.roles["node"],
        asset_id,
        metadata_hash=keccak(text="md"),
        accepted_count=10,
        metadata_cid="bafkreimd",
    )
    assert mk.assets.asset(asset_id).status == AssetStatus.ACTIVE


def test_node_in_a_region_the_owner_did_not_allow(mk: Market) -> None:
    gov = mk.roles["governance"]
    mk.stakeholders.add_region(gov, "eu-west")
    other = mk.new_account("eu-node")
    mk.stakeholders.admit_node(
        gov,
        other.address,
        signer=other.address,
        region="eu-west",
        encryption_key=b"\x01" * 32,
        endpoint="http://127.0.0.1:9/",
    )
    holders = [mk.roles["node"].address, other.address]
    asset_id, _ = register(mk, mk.roles["provider"], 10, regions=("local",), key_nodes=holders)
    assert not mk.assets.node_allowed(asset_id, other.address)
    with reverts("AssetRegistryNodeNotAllowed"):
        mk.assets.attest_metadata(
            other, asset_id, metadata_hash=keccak(text="x"), accepted_count=1, metadata_cid="c"
        )
    both, _ = register(
        mk, mk.roles["provider"], 10, regions=("local", "eu-west"), key_nodes=holders
    )
    assert mk.assets.asset(both).region_mask == 0b11
    assert mk.assets.node_allowed(both, other.address)


def test_withdraw_errors(mk: Market) -> None:
    asset_id, _ = register(mk, mk.roles["provider"], 10)
    for who in ("provider2", "consumer", "node", "governance", "stranger"):
        with reverts("AssetRegistryNotOwner"):
            mk.assets.withdraw_asset(mk.roles[who], asset_id)
    with reverts("AssetRegistryUnknownAsset"):
        mk.assets.withdraw_asset(mk.roles["provider"], 12345)
    mk.assets.withdraw_asset(mk.roles["provider"], asset_id)
    with reverts("AssetRegistryWrongStatus"):
        mk.assets.withdraw_asset(mk.roles["provider"], asset_id)
    with reverts("AssetRegistryWrongStatus"):
        mk.assets.attest_metadata(
            mk.roles["node"],
            asset_id,
            metadata_hash=keccak(text="x"),
            accepted_count=1,
            metadata_cid="c",
        )


def calldata_gas(chain, tx_hash: str) -> int:  # type: ignore[no-untyped-def]
    data = bytes(chain.w3.eth.get_transaction(tx_hash)["input"])
    return sum(16 if b else 4 for b in data)


def test_register_gas_does_not_depend_on_sample_count(mk: Market) -> None:
    register(mk, mk.roles["provider"], 1)  # the first registration also creates the counter
    used, execution = {}, {}
    for n in (10, 10_000, 1_000_000):
        tx = register(mk, mk.roles["provider"], n)[1]
        used[n] = tx.gas_used
        # the count's own calldata bytes are the only difference: compare gas without calldata
        execution[n] = tx.gas_used - calldata_gas(mk.chain, tx.tx_hash)
    print(f"\nregisterAsset gas by sample count: {used} (without calldata: {execution})")
    assert len(set(execution.values())) == 1
    assert max(used.values()) <= 150_000


def test_governance_functions_and_roles(mk: Market) -> None:
    gov, stranger = mk.roles["governance"], mk.roles["stranger"]
    node = mk.roles["node"]
    for who in ("provider", "consumer", "node", "stranger"):
        account = mk.roles[who]
        with reverts("AccessControlUnauthorizedAccount"):
            mk.stakeholders.add_region(account, "nowhere")
        with reverts("AccessControlUnauthorizedAccount"):
            mk.stakeholders.suspend_node(account, node.address)
        with reverts("AccessControlUnauthorizedAccount"):
            mk.stakeholders.admit_node(
                account,
                stranger.address,
                signer=stranger.address,
                region="local",
                encryption_key=b"\x01" * 32,
                endpoint="http://x/",
            )
    with reverts("StakeholderRegistryRegionExists"):
        mk.stakeholders.add_region(gov, "local")
    with reverts("StakeholderRegistryUnknownNode"):
        mk.stakeholders.suspend_node(gov, stranger.address)
    with reverts("StakeholderRegistryUnknownNode"):
        mk.stakeholders.reinstate_node(gov, stranger.address)
    with reverts("StakeholderRegistryInvalidNode"):
        mk.stakeholders.admit_node(
            gov,
            stranger.address,
            signer=stranger.address,
            region="local",
            encryption_key=b"\x01" * 32,
            endpoint="",
        )
    with reverts("StakeholderRegistryInvalidKey"):
        mk.stakeholders.admit_node(
            gov,
            stranger.address,
            signer=stranger.address,
            region="local",
            encryption_key=bytes(32),
            endpoint="http://x/",
        )
    with reverts("StakeholderRegistryUnknownRegion"):
        mk.stakeholders.admit_node(
            gov,
            stranger.address,
            signer=stranger.address,
            region="mars",
            encryption_key=b"\x01" * 32,
            endpoint="http://x/",
        )
    record = mk.stakeholders.compute_node(node.address)
    assert record.active and record.endpoint == "http://127.0.0.1:9/"
    assert mk.stakeholders.regions() == ["local"]
