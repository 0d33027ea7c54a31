// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TrainingMarket} from "../TrainingMarket.sol";
import {Collective} from "./Collective.sol";

/**
 * @title CollectiveFactory
 * @notice Creates the marketplace's collectives and keeps their register: unique names, and a
 *         way for anyone to tell a genuine Collective (deployed here, for this market) from a
 *         contract that only claims to be one.
 */
contract CollectiveFactory {
    /// @notice The market every collective created here votes in.
    TrainingMarket public immutable market;

    address[] private _collectives;
    mapping(bytes32 nameHash => address) private _byName;
    mapping(address collective => bool) private _created;

    /// @notice `creator` created `collective` named `name`.
    event CollectiveCreated(
        address indexed collective,
        address indexed creator,
        address indexed steward,
        string name,
        uint16 feeBps,
        uint32 policyDelay
    );

    error CollectiveFactoryNameTaken(string name, address collective);

    /// @param market_ the marketplace's TrainingMarket
    constructor(TrainingMarket market_) {
        market = market_;
    }

    /**
     * @notice Creates a collective; its parameters are checked by the Collective itself.
     * @param name 1 to 32 bytes, not taken by another collective of this factory
     * @param steward receives the fee and may change it
     * @param feeBps the fee from the start, at most Collective.MAX_FEE_BPS
     * @param policyDelay notice for policy votes and fee changes, at most MAX_POLICY_DELAY
     * @return collective the new collective
     */
    function create(string calldata name, address steward, uint16 feeBps, uint32 policyDelay)
        external
        returns (Collective collective)
    {
        bytes32 nameHash = keccak256(bytes(name));
        address taken = _byName[nameHash];
        if (taken != address(0)) revert CollectiveFactoryNameTaken(name, taken);
        collective = new Collective(market, name, steward, feeBps, policyDelay);
        _byName[nameHash] = address(collective);
        _created[address(collective)] = true;
        _collectives.push(address(collective));
        emit CollectiveCreated(address(collective), msg.sender, steward, name, feeBps, policyDelay);
    }

    /// @notice The collective named `name` (zero when there is none).
    function collectiveByName(string calldata name) external view returns (address) {
        return _byName[keccak256(bytes(name))];
    }

    /// @notice Whether `collective` was created by this factory.
    function isCollective(address collective) external view returns (bool) {
        return _created[collective];
    }

    /// @notice How many collectives exist.
    function collectiveCount() external view returns (uint256) {
        return _collectives.length;
    }

    /// @notice The collectives with indexes `start` up to (not including) `end`, in creation order.
    function collectives(uint256 start, uint256 end) external view returns (address[] memory page) {
        uint256 count = _collectives.length;
        if (end > count) end = count;
        if (start >= end) return new address[](0);
        page = new address[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = _collectives[i];
        }
    }
}
