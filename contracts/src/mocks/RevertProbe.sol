// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title RevertProbe
 * @notice Test-only contract that fails in each way the SDK must decode: a custom error with
 *         arguments, a reason string, a panic, and a revert with no data. Never deployed by
 *         `visdm deploy`.
 */
contract RevertProbe {
    error RevertProbeCustom(address who, uint256 amount, bytes32 tag);

    uint256 public counter;

    /// @notice Reverts with a custom error carrying the caller, `amount` and `tag`.
    function failCustom(uint256 amount, bytes32 tag) external {
        ++counter;
        revert RevertProbeCustom(msg.sender, amount, tag);
    }

    /// @notice Reverts with a reason string.
    function failReason() external {
        ++counter;
        revert("probe: plain reason");
    }

    /// @notice Divides by `d`: a panic (0x12) when it is zero.
    function failPanic(uint256 d) external returns (uint256) {
        ++counter;
        return 1 / d;
    }

    /// @notice Reverts with no data at all.
    function failEmpty() external {
        ++counter;
        revert();
    }

    /// @notice Succeeds unless `fail` is set, after spending gas: used to mine a failed tx.
    function maybeFail(bool fail) external {
        ++counter;
        if (fail) revert RevertProbeCustom(msg.sender, counter, bytes32(0));
    }
}
