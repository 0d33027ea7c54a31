// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AssetRegistry} from "../AssetRegistry.sol";
import {MarketBase} from "./MarketBase.sol";

/**
 * @title MarketTally
 * @notice The liquid-democracy tally of a proposal (paper Algorithm 3, design 3.3 step 6),
 *         computed off chain and verified here in batches.
 * @dev Per selected asset, in proposal order: a withdrawn asset leaves the round; otherwise its
 *      vote is its owner's own ask, else the first ask along the owner's delegation chain as of
 *      the voting deadline (at most MAX_DELEGATION_DEPTH hops), else it abstains. A resolved
 *      REJECT takes the asset out of the round: its data is never used against its owner's vote.
 *      What remains is the round. It fails (Rejected, refund) below the consumer's minimum
 *      share of the selected weight or below the market's minimum selection; without quorum on
 *      the remaining weight it fails (Failed, refund); otherwise the clearing price is the
 *      weighted lower median of the remaining participating asks. Each caller accumulates its
 *      own progress and exclusion bitmap, so nobody can spoil another's tally; the bitmap of
 *      the caller whose tally decided is the one claims and nodes read.
 */
abstract contract MarketTally is MarketBase {
    struct TallyProgress {
        uint256 price;
        bytes32 runningHash;
        uint64 cursor;
        uint64 remaining;
        uint64 participating;
        uint64 atOrBelow;
        uint64 below;
    }

    mapping(uint256 proposalId => mapping(address tallier => TallyProgress)) private _tallies;

    /**
     * @notice Tallies the next batch of a proposal's assets, after its voting deadline.
     * @dev The batches, in order, must repeat exactly the proposal's (assetId, sampleCount) list;
     *      every batch but the last holds a multiple of 256 assets, so each exclusion word is
     *      written by one batch; every batch of one caller uses the same `clearingPrice`. The last
     *      batch checks the list against the commitment, the minimum share, the quorum and that
     *      `clearingPrice` is the weighted lower median of the remaining participating asks.
     * @param proposalId the proposal
     * @param clearingPrice the claimed weighted lower median (0 when the round fails)
     * @param assetIds the next assets of the selection
     * @param sampleCounts their selected sample counts
     * @return done whether this batch completed the tally
     */
    function tally(uint256 proposalId, uint256 clearingPrice, uint256[] calldata assetIds, uint32[] calldata sampleCounts)
        external
        nonReentrant
        returns (bool done)
    {
        Proposal storage p = _existing(proposalId);
        if (p.status != Status.Voting) revert TrainingMarketWrongStatus(proposalId, p.status);
        if (block.timestamp <= p.votingDeadline) revert TrainingMarketVotingOpen(proposalId);
        uint256 n = assetIds.length;
        if (n != sampleCounts.length || n == 0) revert TrainingMarketTallyMismatch(proposalId);

        TallyProgress memory t = _tallies[proposalId][msg.sender];
        if (t.cursor == 0) t.price = clearingPrice;
        else if (t.price != clearingPrice) revert TrainingMarketTallyPriceChanged(proposalId, t.price);
        if (t.cursor + n > p.assetCount) revert TrainingMarketTallyMismatch(proposalId);
        bool last = t.cursor + n == p.assetCount;
        if (!last && n % 256 != 0) revert TrainingMarketTallyBatch(proposalId, n);

        uint256 bits;
        for (uint256 i = 0; i < n; ++i) {
            uint32 count = sampleCounts[i];
            t.runningHash = _link(t.runningHash, assetIds[i], count);
            if (!_countAsset(proposalId, p.votingDeadline, assetIds[i], count, clearingPrice, t)) {
                bits |= uint256(1) << ((t.cursor + i) & 0xff);
            }
            // a word is complete at every 256th position and at the end of the batch
            if ((t.cursor + i) & 0xff == 0xff || i + 1 == n) {
                _storeExclusions(proposalId, (t.cursor + i) >> 8, bits);
                bits = 0;
            }
        }
        t.cursor += uint64(n);

        if (!last) {
            _tallies[proposalId][msg.sender] = t;
            return false;
        }
        if (t.runningHash != p.assetsHash) revert TrainingMarketTallyMismatch(proposalId);
        delete _tallies[proposalId][msg.sender];
        _finishTally(proposalId, p, t);
        return true;
    }

    /// @notice Discards the caller's unfinished tally of `proposalId` (e.g. after a wrong batch).
    function resetTally(uint256 proposalId) external {
        delete _tallies[proposalId][msg.sender];
    }

    /// @notice The caller-specific tally progress of `tallier` on `proposalId`.
    function tallyProgress(uint256 proposalId, address tallier) external view returns (TallyProgress memory) {
        return _tallies[proposalId][tallier];
    }

    /// @notice Word `word` of the bitmap of selection positions that left the round (bit i of
    ///         word w is position 256·w + i); all zero before the tally.
    function exclusionWord(uint256 proposalId, uint256 word) external view returns (uint256) {
        Proposal storage p = _proposals[proposalId];
        return p.tallier == address(0) ? 0 : _excludedBits[proposalId][p.tallier][word];
    }

    /// @dev Adds one asset to the tally; returns false when it leaves the round.
    function _countAsset(
        uint256 proposalId,
        uint48 asOf,
        uint256 assetId,
        uint32 count,
        uint256 clearingPrice,
        TallyProgress memory t
    ) private view returns (bool inRound) {
        (address voter, AssetRegistry.Status status) = assets.ownerAndStatus(assetId);
        if (status != AssetRegistry.Status.Active) return false; // withdrawn since the proposal
        uint256 stored = _votes[proposalId][voter];
        for (uint256 hop = 0; stored == 0 && hop < MAX_DELEGATION_DEPTH; ++hop) {
            voter = _delegateAt(voter, asOf);
            if (voter == address(0)) break;
            stored = _votes[proposalId][voter];
        }
        if (stored == _REJECT) return false;
        t.remaining += count;
        if (stored == 0) return true; // abstains, stays in the round
        uint256 ask = stored - 1;
        t.participating += count;
        if (ask <= clearingPrice) t.atOrBelow += count;
        if (ask < clearingPrice) t.below += count;
        return true;
    }

    function _storeExclusions(uint256 proposalId, uint256 word, uint256 bits) private {
        // a retried tally by the same caller must not inherit stale bits of an abandoned one
        mapping(uint256 => uint256) storage own = _excludedBits[proposalId][msg.sender];
        if (bits != 0 || own[word] != 0) own[word] = bits;
    }

    function _finishTally(uint256 proposalId, Proposal storage p, TallyProgress memory t) private {
        Status outcome;
        uint256 price = t.price;
        uint256 remaining = t.remaining;
        if (
            remaining == 0 || remaining * _BPS < uint256(p.minShareBps) * p.totalWeight
                || remaining < _params.minSelectionSamples
        ) {
            outcome = Status.Rejected; // too little of the selection is left to train on
        } else if (t.participating == 0 || uint256(t.participating) * _BPS < uint256(_params.quorumBps) * remaining) {
            outcome = Status.Failed;
        } else {
            // Lower weighted median: at least half the weight asks <= p*, less than half asks < p*.
            if (uint256(t.atOrBelow) * 2 < t.participating || uint256(t.below) * 2 >= t.participating) {
                revert TrainingMarketNotMedian(price, t.participating, t.atOrBelow, t.below);
            }
            if (price <= p.offer) {
                outcome = Status.Approved;
                p.deadline = uint48(block.timestamp + _params.startPeriod);
            } else {
                outcome = Status.Countered;
                p.deadline = uint48(block.timestamp + _params.replyPeriod);
            }
        }
        if (outcome == Status.Rejected || outcome == Status.Failed) price = 0;
        p.status = outcome;
        p.clearingPrice = price;
        p.remainingWeight = t.remaining;
        p.tallier = msg.sender;
        emit ProposalTallied(proposalId, outcome, price, t.participating, t.remaining, p.totalWeight, msg.sender);
        if (outcome == Status.Failed || outcome == Status.Rejected) {
            uint256 refund = p.price;
            p.price = 0;
            _credit(p.consumer, refund, proposalId);
        }
    }
}
