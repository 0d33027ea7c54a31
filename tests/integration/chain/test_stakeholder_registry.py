"""StakeholderRegistry through its typed wrapper on a real anvil."""

from __future__ import annotations

import pytest

from visdm.chain.contracts import StakeholderRegistry
from visdm.errors import ContractRevertError
from visdm.types import Role

pytestmark = pytest.mark.integration

KEY = bytes(range(1, 33))


@pytest.fixture
def registry(chain, deployment) -> StakeholderRegistry:  # type: ignore[no-untyped-def]
    return deployment.stakeholder_registry(chain)


def test_register_and_read_back(registry, provider) -> None:
    before = registry.stakeholder_count()
    result = registry.register(provider, Role.PROVIDER, KEY)
    assert result.gas_used < 100_000
    record = registry.stakeholder(provider.address)
    assert record.registered
    assert record.roles == Role.PROVIDER
    assert record.encryption_key == KEY
    assert record.registered_at > 0
    assert registry.stakeholder_count() == before + 1
    assert registry.has_roles(provider.address, Role.PROVIDER)
    assert not registry.has_roles(provider.address, Role.CONSUMER)
    logs = registry._contract.events.StakeholderRegistered().process_receipt(result.receipt)
    assert logs[0]["args"]["account"] == provider.address


def test_register_twice_is_refused(registry, provider) -> None:
    registry.register(provider, Role.PROVIDER, KEY)
    with pytest.raises(ContractRevertError) as info:
        registry.register(provider, Role.CONSUMER, KEY)
    assert info.value.error_name == "StakeholderRegistryAlreadyRegistered"
    assert info.value.error_args == {"account": provider.address}


@pytest.mark.parametrize("roles", [0, 4, 7])
def test_invalid_roles_are_refused(registry, provider, roles) -> None:
    with pytest.raises(ContractRevertError) as info:
        registry.register(provider, Role(roles & 3) | roles, KEY)  # type: ignore[operator]
    assert info.value.error_name == "StakeholderRegistryInvalidRole"
    assert info.value.error_args == {"roles": roles}


def test_zero_key_is_refused(registry, provider) -> None:
    with pytest.raises(ContractRevertError) as info:
        registry.register(provider, Role.PROVIDER, bytes(32))
    assert info.value.error_name == "StakeholderRegistryInvalidKey"


def test_add_roles_and_rotate_key(registry, provider, stranger) -> None:
    registry.register(provider, Role.PROVIDER, KEY)
    registry.add_roles(provider, Role.CONSUMER)
    assert registry.stakeholder(provider.address).roles == Role.PROVIDER | Role.CONSUMER
    new_key = bytes(reversed(KEY))
    registry.rotate_encryption_key(provider, new_key)
    assert registry.stakeholder(provider.address).encryption_key == new_key
    for call in (
        lambda: registry.add_roles(stranger, Role.CONSUMER),
        lambda: registry.rotate_encryption_key(stranger, KEY),
    ):
        with pytest.raises(ContractRevertError) as info:
            call()
        assert info.value.error_name == "StakeholderRegistryNotRegistered"


def test_unregistered_account_reads_as_empty(registry, stranger) -> None:
    record = registry.stakeholder(stranger.address)
    assert not record.registered
    assert record.roles == Role.NONE
    assert record.encryption_key == bytes(32)


def test_state_is_isolated_between_tests(registry, provider) -> None:
    # test_register_and_read_back registered `provider`; the snapshot revert must undo it.
    assert not registry.stakeholder(provider.address).registered
