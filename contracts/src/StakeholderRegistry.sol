// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title StakeholderRegistry
 * @notice Who takes part in the ViSDM marketplace, in which role, and under which X25519 public
 *         key others encrypt data keys and models for them (paper Algorithm 1).
 * @dev Roles form a bitmask so that one account can both sell and buy. Registration carries no
 *      vote weight by itself: weight comes only from registered samples (sybil defence, paper 3.5).
 */
contract StakeholderRegistry {
    /// @notice Role bits; an account may hold several.
    uint8 public constant ROLE_PROVIDER = 1;
    uint8 public constant ROLE_CONSUMER = 2;
    uint8 private constant _ALL_ROLES = ROLE_PROVIDER | ROLE_CONSUMER;

    // roles and registeredAt share one storage slot
    struct Stakeholder {
        bytes32 encryptionKey;
        uint8 roles;
        uint64 registeredAt;
    }

    mapping(address account => Stakeholder) private _stakeholders;
    uint256 private _count;

    /// @notice `account` registered with `roles` and published `encryptionKey`.
    event StakeholderRegistered(address indexed account, uint8 roles, bytes32 encryptionKey);
    /// @notice `account` now holds `roles` (the full new bitmask).
    event StakeholderRolesChanged(address indexed account, uint8 roles);
    /// @notice `account` replaced its X25519 public key.
    event StakeholderKeyRotated(address indexed account, bytes32 encryptionKey);

    error StakeholderRegistryAlreadyRegistered(address account);
    error StakeholderRegistryNotRegistered(address account);
    error StakeholderRegistryInvalidRole(uint8 roles);
    error StakeholderRegistryInvalidKey();

    /**
     * @notice Registers the caller with `roles` and its X25519 public key.
     * @param roles bitmask of ROLE_PROVIDER / ROLE_CONSUMER, not zero
     * @param encryptionKey the caller's X25519 public key, not zero
     */
    function register(uint8 roles, bytes32 encryptionKey) external {
        if (_stakeholders[msg.sender].roles != 0) revert StakeholderRegistryAlreadyRegistered(msg.sender);
        _checkRoles(roles);
        if (encryptionKey == bytes32(0)) revert StakeholderRegistryInvalidKey();
        _stakeholders[msg.sender] = Stakeholder(encryptionKey, roles, uint64(block.timestamp));
        // Cannot overflow: one increment per distinct address.
        unchecked {
            ++_count;
        }
        emit StakeholderRegistered(msg.sender, roles, encryptionKey);
    }

    /**
     * @notice Adds `roles` to the caller's roles.
     * @param roles bitmask of roles to add
     */
    function addRoles(uint8 roles) external {
        Stakeholder storage s = _registered(msg.sender);
        _checkRoles(roles);
        uint8 updated = s.roles | roles;
        s.roles = updated;
        emit StakeholderRolesChanged(msg.sender, updated);
    }

    /**
     * @notice Replaces the caller's X25519 public key (e.g. after a key compromise).
     * @param encryptionKey the new key, not zero
     */
    function rotateEncryptionKey(bytes32 encryptionKey) external {
        Stakeholder storage s = _registered(msg.sender);
        if (encryptionKey == bytes32(0)) revert StakeholderRegistryInvalidKey();
        s.encryptionKey = encryptionKey;
        emit StakeholderKeyRotated(msg.sender, encryptionKey);
    }

    /// @notice The record of `account` (all zero when not registered).
    function stakeholder(address account) external view returns (Stakeholder memory) {
        return _stakeholders[account];
    }

    /// @notice Whether `account` holds every bit of `roles`.
    function hasRoles(address account, uint8 roles) public view returns (bool) {
        return roles != 0 && _stakeholders[account].roles & roles == roles;
    }

    /// @notice Number of registered accounts.
    function stakeholderCount() external view returns (uint256) {
        return _count;
    }

    function _registered(address account) internal view returns (Stakeholder storage s) {
        s = _stakeholders[account];
        if (s.roles == 0) revert StakeholderRegistryNotRegistered(account);
    }

    function _checkRoles(uint8 roles) private pure {
        if (roles == 0 || roles & ~_ALL_ROLES != 0) revert StakeholderRegistryInvalidRole(roles);
    }
}
