// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title ReentrantToken
 * @notice Test-only ERC-20 that calls back into a target during every transfer, to prove the
 *         market's guards: the call-back must fail and the outer transfer must still settle once.
 */
contract ReentrantToken is ERC20 {
    address public target;
    bytes public payload;
    bool public lastCallbackSucceeded;
    uint256 public callbacks;

    constructor() ERC20("Reentrant", "RE") {}

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arms the call-back: every later transfer calls `target` with `data`.
    function arm(address target_, bytes calldata data) external {
        target = target_;
        payload = data;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (target != address(0) && from != address(0)) {
            address t = target;
            target = address(0); // one call-back per arming
            (bool ok,) = t.call(payload);
            lastCallbackSucceeded = ok;
            ++callbacks;
        }
    }
}
