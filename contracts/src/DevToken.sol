// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title DevToken
 * @notice The payment token of local development chains: an ERC-20 anyone can mint from a faucet.
 * @dev `visdm deploy` deploys it only on a local dev chain (anvil); on any other chain the market
 *      is deployed against an existing ERC-20 given by address.
 */
contract DevToken is ERC20 {
    /// @notice Most tokens one faucet call may mint (1,000,000 tokens of 18 decimals).
    uint256 public constant FAUCET_LIMIT = 1_000_000 ether;

    error DevTokenFaucetLimit(uint256 requested, uint256 limit);

    constructor() ERC20("ViSDM Dev Token", "VDT") {}

    /**
     * @notice Mints `amount` to the caller.
     * @param amount at most FAUCET_LIMIT
     */
    function faucet(uint256 amount) external {
        if (amount > FAUCET_LIMIT) revert DevTokenFaucetLimit(amount, FAUCET_LIMIT);
        _mint(msg.sender, amount);
    }
}
