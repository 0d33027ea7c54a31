// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {StakeholderRegistry} from "./StakeholderRegistry.sol";

/**
 * @title AssetRegistry
 * @notice Data assets: a provider's set of encrypted samples, described by a signed XML manifest
 *         in content-addressed storage (paper Algorithm 2). Lifecycle:
 *         Pending (registered) → Active (a compute node attested its public metadata) →
 *         Withdrawn (by the owner, at any time).
 * @dev Per-sample data never touches storage here: the manifest hash (which covers the Merkle
 *      root over the sample ids, itself only emitted), a count, the allowed regions and a hash
 *      of the key-holding nodes are all the chain keeps, so gas does not grow with sample count.
 */
contract AssetRegistry {
    enum Status {
        None,
        Pending,
        Active,
        Withdrawn
    }

    // owner, status, counts and the registration time share one storage slot
    struct Asset {
        address owner;
        Status status;
        uint32 sampleCount;
        uint32 acceptedCount;
        uint24 registeredDay;
        bytes32 manifestHash; // covers the samples root too: the root itself is only emitted
        uint256 regionMask;
        bytes32 metadataHash;
        bytes32 keyNodesHash; // keccak256 of the nodes holding a wrapped data key, ascending
    }

    /// @notice Where stakeholders, regions and nodes are registered.
    StakeholderRegistry public immutable stakeholders;

    mapping(uint256 assetId => Asset) private _assets;
    uint256 private _assetCount;

    /// @notice `owner` registered asset `assetId`; the manifest is stored under `manifestCid`.
    event AssetRegistered(
        uint256 indexed assetId,
        address indexed owner,
        bytes32 manifestHash,
        bytes32 samplesRoot,
        uint32 sampleCount,
        uint256 regionMask,
        address[] keyNodes,
        string manifestCid
    );
    /// @notice `node` attested the public metadata of `assetId`; the asset is now Active.
    event MetadataAttested(
        uint256 indexed assetId,
        address indexed node,
        bytes32 metadataHash,
        uint32 acceptedCount,
        string metadataCid
    );
    /// @notice The owner withdrew `assetId`; it can no longer be selected or trained on.
    event AssetWithdrawn(uint256 indexed assetId);

    error AssetRegistryNotProvider(address account);
    error AssetRegistryInvalidAsset();
    error AssetRegistryNoRegions();
    error AssetRegistryUnknownAsset(uint256 assetId);
    error AssetRegistryNotOwner(uint256 assetId, address account);
    error AssetRegistryWrongStatus(uint256 assetId, Status status);
    error AssetRegistryNodeNotAllowed(uint256 assetId, address node);
    error AssetRegistryInvalidKeyNodes();
    error AssetRegistryNotKeyHolder(uint256 assetId, address node);
    error AssetRegistryTooManyAccepted(uint256 assetId, uint32 acceptedCount, uint32 sampleCount);

    /// @param stakeholderRegistry the marketplace's StakeholderRegistry
    constructor(StakeholderRegistry stakeholderRegistry) {
        stakeholders = stakeholderRegistry;
    }

    /**
     * @notice Registers an asset owned by the caller, who must be a registered provider.
     * @param manifestHash keccak256 of the manifest's canonical form
     * @param samplesRoot Merkle root (OpenZeppelin leaf convention) over the sample ids
     * @param sampleCount number of samples in the manifest, not zero
     * @param allowedRegions regions whose compute nodes may process the data, at least one
     * @param keyNodes the compute nodes the manifest wraps the data key for, in ascending
     *        address order; only they may attest the asset
     * @param manifestCid CID of the signed manifest in storage (only emitted)
     * @return assetId the new asset's id (ids start at 1)
     */
    function registerAsset(
        bytes32 manifestHash,
        bytes32 samplesRoot,
        uint32 sampleCount,
        bytes32[] calldata allowedRegions,
        address[] calldata keyNodes,
        string calldata manifestCid
    ) external returns (uint256 assetId) {
        if (!stakeholders.hasRoles(msg.sender, stakeholders.ROLE_PROVIDER())) {
            revert AssetRegistryNotProvider(msg.sender);
        }
        if (manifestHash == bytes32(0) || samplesRoot == bytes32(0) || sampleCount == 0) {
            revert AssetRegistryInvalidAsset();
        }
        if (allowedRegions.length == 0) revert AssetRegistryNoRegions();
        if (keyNodes.length == 0) revert AssetRegistryInvalidKeyNodes();
        for (uint256 i = 1; i < keyNodes.length; ++i) {
            if (keyNodes[i] <= keyNodes[i - 1]) revert AssetRegistryInvalidKeyNodes();
        }
        uint256 mask = stakeholders.regionMask(allowedRegions);
        // Cannot overflow: one increment per registration.
        unchecked {
            assetId = ++_assetCount;
        }
        Asset storage a = _assets[assetId];
        a.owner = msg.sender;
        a.status = Status.Pending;
        a.sampleCount = sampleCount;
        a.registeredDay = uint24(block.timestamp / 1 days);
        a.manifestHash = manifestHash;
        a.regionMask = mask;
        a.keyNodesHash = keccak256(abi.encodePacked(keyNodes));
        emit AssetRegistered(assetId, msg.sender, manifestHash, samplesRoot, sampleCount, mask, keyNodes, manifestCid);
    }

    /**
     * @notice Attests the public metadata of a Pending asset; the asset becomes Active.
     * @dev Only an active compute node in a region the owner allowed that holds a wrapped data
     *      key: a node that cannot decrypt the samples cannot describe them.
     * @param assetId the asset
     * @param metadataHash keccak256 of the metadata file
     * @param acceptedCount samples that decrypted and decoded (the rest are excluded)
     * @param metadataCid CID of the metadata file in storage (only emitted)
     * @param keyNodes the asset's key holders as registered (from its AssetRegistered event)
     */
    function attestMetadata(
        uint256 assetId,
        bytes32 metadataHash,
        uint32 acceptedCount,
        string calldata metadataCid,
        address[] calldata keyNodes
    ) external {
        Asset storage a = _existing(assetId);
        if (a.status != Status.Pending) revert AssetRegistryWrongStatus(assetId, a.status);
        if (!_nodeAllowed(a, msg.sender)) revert AssetRegistryNodeNotAllowed(assetId, msg.sender);
        if (keccak256(abi.encodePacked(keyNodes)) != a.keyNodesHash) revert AssetRegistryInvalidKeyNodes();
        if (!_contains(keyNodes, msg.sender)) revert AssetRegistryNotKeyHolder(assetId, msg.sender);
        if (metadataHash == bytes32(0)) revert AssetRegistryInvalidAsset();
        if (acceptedCount > a.sampleCount) {
            revert AssetRegistryTooManyAccepted(assetId, acceptedCount, a.sampleCount);
        }
        a.metadataHash = metadataHash;
        a.acceptedCount = acceptedCount;
        a.status = Status.Active;
        emit MetadataAttested(assetId, msg.sender, metadataHash, acceptedCount, metadataCid);
    }

    /**
     * @notice Withdraws an asset; only its owner, at any time.
     * @param assetId the asset
     */
    function withdrawAsset(uint256 assetId) external {
        Asset storage a = _existing(assetId);
        if (a.owner != msg.sender) revert AssetRegistryNotOwner(assetId, msg.sender);
        if (a.status == Status.Withdrawn) revert AssetRegistryWrongStatus(assetId, a.status);
        a.status = Status.Withdrawn;
        emit AssetWithdrawn(assetId);
    }

    /// @notice The record of `assetId` (all zero when unknown).
    function asset(uint256 assetId) external view returns (Asset memory) {
        return _assets[assetId];
    }

    /// @notice Number of assets ever registered (the highest id).
    function assetCount() external view returns (uint256) {
        return _assetCount;
    }

    /// @notice Whether `node` is an active compute node in a region `assetId` allows.
    function nodeAllowed(uint256 assetId, address node) external view returns (bool) {
        return _nodeAllowed(_existing(assetId), node);
    }

    /**
     * @notice Owner, status, accepted count and allowed-region mask of `assetId`.
     * @dev One call for the market's hot paths (zero owner when unknown).
     */
    function assetTerms(uint256 assetId)
        external
        view
        returns (address owner, Status status, uint32 acceptedCount, uint256 mask)
    {
        Asset storage a = _assets[assetId];
        return (a.owner, a.status, a.acceptedCount, a.regionMask);
    }

    /// @notice Owner and status of `assetId` (zero owner when unknown).
    function ownerAndStatus(uint256 assetId) external view returns (address owner, Status status) {
        Asset storage a = _assets[assetId];
        return (a.owner, a.status);
    }

    function _contains(address[] calldata list, address item) private pure returns (bool) {
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] == item) return true;
        }
        return false;
    }

    function _nodeAllowed(Asset storage a, address node) private view returns (bool) {
        (bool active, uint8 region,) = stakeholders.nodeStatus(node);
        return active && a.regionMask & (uint256(1) << region) != 0;
    }

    function _existing(uint256 assetId) private view returns (Asset storage a) {
        a = _assets[assetId];
        if (a.owner == address(0)) revert AssetRegistryUnknownAsset(assetId);
    }
}
