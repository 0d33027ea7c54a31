// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

/**
 * @title DelegationRegistry
 * @notice Liquid democracy for price votes: any account may delegate its vote to anyone,
 *         globally and revocably; delegation is transitive (paper section 3.3, footnote 5).
 * @dev Each account's delegate is checkpointed by block timestamp, so that a tally resolves
 *      delegations as of a proposal's voting deadline: changing a delegation after the deadline
 *      cannot change an outcome. The current delegate and the time it took effect share one
 *      storage word (the "head"); earlier delegates are archived in an OpenZeppelin
 *      `Checkpoints.Trace208` (key: the time each took effect, value: the delegate's address).
 *      A tally as of a deadline after the last change — the usual case — reads one word per
 *      hop; only a change after the deadline sends the lookup to the archive.
 *
 *      The TrainingMarket inherits this contract, so a tally follows delegations without
 *      external calls; the registry is still a complete contract of its own.
 *
 *      `delegate` refuses self-delegation, cycles, and chains longer than MAX_DELEGATION_DEPTH
 *      starting at the caller. A chain can still grow longer later, when someone delegates to
 *      the head of an existing chain; a tally then follows at most MAX_DELEGATION_DEPTH hops and
 *      counts a longer chain as abstaining, so no chain can make a tally run out of gas.
 */
contract DelegationRegistry {
    using Checkpoints for Checkpoints.Trace208;

    /// @notice Most hops a delegation chain may have (caller → … → voter).
    uint256 public constant MAX_DELEGATION_DEPTH = 8;

    struct Head {
        address delegate;
        uint48 since;
    }

    mapping(address account => Head) private _heads;
    mapping(address account => Checkpoints.Trace208) private _archive;

    /// @notice `delegator` now delegates to `delegatee` (zero address: no delegate).
    event DelegateChanged(address indexed delegator, address indexed previousDelegate, address indexed delegatee);

    error DelegationRegistryInvalidDelegate(address delegatee);
    error DelegationRegistryCycle(address delegator, address delegatee);
    error DelegationRegistryTooDeep(address delegator, uint256 depth);
    error DelegationRegistryNotDelegating(address delegator);
    error DelegationRegistryUnchanged(address delegatee);

    /**
     * @notice Delegates the caller's vote to `to`, replacing any earlier delegation.
     * @param to the delegate, not the caller and not the zero address
     */
    function delegate(address to) external {
        if (to == msg.sender || to == address(0)) revert DelegationRegistryInvalidDelegate(to);
        address previous = delegateOf(msg.sender);
        if (previous == to) revert DelegationRegistryUnchanged(to);
        // Walk the chain that would start at the caller: it must not come back to the caller,
        // and must end within MAX_DELEGATION_DEPTH hops.
        address cursor = to;
        uint256 depth = 1;
        while (true) {
            address next = delegateOf(cursor);
            if (next == address(0)) break;
            if (next == msg.sender) revert DelegationRegistryCycle(msg.sender, to);
            // Cannot overflow: bounded by MAX_DELEGATION_DEPTH + 1 below.
            unchecked {
                ++depth;
            }
            if (depth > MAX_DELEGATION_DEPTH) revert DelegationRegistryTooDeep(msg.sender, depth);
            cursor = next;
        }
        _setDelegate(msg.sender, to);
        emit DelegateChanged(msg.sender, previous, to);
    }

    /// @notice Withdraws the caller's delegation; its vote is its own again.
    function undelegate() external {
        address previous = delegateOf(msg.sender);
        if (previous == address(0)) revert DelegationRegistryNotDelegating(msg.sender);
        _setDelegate(msg.sender, address(0));
        emit DelegateChanged(msg.sender, previous, address(0));
    }

    /// @notice The current delegate of `account` (zero: none).
    function delegateOf(address account) public view returns (address) {
        return _heads[account].delegate;
    }

    /**
     * @notice The delegate of `account` as of `timestamp` (its last change at or before it).
     * @param account the delegator
     * @param timestamp a past or present block timestamp
     */
    function delegateAt(address account, uint48 timestamp) external view returns (address) {
        return _delegateAt(account, timestamp);
    }

    /// @notice How many times `account` changed its delegation (changes within one second count once).
    function delegationChanges(address account) external view returns (uint256) {
        return _archive[account].length() + (_heads[account].since == 0 ? 0 : 1);
    }

    function _delegateAt(address account, uint48 timestamp) internal view returns (address) {
        Head memory head = _heads[account];
        if (head.since <= timestamp) return head.delegate;
        return address(uint160(_archive[account].upperLookupRecent(timestamp)));
    }

    function _setDelegate(address account, address to) private {
        Head memory head = _heads[account];
        uint48 now_ = uint48(block.timestamp);
        // A second change within the same second replaces the first, as Checkpoints does.
        if (head.since != 0 && head.since != now_) {
            _archive[account].push(head.since, uint208(uint160(head.delegate)));
        }
        _heads[account] = Head(to, now_);
    }
}
