"""StakeholderRegistry through its typed wrapper on a real anvil."""

from __future__ import annotations

import pytest

from tests.conftest import role_account
from visdm.chain.contracts import StakeholderRegistry
from visdm.errors import ContractRevertError
from visdm.types import Role

pytestmark = pytest.mark.integration

KEY = bytes(range(1, 33))


@pytest.fixture
def registry(chain, deployment) -> StakeholderRegistry:  # type: ignore[no-untyped-def]
    return deployment.stakeholder_registry(chain)


@pytest.fixture
def newcomer(chain):  # type: ignore[no-untyped-def]
    """A funded account that is not registered yet."""
    account = role_account("newcomer")
    chain.fund_from_dev_faucet(account.address)
    return account


def test_register_and_read_back(registry, newcomer) -> None:
    before = registry.stakeholder_count()
    result = registry.register(newcomer, Role.PROVIDER, KEY)
    assert result.gas_used < 100_000
    record = registry.stakeholder(newcomer.address)
    assert record.registered
    assert record.roles == Role.PROVIDER
    assert record.encryption_key == KEY
    assert record.registered_at > 0
    assert registry.stakeholder_count() == before + 1
    assert registry.has_roles(newcomer.address, Role.PROVIDER)
    assert not registry.has_roles(newcomer.address, Role.CONSUMER)
    logs = registry._contract.events.StakeholderRegistered().process_receipt(result.receipt)
    assert logs[0]["args"]["account"] == newcomer.address


def test_register_twice_is_refused(registry, newcomer) -> None:
    registry.register(newcomer, Role.PROVIDER, KEY)
    with pytest.raises(ContractRevertError) as info:
        registry.register(newcomer, Role.CONSUMER, KEY)
    assert info.value.error_name == "StakeholderRegistryAlreadyRegistered"
    assert info.value.error_args == {"account": newcomer.address}


@pytest.mark.parametrize("roles", [0, 4, 7])
def test_invalid_roles_are_refused(registry, newcomer, roles) -> None:
    with pytest.raises(ContractRevertError) as info:
        registry.register(newcomer, Role(roles & 3) | roles, KEY)  # type: ignore[operator]
    assert info.value.error_name == "StakeholderRegistryInvalidRole"
    assert info.value.error_args == {"roles": roles}


def test_zero_key_is_refused(registry, newcomer) -> None:
    with pytest.raises(ContractRevertError) as info:
        registry.register(newcomer, Role.PROVIDER, bytes(32))
    assert info.value.error_name == "StakeholderRegistryInvalidKey"


def test_add_roles_and_rotate_key(registry, newcomer, stranger) -> None:
    registry.register(newcomer, Role.PROVIDER, KEY)
    registry.add_roles(newcomer, Role.CONSUMER)
    assert registry.stakeholder(newcomer.address).roles == Role.PROVIDER | Role.CONSUMER
    new_key = bytes(reversed(KEY))
    registry.rotate_encryption_key(newcomer, new_key)
    assert registry.stakeholder(newcomer.address).encryption_key == new_key
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


def test_state_is_isolated_between_tests(registry, newcomer) -> None:
    # test_register_and_read_back registered `newcomer`; the snapshot revert must undo it.
    assert not registry.stakeholder(newcomer.address).registered
