// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";

import {AssetRegistry} from "./AssetRegistry.sol";
import {StakeholderRegistry} from "./StakeholderRegistry.sol";
import {MarketBase} from "./market/MarketBase.sol";
import {MarketPayouts} from "./market/MarketPayouts.sol";
import {MarketTally} from "./market/MarketTally.sol";

/// @notice What the market asks of its ResultCourt.
interface IResultCourt {
    /// @notice Locks `node`'s bond for `proposalId`; reverts when its free stake is too low.
    function lockBond(uint256 proposalId, address node) external;
}

/**
 * @title TrainingMarket
 * @notice Training proposals, liquid-democracy price negotiation and escrowed training with
 *         Merkle payouts to the owners of the selected assets (paper Algorithms 3 and 4).
 *
 *         Voting → (tally) → Approved | Countered | Failed | Rejected
 *         Countered → (acceptCounter) → Approved, or lapses → consumer reclaims
 *         Approved → (startTraining with a node-signed quote) → Training
 *         Training → (submitResult) → Completed (WTP met: owners claim) | WtpMissed (refund)
 *         Training → (abandonTraining by the node) → Cancelled (full refund)
 *         Training → (deadline passes without a result) → consumer reclaims everything
 *         Completed | WtpMissed → (challenge window over, settleResult) → claims and the node's
 *         fee open; a challenge freezes the result until the court upholds it (the same) or
 *         overturns it (Cancelled: the consumer is credited the price and the training cost)
 *         Completed → (claim period over) → the unclaimed remainder is swept to the treasury
 *
 * @dev The market is also the marketplace's delegation registry (DelegationRegistry, inherited
 *      through MarketBase), so a tally follows chains without external calls. Money moves in
 *      only by `transferFrom` of the consumer and out only by `withdraw` of credited balances
 *      and by `reclaim`. The consumer chooses the selection, spec, validation set and offer and
 *      nothing else: its own assets and the node's cannot be selected, so it can neither vote
 *      for itself nor be paid for its own data.
 */
contract TrainingMarket is MarketTally, MarketPayouts {
    using SafeERC20 for IERC20;

    bytes32 private constant _QUOTE_TYPEHASH =
        keccak256("Quote(uint256 proposalId,uint256 trainingCost,uint64 maxDuration,uint64 expiry)");
    // transient-storage domain of the distinct-owner count in `propose`
    bytes32 private constant _OWNER_SEEN = keccak256("visdm.TrainingMarket.ownerSeen");

    constructor(
        StakeholderRegistry stakeholderRegistry,
        AssetRegistry assetRegistry,
        IERC20 token,
        Parameters memory initialParameters
    ) MarketBase(stakeholderRegistry, assetRegistry, token) {
        _setParameters(initialParameters);
    }

    // ------------------------------------------------------------------ proposals and votes

    /**
     * @notice Proposes to train on a selection of samples, escrowing the offered price.
     * @dev The caller must be a registered consumer that approved `terms.offer` to this market.
     *      Every selected asset must be Active, allow the node's region (a federation's: one of
     *      its members' regions), have at least the selected count attested, and be owned
     *      neither by the caller nor by the node; the
     *      selection must reach the market's minimum samples and distinct owners. Gas grows
     *      with the number of selected assets (each is checked), not with samples.
     * @param terms the proposal; see ProposalTerms
     * @return proposalId the new proposal's id (ids start at 1)
     */
    function propose(ProposalTerms calldata terms) external nonReentrant returns (uint256 proposalId) {
        if (!stakeholders.hasRoles(msg.sender, stakeholders.ROLE_CONSUMER())) {
            revert TrainingMarketNotConsumer(msg.sender);
        }
        uint256 n = terms.assetIds.length;
        if (n == 0 || n != terms.sampleCounts.length || n > type(uint32).max) {
            revert TrainingMarketInvalidTerms("assetIds and sampleCounts must be non-empty and equally long");
        }
        if (terms.offer == 0) revert TrainingMarketInvalidTerms("offer must be positive");
        if (terms.wtpBps > _BPS || terms.minShareBps > _BPS) {
            revert TrainingMarketInvalidTerms("wtpBps and minShareBps must be at most 10000");
        }
        if (
            terms.votingDeadline < block.timestamp + _params.minVotingPeriod
                || terms.votingDeadline > block.timestamp + _params.maxVotingPeriod
        ) revert TrainingMarketInvalidTerms("voting deadline outside the allowed window");
        if (terms.selectionRoot == bytes32(0) || terms.modelSpecHash == bytes32(0)) {
            revert TrainingMarketInvalidTerms("selection root and model spec hash are required");
        }
        (bool active, uint256 regions, address signer) = stakeholders.nodeRegions(terms.node);
        if (!active) revert TrainingMarketInactiveNode(terms.node);
        if (terms.node == msg.sender || signer == msg.sender) {
            revert TrainingMarketInvalidTerms("the compute node cannot be the consumer");
        }

        // Cannot overflow: one increment per proposal.
        unchecked {
            proposalId = ++_proposalCount;
        }
        (bytes32 chain, uint256 weight, uint256 owners) = _checkSelection(proposalId, terms, regions);
        if (weight < _params.minSelectionSamples || owners < _params.minSelectionProviders) {
            revert TrainingMarketSelectionTooSmall(
                weight, owners, _params.minSelectionSamples, _params.minSelectionProviders
            );
        }

        Proposal storage p = _proposals[proposalId];
        p.consumer = msg.sender;
        p.votingDeadline = terms.votingDeadline;
        p.wtpBps = terms.wtpBps;
        p.minShareBps = terms.minShareBps;
        p.status = Status.Voting;
        p.node = terms.node;
        p.assetCount = uint32(n);
        p.totalWeight = uint64(weight);
        p.offer = terms.offer;
        p.price = terms.offer;
        p.assetsHash = chain;
        p.selectionRoot = terms.selectionRoot;
        p.modelSpecHash = terms.modelSpecHash;
        p.validationSetHash = terms.validationSetHash;
        uint16 feeBps = _scoringFeeBps;
        if (feeBps != 0) _proposalFeeBps[proposalId] = feeBps;
        _emitCreated(proposalId, p, _assetsRoot(terms.assetIds), terms.proposalCid);
        paymentToken.safeTransferFrom(msg.sender, address(this), terms.offer);
    }

    /**
     * @notice Casts or replaces the caller's ask on a proposal, until its voting deadline.
     * @param proposalId the proposal
     * @param ask minimum acceptable price: 0 accepts any price, type(uint256).max rejects (the
     *        voter's assets then leave the round)
     */
    function vote(uint256 proposalId, uint256 ask) external {
        Proposal storage p = _existing(proposalId);
        if (p.status != Status.Voting) revert TrainingMarketWrongStatus(proposalId, p.status);
        if (block.timestamp > p.votingDeadline) revert TrainingMarketVotingClosed(proposalId);
        // Cannot overflow: ask < type(uint256).max on this branch.
        unchecked {
            _votes[proposalId][msg.sender] = ask == _REJECT ? _REJECT : ask + 1;
        }
        emit VoteCast(proposalId, msg.sender, ask);
    }

    /// @notice The ask of `voter` on `proposalId`: (false, 0) when it has not voted.
    function voteOf(uint256 proposalId, address voter) public view returns (bool voted, uint256 ask) {
        uint256 stored = _votes[proposalId][voter];
        if (stored == 0) return (false, 0);
        // Cannot underflow: stored > 0.
        unchecked {
            return (true, stored == _REJECT ? _REJECT : stored - 1);
        }
    }

    // ------------------------------------------------------------------ counter-offer

    /**
     * @notice Accepts the counter price of a Countered proposal by escrowing the difference.
     * @param proposalId the proposal; only its consumer, before the reply deadline
     */
    function acceptCounter(uint256 proposalId) external nonReentrant {
        Proposal storage p = _ownProposal(proposalId);
        if (p.status != Status.Countered) revert TrainingMarketWrongStatus(proposalId, p.status);
        if (block.timestamp > p.deadline) revert TrainingMarketDeadlinePassed(proposalId);
        uint256 topUp = p.clearingPrice - p.price;
        p.price = p.clearingPrice;
        p.status = Status.Approved;
        p.deadline = uint48(block.timestamp + _params.startPeriod);
        emit CounterAccepted(proposalId, p.clearingPrice);
        paymentToken.safeTransferFrom(msg.sender, address(this), topUp);
    }

    // ------------------------------------------------------------------ training

    /**
     * @notice Starts training with the node's signed quote; the consumer escrows the training cost.
     * @param proposalId an Approved proposal of the caller, before its start deadline
     * @param quote the node's quote for this proposal; maxDuration at most the market's
     *        maxTrainingPeriod
     * @param signature the node signer's EIP-712 signature of `quote`
     */
    function startTraining(uint256 proposalId, Quote calldata quote, bytes calldata signature) external nonReentrant {
        Proposal storage p = _ownProposal(proposalId);
        if (p.status != Status.Approved) revert TrainingMarketWrongStatus(proposalId, p.status);
        if (block.timestamp > p.deadline) revert TrainingMarketDeadlinePassed(proposalId);
        if (quote.proposalId != proposalId || quote.maxDuration == 0 || quote.maxDuration > _params.maxTrainingPeriod)
        {
            revert TrainingMarketBadQuote(proposalId);
        }
        if (block.timestamp > quote.expiry) revert TrainingMarketQuoteExpired(proposalId);
        (bool active,, address signer) = stakeholders.nodeRegions(p.node);
        if (!active) revert TrainingMarketInactiveNode(p.node);
        address recovered = ECDSA.recover(_hashTypedDataV4(_quoteHash(quote)), signature);
        if (recovered != signer) revert TrainingMarketBadSigner(recovered);

        // Cannot wrap: maxDuration <= maxTrainingPeriod (uint32) was checked above.
        uint48 deadline = uint48(block.timestamp + quote.maxDuration);
        p.trainingCost = quote.trainingCost;
        p.status = Status.Training;
        p.deadline = deadline;
        emit TrainingStarted(proposalId, quote.trainingCost, deadline);
        address court = _params.court;
        if (court != address(0)) IResultCourt(court).lockBond(proposalId, p.node);
        paymentToken.safeTransferFrom(msg.sender, address(this), quote.trainingCost);
    }

    /**
     * @notice The node posts the training result. WTP met (and no consumer fault): the data
     *         price less the scoring fee fixed at `propose` becomes claimable under `payoutRoot`
     *         until the claim deadline; otherwise the price is credited back to the consumer.
     *         The scoring fee is credited to the scoring pool now; claims and the node's training
     *         cost are released when the challenge window closes (`settleResult`), at once when
     *         the window is 0.
     * @param proposalId a proposal in Training whose node is the caller, before its deadline
     * @param result the committed result; see Result
     */
    function submitResult(uint256 proposalId, Result calldata result) external {
        Proposal storage p = _existing(proposalId);
        if (msg.sender != p.node) revert TrainingMarketNotNode(msg.sender);
        if (p.status != Status.Training) revert TrainingMarketWrongStatus(proposalId, p.status);
        (bool active,,) = stakeholders.nodeRegions(msg.sender);
        if (!active) revert TrainingMarketInactiveNode(msg.sender); // suspended: consumer reclaims
        if (block.timestamp > p.deadline) revert TrainingMarketDeadlinePassed(proposalId);
        if (result.accuracyBps > _BPS) revert TrainingMarketInvalidTerms("accuracy above 10000 bps");
        bool met = !result.consumerFault && result.accuracyBps >= p.wtpBps;
        if (met && result.payoutRoot == bytes32(0)) revert TrainingMarketInvalidTerms("payout root required");
        p.accuracyBps = result.accuracyBps;
        p.modelHash = result.modelHash;
        p.seedHash = result.seedHash;
        uint32 window = _params.challengeWindow;
        // the scoring fee comes off the price before any payout: leaves sum to price - fee
        uint256 fee = met ? _takeScoringFee(proposalId) : 0;
        emit ResultSubmitted(
            proposalId,
            result.accuracyBps,
            met,
            result.consumerFault,
            result.modelHash,
            result.payoutRoot,
            result.scoresHash,
            result.seedHash,
            result.resultCid
        );
        // from here on a result's deadline is the end of its challenge window, 0 once settled
        p.deadline = uint48(block.timestamp + window);
        if (met) {
            p.status = Status.Completed;
            p.payoutRoot = result.payoutRoot;
            p.unclaimed = p.price - fee;
            p.claimDeadline = uint48(block.timestamp + window + _params.claimPeriod);
        } else {
            p.status = Status.WtpMissed;
            uint256 refund = p.price;
            p.price = 0;
            _credit(p.consumer, refund, proposalId);
        }
        if (window == 0) _release(p, proposalId);
    }

    /**
     * @notice The court settles a submitted result: it releases it once its challenge window
     *         has passed unchallenged or a challenge failed (claims open, the node is credited
     *         its training cost), or overturns it after a challenge succeeded (Cancelled: the
     *         consumer is credited the data price still held and the training cost; the court
     *         pays it the scoring fee from the node's bond). Only the market's court; the
     *         court checks the window.
     * @param proposalId a Completed or WtpMissed proposal not yet settled
     * @param overturn whether the result was found wrong
     */
    function settleResult(uint256 proposalId, bool overturn) external {
        if (msg.sender != _params.court) revert TrainingMarketNotCourt(msg.sender);
        Proposal storage p = _proposals[proposalId]; // an unknown one has status None
        if ((p.status != Status.Completed && p.status != Status.WtpMissed) || p.deadline == 0) {
            revert TrainingMarketWrongStatus(proposalId, p.status);
        }
        emit ResultSettled(proposalId, overturn);
        if (!overturn) return _release(p, proposalId);
        // nothing was claimed yet: what is held is the price less the scoring fee (0 after a
        // WTP miss, whose price was refunded at once); the court repays the fee from the bond
        uint256 refund = p.unclaimed + p.trainingCost;
        p.unclaimed = 0;
        p.trainingCost = 0;
        p.payoutRoot = bytes32(0);
        p.deadline = 0;
        p.status = Status.Cancelled;
        _credit(p.consumer, refund, proposalId);
    }

    /**
     * @notice The node gives up a job it cannot finish (e.g. it crashed on it too often): the
     *         consumer is credited the price and the training cost at once, without waiting
     *         for the deadline.
     * @param proposalId a proposal in Training whose node is the caller
     * @param reason why, for the consumer (only emitted)
     */
    function abandonTraining(uint256 proposalId, string calldata reason) external {
        Proposal storage p = _existing(proposalId);
        if (msg.sender != p.node) revert TrainingMarketNotNode(msg.sender);
        if (p.status != Status.Training) revert TrainingMarketWrongStatus(proposalId, p.status);
        uint256 refund = p.price + p.trainingCost;
        p.price = 0;
        p.trainingCost = 0;
        p.status = Status.Cancelled;
        emit TrainingAbandoned(proposalId, msg.sender, reason);
        _credit(p.consumer, refund, proposalId);
    }

    /**
     * @notice Returns everything escrowed to the consumer when the counterpart did not act in
     *         time: a counter offer that lapsed, an approval never started, or training without a
     *         result by its deadline.
     * @param proposalId a proposal of the caller
     */
    function reclaim(uint256 proposalId) external nonReentrant {
        Proposal storage p = _ownProposal(proposalId);
        Status s = p.status;
        if (s != Status.Countered && s != Status.Approved && s != Status.Training) {
            revert TrainingMarketWrongStatus(proposalId, s);
        }
        if (block.timestamp <= p.deadline) revert TrainingMarketDeadlineNotPassed(proposalId);
        uint256 amount = p.price + p.trainingCost;
        p.price = 0;
        p.trainingCost = 0;
        p.status = Status.Cancelled;
        emit Reclaimed(proposalId, msg.sender, amount);
        paymentToken.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice The record of `proposalId` (all zero when unknown).
    function proposal(uint256 proposalId) external view returns (Proposal memory) {
        return _proposals[proposalId];
    }

    /// @notice Number of proposals ever made (the highest id).
    function proposalCount() external view returns (uint256) {
        return _proposalCount;
    }

    /// @notice The EIP-712 digest a node signs for `quote`.
    function quoteDigest(Quote calldata quote) external view returns (bytes32) {
        return _hashTypedDataV4(_quoteHash(quote));
    }

    /// @notice Hash chain over (assetId, sampleCount) pairs, as committed by `propose`.
    function assetsHashOf(uint256[] calldata assetIds, uint32[] calldata sampleCounts)
        external
        pure
        returns (bytes32 chain)
    {
        for (uint256 i = 0; i < assetIds.length; ++i) {
            chain = _link(chain, assetIds[i], sampleCounts[i]);
        }
    }

    /// @notice Merkle root over (position, assetId) leaves, as `propose` emits it.
    function assetsRootOf(uint256[] calldata assetIds) external pure returns (bytes32) {
        return _assetsRoot(assetIds);
    }

    /// @notice The asset selected at `position` of `proposalId` (0 past the selection's end).
    function selectedAsset(uint256 proposalId, uint256 position) external view returns (uint256) {
        return position < _proposals[proposalId].assetCount ? _selectedAt(proposalId, position) : 0;
    }

    // ------------------------------------------------------------------ internals

    /// @dev Opens claims and credits the node its training cost.
    function _release(Proposal storage p, uint256 proposalId) private {
        p.deadline = 0;
        uint256 cost = p.trainingCost;
        p.trainingCost = 0;
        _credit(p.node, cost, proposalId);
    }

    /// @dev Checks every selected asset; returns the hash chain, the weight and distinct owners.
    function _checkSelection(uint256 proposalId, ProposalTerms calldata terms, uint256 regions)
        private
        returns (bytes32 chain, uint256 weight, uint256 owners)
    {
        uint256 previousId;
        uint256 packed;
        uint256 n = terms.assetIds.length;
        for (uint256 i = 0; i < n; ++i) {
            uint256 assetId = terms.assetIds[i];
            uint32 count = terms.sampleCounts[i];
            if (assetId <= previousId) revert TrainingMarketInvalidTerms("assetIds must be strictly increasing");
            if (assetId > type(uint32).max) revert TrainingMarketAssetNotSelectable(assetId);
            previousId = assetId;
            packed |= assetId << ((i & 7) * 32);
            if (i & 7 == 7 || i + 1 == n) {
                _selectedIds[proposalId][i >> 3] = packed;
                packed = 0;
            }
            (address owner, AssetRegistry.Status status, uint32 accepted, uint256 mask) = assets.assetTerms(assetId);
            if (status != AssetRegistry.Status.Active || count == 0 || count > accepted) {
                revert TrainingMarketAssetNotSelectable(assetId);
            }
            if (owner == msg.sender || owner == terms.node) revert TrainingMarketOwnAsset(assetId, owner);
            if (mask & regions == 0) revert TrainingMarketNodeNotAllowed(assetId, terms.node);
            if (_firstSighting(proposalId, owner)) ++owners;
            chain = _link(chain, assetId, count);
            weight += count;
        }
    }

    /// @dev Marks `owner` as seen for this proposal in transient storage (cleared after the tx).
    function _firstSighting(uint256 proposalId, address owner) private returns (bool fresh) {
        bytes32 slot = keccak256(abi.encode(_OWNER_SEEN, proposalId, owner));
        assembly ("memory-safe") {
            fresh := iszero(tload(slot))
            if fresh { tstore(slot, 1) }
        }
    }

    /// @dev Merkle root over leaves keccak256(keccak256(abi.encode(position, assetId))), paired
    ///      in position order with commutative hashing; an odd node moves up unchanged. Emitted
    ///      so that anyone can check a proposal document's asset list (and prove membership
    ///      with OpenZeppelin's MerkleProof) without replaying the calldata.
    function _assetsRoot(uint256[] calldata assetIds) private pure returns (bytes32) {
        uint256 len = assetIds.length;
        bytes32[] memory level = new bytes32[](len);
        for (uint256 i = 0; i < len; ++i) {
            level[i] = keccak256(bytes.concat(keccak256(abi.encode(i, assetIds[i]))));
        }
        while (len > 1) {
            uint256 pairs = len >> 1;
            for (uint256 i = 0; i < pairs; ++i) {
                level[i] = Hashes.commutativeKeccak256(level[2 * i], level[2 * i + 1]);
            }
            if (len & 1 == 1) level[pairs] = level[len - 1];
            len = pairs + (len & 1);
        }
        return level[0];
    }

    function _emitCreated(uint256 proposalId, Proposal storage p, bytes32 assetsRoot, string calldata proposalCid)
        private
    {
        emit ProposalCreated(
            proposalId,
            p.consumer,
            p.node,
            p.offer,
            p.wtpBps,
            p.minShareBps,
            p.votingDeadline,
            p.totalWeight,
            p.assetsHash,
            assetsRoot,
            p.selectionRoot,
            p.modelSpecHash,
            p.validationSetHash,
            proposalCid
        );
    }

    function _quoteHash(Quote calldata quote) private pure returns (bytes32) {
        return keccak256(
            abi.encode(_QUOTE_TYPEHASH, quote.proposalId, quote.trainingCost, quote.maxDuration, quote.expiry)
        );
    }
}
