// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {MarketBase} from "./MarketBase.sol";

/**
 * @title MarketPayouts
 * @notice Payouts of Completed proposals, credits and withdrawals.
 * @dev A payout leaf names a selected asset, never an account: the OpenZeppelin
 *      StandardMerkleTree leaf `(uint256 position, uint256 assetId, uint256 amount)`. A claim
 *      proves the leaf against the node's payout root, checks that the market itself selected
 *      `assetId` at `position` at `propose` (so a node cannot pay an asset that was not
 *      selected) and that it did not leave the round in the tally, and credits the asset's
 *      on-chain owner; tokens move once, at `withdraw`. Anyone may submit claims (a keeper can
 *      settle a whole round with `claimMany`). After the claim period the unclaimed remainder
 *      goes to the market treasury (SECURITY.md says why not the consumer).
 */
abstract contract MarketPayouts is MarketBase {
    using SafeERC20 for IERC20;

    /// @notice One payout claim: leaf `position` of the payout tree pays `amount` for `assetId`.
    struct ClaimRequest {
        uint256 proposalId;
        uint256 position;
        uint256 assetId;
        uint256 amount;
        bytes32[] proof;
    }

    /**
     * @notice Credits `amount` to the owner of `assetId` from a Completed proposal.
     * @param proposalId the proposal, before its claim deadline
     * @param position the asset's position in the proposal's selection
     * @param assetId the asset the leaf pays
     * @param amount the leaf's amount
     * @param proof Merkle proof of the leaf against the payout root
     */
    function claim(uint256 proposalId, uint256 position, uint256 assetId, uint256 amount, bytes32[] calldata proof)
        external
    {
        _claim(proposalId, position, assetId, amount, proof);
    }

    /// @notice Several claims in one transaction (any proposals, any assets).
    function claimMany(ClaimRequest[] calldata requests) external {
        for (uint256 i = 0; i < requests.length; ++i) {
            ClaimRequest calldata r = requests[i];
            _claim(r.proposalId, r.position, r.assetId, r.amount, r.proof);
        }
    }

    /// @notice Whether selection position `position` of `proposalId` has been claimed.
    function isClaimed(uint256 proposalId, uint256 position) external view returns (bool) {
        return _claimedBits[proposalId][position >> 8] & (uint256(1) << (position & 0xff)) != 0;
    }

    /**
     * @notice After the claim period, credits what is still unclaimed to the market treasury.
     * @param proposalId a Completed proposal whose claim deadline has passed; anyone may call
     */
    function sweepUnclaimed(uint256 proposalId) external {
        Proposal storage p = _existing(proposalId);
        if (p.status != Status.Completed) revert TrainingMarketWrongStatus(proposalId, p.status);
        // nor a result the court has not settled (p.deadline != 0): it may yet be refunded
        if (block.timestamp <= p.claimDeadline || p.deadline != 0) {
            revert TrainingMarketClaimPeriodOpen(proposalId, p.claimDeadline);
        }
        uint256 amount = p.unclaimed;
        p.unclaimed = 0;
        address treasury = _params.treasury;
        emit UnclaimedSwept(proposalId, treasury, amount);
        _credit(treasury, amount, proposalId);
    }

    /// @notice Withdraws the caller's credited balance (payouts, refunds, training fees).
    function withdraw() external nonReentrant {
        uint256 amount = _credits[msg.sender];
        if (amount == 0) revert TrainingMarketNothingToWithdraw(msg.sender);
        _credits[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        paymentToken.safeTransfer(msg.sender, amount);
    }

    /// @notice The balance `account` can withdraw.
    function creditOf(address account) external view returns (uint256) {
        return _credits[account];
    }

    function _claim(uint256 proposalId, uint256 position, uint256 assetId, uint256 amount, bytes32[] calldata proof)
        private
    {
        // Only a Completed proposal has a payout root: one read serves as the status check.
        Proposal storage p = _proposals[proposalId];
        bytes32 root = p.payoutRoot;
        if (root == bytes32(0)) {
            _existing(proposalId); // an unknown proposal gets its own error
            revert TrainingMarketWrongStatus(proposalId, p.status);
        }
        if (block.timestamp > p.claimDeadline) revert TrainingMarketClaimPeriodOver(proposalId, p.claimDeadline);
        // a Completed result's deadline is when its challenge window closes: 0 once released
        if (p.deadline != 0) revert TrainingMarketChallengeWindow(proposalId, p.deadline);
        uint256 word = position >> 8;
        uint256 bit = uint256(1) << (position & 0xff);
        uint256 bits = _claimedBits[proposalId][word];
        if (bits & bit != 0) revert TrainingMarketAlreadyClaimed(proposalId, position);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(position, assetId, amount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) {
            revert TrainingMarketInvalidProof(proposalId, position, assetId);
        }
        if (position >= p.assetCount || _selectedAt(proposalId, position) != assetId) {
            revert TrainingMarketNotSelected(proposalId, position, assetId);
        }
        if (_isExcluded(p, proposalId, position)) revert TrainingMarketLeftRound(proposalId, assetId);
        uint256 unclaimed = p.unclaimed;
        if (amount > unclaimed) revert TrainingMarketOverClaim(proposalId, amount);
        (address owner,) = assets.ownerAndStatus(assetId);
        // Cannot underflow: amount <= unclaimed was just checked.
        unchecked {
            p.unclaimed = unclaimed - amount;
        }
        _claimedBits[proposalId][word] = bits | bit;
        _credits[owner] += amount;
        emit Claimed(proposalId, position, assetId, owner, amount);
    }
}
