// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/**
 * @title StakeholderRegistry
 * @notice Who takes part in the ViSDM marketplace, in which role, and under which X25519 public
 *         key others encrypt data keys and models for them (paper Algorithm 1); and which compute
 *         nodes governance has admitted, in which region, at which endpoint.
 * @dev Roles form a bitmask so that one account can both sell and buy. Registration carries no
 *      vote weight by itself: weight comes only from registered samples (sybil defence, paper 3.5).
 *      Regions are numbered by governance (at most 256) so that an asset's allowed regions fit in
 *      one storage word as a bitmask.
 */
contract StakeholderRegistry is AccessControl {
    /// @notice Role bits; an account may hold several.
    uint8 public constant ROLE_PROVIDER = 1;
    uint8 public constant ROLE_CONSUMER = 2;
    uint8 private constant _ALL_ROLES = ROLE_PROVIDER | ROLE_CONSUMER;

    /// @notice AccessControl role that admits, suspends and reinstates compute nodes.
    bytes32 public constant GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");

    // roles and registeredAt share one storage slot
    struct Stakeholder {
        bytes32 encryptionKey;
        uint8 roles;
        uint64 registeredAt;
    }

    /// @dev A compute node: `signer` signs quotes and attestations; region is a region index.
    struct ComputeNode {
        address signer;
        uint8 region;
        bool admitted;
        bool suspended;
        bytes32 encryptionKey;
        string endpoint;
    }

    /// @dev A federation: a contract the market treats as one node, whose regional members train
    ///      each on the assets its own region allows. Active once every member joined.
    struct FederationRecord {
        address coordinator;
        uint8 joinedMask; // bit i: members[i] joined
        address[] members;
    }

    /// @notice The most regional nodes one federation may name.
    uint256 public constant MAX_FEDERATION_MEMBERS = 8;

    mapping(address account => Stakeholder) private _stakeholders;
    uint256 private _count;

    mapping(address node => ComputeNode) private _nodes;
    mapping(address federation => FederationRecord) private _federations;
    mapping(bytes32 name => uint256 indexPlusOne) private _regionIndex;
    bytes32[] private _regions;

    /// @notice `account` registered with `roles` and published `encryptionKey`.
    event StakeholderRegistered(address indexed account, uint8 roles, bytes32 encryptionKey);
    /// @notice `account` now holds `roles` (the full new bitmask).
    event StakeholderRolesChanged(address indexed account, uint8 roles);
    /// @notice `account` replaced its X25519 public key.
    event StakeholderKeyRotated(address indexed account, bytes32 encryptionKey);
    /// @notice Governance added region `name` under index `region`.
    event RegionAdded(uint8 indexed region, bytes32 name);
    /// @notice Governance admitted (or updated) compute node `node`.
    event NodeAdmitted(
        address indexed node, address signer, uint8 region, bytes32 encryptionKey, string endpoint
    );
    /// @notice Governance suspended compute node `node`.
    event NodeSuspended(address indexed node);
    /// @notice Governance reinstated compute node `node`.
    event NodeReinstated(address indexed node);

    error StakeholderRegistryAlreadyRegistered(address account);
    error StakeholderRegistryNotRegistered(address account);
    error StakeholderRegistryInvalidRole(uint8 roles);
    error StakeholderRegistryInvalidKey();
    error StakeholderRegistryUnknownRegion(bytes32 name);
    error StakeholderRegistryRegionExists(bytes32 name);
    error StakeholderRegistryTooManyRegions();
    error StakeholderRegistryUnknownNode(address node);
    error StakeholderRegistryInvalidNode(address node);
    error StakeholderRegistryInvalidFederation(address federation, string reason);
    error StakeholderRegistryNotFederationMember(address federation, address node);

    /// @notice Active node `coordinator` named contract `federation` a federation of `members`.
    event FederationRegistered(address indexed federation, address indexed coordinator, address[] members);
    /// @notice `member` agreed to train in `federation` (it is active once all members joined).
    event FederationJoined(address indexed federation, address indexed member);

    /// @param admin receives DEFAULT_ADMIN_ROLE and GOVERNANCE_ROLE
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNANCE_ROLE, admin);
    }

    // ------------------------------------------------------------------ stakeholders

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

    // ------------------------------------------------------------------ regions

    /**
     * @notice Adds a region (e.g. "eu-west") that nodes can be placed in and assets can allow.
     * @param name region name, unique, not zero
     * @return region the new region's index (0..255)
     */
    function addRegion(bytes32 name) external onlyRole(GOVERNANCE_ROLE) returns (uint8 region) {
        if (name == bytes32(0)) revert StakeholderRegistryUnknownRegion(name);
        if (_regionIndex[name] != 0) revert StakeholderRegistryRegionExists(name);
        if (_regions.length == 256) revert StakeholderRegistryTooManyRegions();
        _regions.push(name);
        _regionIndex[name] = _regions.length;
        region = uint8(_regions.length - 1);
        emit RegionAdded(region, name);
    }

    /// @notice Index of region `name`; reverts for an unknown region.
    function regionIndex(bytes32 name) public view returns (uint8) {
        uint256 indexPlusOne = _regionIndex[name];
        if (indexPlusOne == 0) revert StakeholderRegistryUnknownRegion(name);
        return uint8(indexPlusOne - 1);
    }

    /**
     * @notice Bitmask with one bit per region in `names`; reverts on an unknown region.
     * @param names region names
     */
    function regionMask(bytes32[] calldata names) external view returns (uint256 mask) {
        for (uint256 i = 0; i < names.length; ++i) {
            mask |= uint256(1) << regionIndex(names[i]);
        }
    }

    /// @notice All region names, by index.
    function regions() external view returns (bytes32[] memory) {
        return _regions;
    }

    // ------------------------------------------------------------------ compute nodes

    /**
     * @notice Admits (or updates) compute node `node`.
     * @param node the node's transaction-sending address
     * @param signer address whose EIP-712 signatures (quotes) the node stands behind
     * @param region region name, must exist
     * @param encryptionKey the node's X25519 public key, to which providers wrap data keys
     * @param endpoint the node's HTTP endpoint
     */
    function admitNode(
        address node,
        address signer,
        bytes32 region,
        bytes32 encryptionKey,
        string calldata endpoint
    ) external onlyRole(GOVERNANCE_ROLE) {
        if (node == address(0) || signer == address(0) || bytes(endpoint).length == 0) {
            revert StakeholderRegistryInvalidNode(node);
        }
        if (encryptionKey == bytes32(0)) revert StakeholderRegistryInvalidKey();
        uint8 index = regionIndex(region);
        _nodes[node] = ComputeNode(signer, index, true, false, encryptionKey, endpoint);
        emit NodeAdmitted(node, signer, index, encryptionKey, endpoint);
    }

    /// @notice Suspends `node`: it can no longer attest, be chosen or submit results.
    function suspendNode(address node) external onlyRole(GOVERNANCE_ROLE) {
        ComputeNode storage n = _admitted(node);
        n.suspended = true;
        emit NodeSuspended(node);
    }

    /// @notice Lifts the suspension of `node`.
    function reinstateNode(address node) external onlyRole(GOVERNANCE_ROLE) {
        ComputeNode storage n = _admitted(node);
        n.suspended = false;
        emit NodeReinstated(node);
    }

    /// @notice The record of `node` (all zero when never admitted).
    function computeNode(address node) external view returns (ComputeNode memory) {
        return _nodes[node];
    }

    /// @notice Whether `node` is admitted and not suspended.
    function isActiveNode(address node) public view returns (bool) {
        ComputeNode storage n = _nodes[node];
        return n.admitted && !n.suspended;
    }

    /**
     * @notice Whether `node` is active, with its region index and quote signer.
     * @dev One cheap call for the market's hot paths (no endpoint string copied).
     */
    function nodeStatus(address node) external view returns (bool active, uint8 region, address signer) {
        ComputeNode storage n = _nodes[node];
        return (n.admitted && !n.suspended, n.region, n.signer);
    }

    /**
     * @notice Whether `node` (a compute node or a federation) is active, the regions it may
     *         train in as a bitmask, and its quote signer: the market's view of a proposal's node.
     * @dev A federation is active when every member joined and it and its coordinator are
     *      active; its mask is the union of its members' regions (each selected asset must allow
     *      one of them) and its signer is its coordinator's. Not the view that draws committees
     *      or attests assets: those stay with single nodes (`nodeStatus`).
     */
    function nodeRegions(address node) external view returns (bool active, uint256 mask, address signer) {
        ComputeNode storage n = _nodes[node];
        if (n.admitted) return (!n.suspended, uint256(1) << n.region, n.signer);
        FederationRecord storage f = _federations[node];
        address[] storage members = f.members;
        uint256 count = members.length;
        if (count == 0) return (false, 0, address(0));
        ComputeNode storage c = _nodes[f.coordinator];
        active = c.admitted && !c.suspended && f.joinedMask == (uint256(1) << count) - 1;
        for (uint256 i = 0; i < count; ++i) {
            ComputeNode storage m = _nodes[members[i]];
            active = active && m.admitted && !m.suspended;
            mask |= uint256(1) << m.region;
        }
        signer = c.signer;
    }

    // ------------------------------------------------------------------ federations

    /**
     * @notice The caller, an active compute node, names the contract `federation` (which will
     *         submit results and receive fees for the rounds it trains) a federation of
     *         `members`, at most MAX_FEDERATION_MEMBERS distinct active nodes. It takes no job
     *         until every member joined (`joinFederation`): a node is never named unasked.
     */
    function registerFederation(address federation, address[] calldata members) external {
        if (!isActiveNode(msg.sender)) revert StakeholderRegistryUnknownNode(msg.sender);
        if (federation.code.length == 0) revert StakeholderRegistryInvalidFederation(federation, "not a contract");
        if (_nodes[federation].admitted || _federations[federation].members.length != 0) {
            revert StakeholderRegistryInvalidFederation(federation, "already registered");
        }
        uint256 count = members.length;
        if (count == 0 || count > MAX_FEDERATION_MEMBERS) {
            revert StakeholderRegistryInvalidFederation(federation, "one to eight members");
        }
        for (uint256 i = 0; i < count; ++i) {
            if (!isActiveNode(members[i])) revert StakeholderRegistryUnknownNode(members[i]);
            for (uint256 j = 0; j < i; ++j) {
                if (members[j] == members[i]) revert StakeholderRegistryInvalidFederation(federation, "duplicate member");
            }
        }
        FederationRecord storage f = _federations[federation];
        f.coordinator = msg.sender;
        f.members = members;
        emit FederationRegistered(federation, msg.sender, members);
    }

    /// @notice The caller, a member named by `federation`, agrees to train in it.
    function joinFederation(address federation) external {
        FederationRecord storage f = _federations[federation];
        uint256 count = f.members.length;
        for (uint256 i = 0; i < count; ++i) {
            if (f.members[i] == msg.sender) {
                f.joinedMask |= uint8(1 << i);
                emit FederationJoined(federation, msg.sender);
                return;
            }
        }
        revert StakeholderRegistryNotFederationMember(federation, msg.sender);
    }

    /// @notice A federation's coordinator, members and which of them joined (bit i: member i).
    function federationOf(address federation)
        external
        view
        returns (address coordinator, address[] memory members, uint8 joinedMask)
    {
        FederationRecord storage f = _federations[federation];
        return (f.coordinator, f.members, f.joinedMask);
    }

    function _admitted(address node) private view returns (ComputeNode storage n) {
        n = _nodes[node];
        if (!n.admitted) revert StakeholderRegistryUnknownNode(node);
    }

    function _registered(address account) private view returns (Stakeholder storage s) {
        s = _stakeholders[account];
        if (s.roles == 0) revert StakeholderRegistryNotRegistered(account);
    }

    function _checkRoles(uint8 roles) private pure {
        if (roles == 0 || roles & ~_ALL_ROLES != 0) revert StakeholderRegistryInvalidRole(roles);
    }
}
