// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {AssetRegistry} from "../AssetRegistry.sol";
import {DelegationRegistry} from "../DelegationRegistry.sol";
import {StakeholderRegistry} from "../StakeholderRegistry.sol";

/**
 * @title MarketBase
 * @notice The TrainingMarket's state, types, events, errors and governance parameters, shared
 *         by its parts: proposals and training (TrainingMarket), the tally (MarketTally) and
 *         payouts (MarketPayouts).
 * @dev Split only to keep each file readable; the parts deploy as one contract.
 */
abstract contract MarketBase is DelegationRegistry, EIP712, ReentrancyGuardTransient {
    enum Status {
        None,
        Voting,
        Approved,
        Countered,
        Failed,
        Rejected,
        Training,
        Completed,
        WtpMissed,
        Cancelled
    }

    /// @notice What a consumer proposes (calldata only; what is kept is in `Proposal`).
    struct ProposalTerms {
        uint256[] assetIds; // strictly increasing
        uint32[] sampleCounts; // samples selected from each asset (the asset's vote weight)
        bytes32 selectionRoot; // Merkle root over the selected sample ids
        uint256 offer; // price offered for the data, escrowed now
        uint16 wtpBps; // minimum accuracy on the consumer's validation set, basis points
        uint16 minShareBps; // smallest share of the selected weight the consumer still wants
        address node; // compute node; every selected asset must allow it
        uint48 votingDeadline;
        bytes32 modelSpecHash;
        bytes32 validationSetHash;
        string proposalCid; // the signed XML proposal in storage (only emitted)
    }

    // Field order packs the small fields into four words.
    struct Proposal {
        address consumer;
        uint48 votingDeadline;
        uint16 wtpBps;
        Status status;
        uint16 minShareBps;
        address node;
        uint48 deadline; // reply, start or training deadline, depending on the status
        uint32 assetCount;
        uint64 totalWeight;
        uint64 remainingWeight; // weight left in the round after the tally
        uint48 claimDeadline; // of a Completed proposal: claims close, the rest is swept
        uint16 accuracyBps;
        address tallier; // whose tally decided the outcome (its exclusion bitmap counts)
        uint256 offer;
        uint256 price; // escrowed data price: the offer, or the counter price once accepted
        uint256 clearingPrice;
        uint256 trainingCost;
        uint256 unclaimed; // of a Completed proposal: the part of the price not yet claimed
        bytes32 assetsHash; // hash chain over (assetId, sampleCount), walked by the tally
        bytes32 selectionRoot;
        bytes32 modelSpecHash;
        bytes32 validationSetHash;
        bytes32 payoutRoot;
        bytes32 modelHash;
        bytes32 seedHash;
    }

    /// @notice A compute node's signed offer to train a proposal.
    struct Quote {
        uint256 proposalId;
        uint256 trainingCost;
        uint64 maxDuration;
        uint64 expiry;
    }

    /// @notice What a node commits when it posts a training result.
    struct Result {
        uint16 accuracyBps; // on the consumer's validation set
        bool consumerFault; // the consumer's own input was unusable: refund the price
        bytes32 modelHash; // of the sealed model
        bytes32 payoutRoot; // Merkle root over (position, assetId, amount) leaves
        bytes32 scoresHash; // of the published per-sample scores
        bytes32 seedHash; // keccak256 of the job's secret 256-bit seed
        string resultCid; // the result document in storage (only emitted)
    }

    /// @notice Market parameters, set by governance.
    struct Parameters {
        uint16 quorumBps; // of the weight remaining in the round
        uint32 minVotingPeriod;
        uint32 maxVotingPeriod;
        uint32 replyPeriod;
        uint32 startPeriod;
        uint32 maxTrainingPeriod; // longest training a quote may promise
        uint32 claimPeriod; // after a result, before the unclaimed remainder is swept
        uint32 minBatchSize; // smallest expected batch a node may train with (nodes enforce it)
        uint32 minSelectionSamples; // smallest selection, and smallest round after the tally
        uint16 minSelectionProviders; // distinct owners a selection must span
        address treasury; // receives what is left unclaimed after the claim period
        uint32 challengeWindow; // after a result, before claims and the node's fee open (0: at once)
        address court; // may freeze a result in its window, then uphold or overturn it
    }

    uint256 internal constant _BPS = 10_000;
    uint256 internal constant _REJECT = type(uint256).max;
    // the highest scoring fee governance may set: 10 % of a completed proposal's price
    uint16 internal constant _MAX_SCORING_FEE_BPS = 1000;

    StakeholderRegistry public immutable stakeholders;
    AssetRegistry public immutable assets;
    IERC20 public immutable paymentToken;

    Parameters internal _params;
    mapping(uint256 proposalId => Proposal) internal _proposals;
    uint256 internal _proposalCount;
    // ask + 1, or _REJECT for a rejection: 0 means "has not voted"
    mapping(uint256 proposalId => mapping(address voter => uint256)) internal _votes;
    mapping(address account => uint256) internal _credits;
    // per tallier, one bit per selection position that left the round (withdrawn or rejected)
    mapping(uint256 proposalId => mapping(address tallier => mapping(uint256 word => uint256 bits))) internal
        _excludedBits;
    // one bit per claimed selection position, 256 to a word (MerkleDistributor's bitmap)
    mapping(uint256 proposalId => mapping(uint256 word => uint256 bits)) internal _claimedBits;
    // the selected asset ids by position, eight uint32 to a word: a claim reads one word to
    // know which asset a position pays, instead of carrying a second Merkle proof
    mapping(uint256 proposalId => mapping(uint256 word => uint256 ids)) internal _selectedIds;
    // the scoring pool and its fee on completed proposals (one slot); the fee a proposal pays
    // is fixed when it is made, so voters know it and a change cannot upset a payout tree
    address internal _scoringPool;
    uint16 internal _scoringFeeBps;
    mapping(uint256 proposalId => uint16 feeBps) internal _proposalFeeBps;

    event ProposalCreated(
        uint256 indexed proposalId,
        address indexed consumer,
        address indexed node,
        uint256 offer,
        uint16 wtpBps,
        uint16 minShareBps,
        uint48 votingDeadline,
        uint64 totalWeight,
        bytes32 assetsHash,
        bytes32 assetsRoot,
        bytes32 selectionRoot,
        bytes32 modelSpecHash,
        bytes32 validationSetHash,
        string proposalCid
    );
    event VoteCast(uint256 indexed proposalId, address indexed voter, uint256 ask);
    event ProposalTallied(
        uint256 indexed proposalId,
        Status outcome,
        uint256 clearingPrice,
        uint64 participatingWeight,
        uint64 remainingWeight,
        uint64 totalWeight,
        address tallier
    );
    event CounterAccepted(uint256 indexed proposalId, uint256 price);
    event TrainingStarted(uint256 indexed proposalId, uint256 trainingCost, uint48 deadline);
    event ResultSubmitted(
        uint256 indexed proposalId,
        uint16 accuracyBps,
        bool wtpMet,
        bool consumerFault,
        bytes32 modelHash,
        bytes32 payoutRoot,
        bytes32 scoresHash,
        bytes32 seedHash,
        string resultCid
    );
    event TrainingAbandoned(uint256 indexed proposalId, address indexed node, string reason);
    event Reclaimed(uint256 indexed proposalId, address indexed consumer, uint256 amount);
    event Credited(address indexed account, uint256 amount, uint256 indexed proposalId);
    event Withdrawn(address indexed account, uint256 amount);
    event Claimed(
        uint256 indexed proposalId, uint256 position, uint256 indexed assetId, address indexed owner, uint256 amount
    );
    event UnclaimedSwept(uint256 indexed proposalId, address treasury, uint256 amount);
    event ParametersChanged(Parameters parameters);
    event ScoringFeeChanged(address pool, uint16 feeBps);
    event ScoringFeeTaken(uint256 indexed proposalId, address indexed pool, uint256 amount);
    event ResultSettled(uint256 indexed proposalId, bool overturned);

    error TrainingMarketNotConsumer(address account);
    error TrainingMarketNotGovernance(address account);
    error TrainingMarketInvalidTerms(string reason);
    error TrainingMarketInvalidParameters(string reason);
    error TrainingMarketAssetNotSelectable(uint256 assetId);
    error TrainingMarketOwnAsset(uint256 assetId, address owner);
    error TrainingMarketSelectionTooSmall(uint256 samples, uint256 providers, uint256 minSamples, uint256 minProviders);
    error TrainingMarketNodeNotAllowed(uint256 assetId, address node);
    error TrainingMarketInactiveNode(address node);
    error TrainingMarketUnknownProposal(uint256 proposalId);
    error TrainingMarketWrongStatus(uint256 proposalId, Status status);
    error TrainingMarketVotingClosed(uint256 proposalId);
    error TrainingMarketVotingOpen(uint256 proposalId);
    error TrainingMarketTallyMismatch(uint256 proposalId);
    error TrainingMarketTallyBatch(uint256 proposalId, uint256 assets);
    error TrainingMarketTallyPriceChanged(uint256 proposalId, uint256 price);
    error TrainingMarketNotMedian(uint256 clearingPrice, uint64 participating, uint64 atOrBelow, uint64 below);
    error TrainingMarketDeadlinePassed(uint256 proposalId);
    error TrainingMarketDeadlineNotPassed(uint256 proposalId);
    error TrainingMarketBadQuote(uint256 proposalId);
    error TrainingMarketQuoteExpired(uint256 proposalId);
    error TrainingMarketBadSigner(address signer);
    error TrainingMarketNotNode(address account);
    error TrainingMarketInvalidProof(uint256 proposalId, uint256 position, uint256 assetId);
    error TrainingMarketNotSelected(uint256 proposalId, uint256 position, uint256 assetId);
    error TrainingMarketLeftRound(uint256 proposalId, uint256 assetId);
    error TrainingMarketAlreadyClaimed(uint256 proposalId, uint256 position);
    error TrainingMarketOverClaim(uint256 proposalId, uint256 amount);
    error TrainingMarketClaimPeriodOver(uint256 proposalId, uint48 claimDeadline);
    error TrainingMarketClaimPeriodOpen(uint256 proposalId, uint48 claimDeadline);
    error TrainingMarketNothingToWithdraw(address account);
    error TrainingMarketNotCourt(address account);
    error TrainingMarketChallengeWindow(uint256 proposalId, uint48 opensAt);

    constructor(StakeholderRegistry stakeholderRegistry, AssetRegistry assetRegistry, IERC20 token)
        EIP712("ViSDM TrainingMarket", "1")
    {
        stakeholders = stakeholderRegistry;
        assets = assetRegistry;
        paymentToken = token;
    }

    // ------------------------------------------------------------------ governance

    /// @notice Changes the market parameters; only GOVERNANCE_ROLE of the StakeholderRegistry.
    function setParameters(Parameters calldata newParameters) external {
        if (!stakeholders.hasRole(stakeholders.GOVERNANCE_ROLE(), msg.sender)) {
            revert TrainingMarketNotGovernance(msg.sender);
        }
        _setParameters(newParameters);
    }

    /// @notice The current market parameters.
    function parameters() external view returns (Parameters memory) {
        return _params;
    }

    /**
     * @notice Sets the scoring pool and the fee it takes from the price of every proposal made
     *         from now on that completes; only GOVERNANCE_ROLE of the StakeholderRegistry.
     * @param pool the ScoringPool credited with the fees (the zero address only with a zero fee)
     * @param feeBps basis points of the price, at most 1000 (10 %)
     */
    function setScoringFee(address pool, uint16 feeBps) external {
        if (!stakeholders.hasRole(stakeholders.GOVERNANCE_ROLE(), msg.sender)) {
            revert TrainingMarketNotGovernance(msg.sender);
        }
        if (feeBps > _MAX_SCORING_FEE_BPS || (feeBps != 0 && pool == address(0))) {
            revert TrainingMarketInvalidParameters("scoring fee over 1000 bps or no pool");
        }
        _scoringPool = pool;
        _scoringFeeBps = feeBps;
        emit ScoringFeeChanged(pool, feeBps);
    }

    /**
     * @notice The scoring fee: the pool and basis points proposals made now pay, and the
     *         basis points and amount `proposalId` pays (or paid) from its current price.
     */
    function scoringFee(uint256 proposalId)
        external
        view
        returns (address pool, uint16 currentBps, uint16 proposalBps, uint256 amount)
    {
        return (_scoringPool, _scoringFeeBps, _proposalFeeBps[proposalId], _scoringFeeOf(proposalId));
    }

    /// @dev What `proposalId` pays the scoring pool from its price (0 without a pool).
    function _scoringFeeOf(uint256 proposalId) internal view returns (uint256) {
        uint256 bps = _proposalFeeBps[proposalId];
        if (bps == 0 || _scoringPool == address(0)) return 0;
        uint256 price = _proposals[proposalId].price;
        // price * bps / _BPS rounded down, without overflowing for any uint256 price
        return price / _BPS * bps + price % _BPS * bps / _BPS;
    }

    /// @dev Credits the scoring fee of a proposal that just completed; returns what it took.
    function _takeScoringFee(uint256 proposalId) internal returns (uint256 fee) {
        fee = _scoringFeeOf(proposalId);
        if (fee == 0) return 0;
        address pool = _scoringPool;
        emit ScoringFeeTaken(proposalId, pool, fee);
        _credit(pool, fee, proposalId);
    }

    function _setParameters(Parameters memory params) internal {
        if (params.quorumBps > _BPS) revert TrainingMarketInvalidParameters("quorumBps above 10000");
        if (params.minVotingPeriod > params.maxVotingPeriod) {
            revert TrainingMarketInvalidParameters("minVotingPeriod above maxVotingPeriod");
        }
        if (params.replyPeriod == 0 || params.startPeriod == 0 || params.maxTrainingPeriod == 0) {
            revert TrainingMarketInvalidParameters("reply, start and training periods must be positive");
        }
        if (params.minBatchSize == 0 || params.minSelectionSamples == 0 || params.minSelectionProviders == 0) {
            revert TrainingMarketInvalidParameters("minimum batch and selection must be positive");
        }
        if (params.treasury == address(0)) revert TrainingMarketInvalidParameters("treasury is the zero address");
        if (params.challengeWindow != 0 && params.court == address(0)) {
            revert TrainingMarketInvalidParameters("a challenge window needs a court");
        }
        _params = params;
        emit ParametersChanged(params);
    }

    // ------------------------------------------------------------------ shared internals

    function _credit(address account, uint256 amount, uint256 proposalId) internal {
        if (amount == 0) return;
        _credits[account] += amount;
        emit Credited(account, amount, proposalId);
    }

    function _link(bytes32 chain, uint256 assetId, uint32 count) internal pure returns (bytes32) {
        return keccak256(abi.encode(chain, assetId, count));
    }

    /// @dev The asset id selected at `position` (0 past the end of the selection).
    function _selectedAt(uint256 proposalId, uint256 position) internal view returns (uint256) {
        return uint32(_selectedIds[proposalId][position >> 3] >> ((position & 7) * 32));
    }

    /// @dev Whether selection `position` of a tallied proposal left the round.
    function _isExcluded(Proposal storage p, uint256 proposalId, uint256 position) internal view returns (bool) {
        return _excludedBits[proposalId][p.tallier][position >> 8] & (uint256(1) << (position & 0xff)) != 0;
    }

    function _existing(uint256 proposalId) internal view returns (Proposal storage p) {
        p = _proposals[proposalId];
        if (p.consumer == address(0)) revert TrainingMarketUnknownProposal(proposalId);
    }

    function _ownProposal(uint256 proposalId) internal view returns (Proposal storage p) {
        p = _existing(proposalId);
        if (p.consumer != msg.sender) revert TrainingMarketNotConsumer(msg.sender);
    }
}
