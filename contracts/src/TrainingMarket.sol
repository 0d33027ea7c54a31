// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {AssetRegistry} from "./AssetRegistry.sol";
import {DelegationRegistry} from "./DelegationRegistry.sol";
import {StakeholderRegistry} from "./StakeholderRegistry.sol";

/**
 * @title TrainingMarket
 * @notice Training proposals, liquid-democracy price negotiation and escrowed training with
 *         Merkle payouts (paper Algorithms 3 and 4).
 *
 *         Voting → (tally) → Approved | Countered | Failed | Rejected
 *         Countered → (acceptCounter) → Approved, or lapses → consumer reclaims
 *         Approved → (startTraining with a node-signed quote) → Training
 *         Training → (submitResult) → Completed (WTP met: providers claim) | WtpMissed (refund)
 *         Training → (deadline passes without a result) → consumer reclaims everything
 *
 * @dev Liquid-democracy delegation is inherited from DelegationRegistry, so the market is also
 *      the marketplace's delegation registry and a tally follows chains without external calls.
 *      Money only moves in by `transferFrom` of the consumer and out by pull: claims, reclaims and
 *      withdrawals of credited balances. The tally is permissionless and runs in batches; each
 *      caller accumulates its own progress, so nobody can block or spoil another's tally. The
 *      clearing price (weighted lower median of the participating asks) is computed off chain and
 *      verified in the final batch.
 */
contract TrainingMarket is DelegationRegistry, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

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
        address node; // compute node; every selected asset must allow it
        uint48 votingDeadline;
        bytes32 modelSpecHash;
        bytes32 validationSetHash;
        string proposalCid; // the signed XML proposal in storage (only emitted)
    }

    struct Proposal {
        address consumer;
        uint48 votingDeadline;
        uint16 wtpBps;
        Status status;
        address node;
        uint48 deadline; // reply, start or training deadline, depending on the status
        uint32 assetCount;
        uint64 totalWeight;
        uint256 offer;
        uint256 price; // escrowed data price: the offer, or the counter price once accepted
        uint256 clearingPrice;
        uint256 trainingCost;
        uint256 unclaimed; // of a Completed proposal: the part of the price not yet claimed
        bytes32 assetsHash; // hash chain over (assetId, sampleCount)
        bytes32 selectionRoot;
        bytes32 modelSpecHash;
        bytes32 validationSetHash;
        bytes32 payoutRoot;
        bytes32 modelHash;
        uint16 accuracyBps;
    }

    /// @notice A compute node's signed offer to train a proposal.
    struct Quote {
        uint256 proposalId;
        uint256 trainingCost;
        uint64 maxDuration;
        uint64 expiry;
    }

    struct TallyProgress {
        uint256 price;
        bytes32 runningHash;
        uint64 cursor;
        uint64 participating;
        uint64 atOrBelow;
        uint64 below;
    }

    /// @notice One payout claim: leaf `index` of the payout tree pays `amount` to `account`.
    struct ClaimRequest {
        uint256 proposalId;
        uint256 index;
        address account;
        uint256 amount;
        bytes32[] proof;
    }

    /// @notice Market parameters, set by governance.
    struct Parameters {
        uint16 quorumBps;
        uint32 minVotingPeriod;
        uint32 maxVotingPeriod;
        uint32 replyPeriod;
        uint32 startPeriod;
    }

    bytes32 private constant _QUOTE_TYPEHASH =
        keccak256("Quote(uint256 proposalId,uint256 trainingCost,uint64 maxDuration,uint64 expiry)");
    uint256 private constant _BPS = 10_000;
    uint256 private constant _REJECT = type(uint256).max;

    StakeholderRegistry public immutable stakeholders;
    AssetRegistry public immutable assets;
    IERC20 public immutable paymentToken;

    Parameters private _params;
    mapping(uint256 proposalId => Proposal) private _proposals;
    uint256 private _proposalCount;
    // ask + 1, or _REJECT for a rejection: 0 means "has not voted"
    mapping(uint256 proposalId => mapping(address voter => uint256)) private _votes;
    mapping(uint256 proposalId => mapping(address tallier => TallyProgress)) private _tallies;
    // one bit per payout leaf index, 256 to a word (MerkleDistributor's bitmap)
    mapping(uint256 proposalId => mapping(uint256 word => uint256 bits)) private _claimedBits;
    mapping(address account => uint256) private _credits;

    event ProposalCreated(
        uint256 indexed proposalId,
        address indexed consumer,
        address indexed node,
        uint256 offer,
        uint16 wtpBps,
        uint48 votingDeadline,
        uint64 totalWeight,
        bytes32 assetsHash,
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
        uint64 totalWeight,
        address tallier
    );
    event CounterAccepted(uint256 indexed proposalId, uint256 price);
    event TrainingStarted(uint256 indexed proposalId, uint256 trainingCost, uint48 deadline);
    event ResultSubmitted(
        uint256 indexed proposalId,
        uint16 accuracyBps,
        bool wtpMet,
        bytes32 modelHash,
        bytes32 payoutRoot,
        bytes32 scoresHash,
        string modelCid
    );
    event Reclaimed(uint256 indexed proposalId, address indexed consumer, uint256 amount);
    event Credited(address indexed account, uint256 amount, uint256 indexed proposalId);
    event Withdrawn(address indexed account, uint256 amount);
    event Claimed(uint256 indexed proposalId, uint256 index, address indexed account, uint256 amount);
    event ParametersChanged(Parameters parameters);

    error TrainingMarketNotConsumer(address account);
    error TrainingMarketNotGovernance(address account);
    error TrainingMarketInvalidTerms(string reason);
    error TrainingMarketInvalidParameters();
    error TrainingMarketAssetNotSelectable(uint256 assetId);
    error TrainingMarketNodeNotAllowed(uint256 assetId, address node);
    error TrainingMarketInactiveNode(address node);
    error TrainingMarketUnknownProposal(uint256 proposalId);
    error TrainingMarketWrongStatus(uint256 proposalId, Status status);
    error TrainingMarketVotingClosed(uint256 proposalId);
    error TrainingMarketVotingOpen(uint256 proposalId);
    error TrainingMarketTallyMismatch(uint256 proposalId);
    error TrainingMarketTallyPriceChanged(uint256 proposalId, uint256 price);
    error TrainingMarketNotMedian(uint256 clearingPrice, uint64 participating, uint64 atOrBelow, uint64 below);
    error TrainingMarketDeadlinePassed(uint256 proposalId);
    error TrainingMarketDeadlineNotPassed(uint256 proposalId);
    error TrainingMarketBadQuote(uint256 proposalId);
    error TrainingMarketQuoteExpired(uint256 proposalId);
    error TrainingMarketBadSigner(address signer);
    error TrainingMarketNotNode(address account);
    error TrainingMarketInvalidProof(uint256 proposalId, uint256 index, address account);
    error TrainingMarketAlreadyClaimed(uint256 proposalId, uint256 index);
    error TrainingMarketOverClaim(uint256 proposalId, uint256 amount);
    error TrainingMarketNothingToWithdraw(address account);

    constructor(
        StakeholderRegistry stakeholderRegistry,
        AssetRegistry assetRegistry,
        IERC20 token,
        Parameters memory initialParameters
    ) EIP712("ViSDM TrainingMarket", "1") {
        stakeholders = stakeholderRegistry;
        assets = assetRegistry;
        paymentToken = token;
        _setParameters(initialParameters);
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

    // ------------------------------------------------------------------ proposals and votes

    /**
     * @notice Proposes to train on a selection of samples, escrowing the offered price.
     * @dev The caller must be a registered consumer that approved `terms.offer` to this market.
     *      Gas grows with the number of selected assets (each is checked), not with samples.
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
        if (terms.wtpBps > _BPS) revert TrainingMarketInvalidTerms("wtpBps above 10000");
        if (
            terms.votingDeadline < block.timestamp + _params.minVotingPeriod
                || terms.votingDeadline > block.timestamp + _params.maxVotingPeriod
        ) revert TrainingMarketInvalidTerms("voting deadline outside the allowed window");
        if (terms.selectionRoot == bytes32(0) || terms.modelSpecHash == bytes32(0)) {
            revert TrainingMarketInvalidTerms("selection root and model spec hash are required");
        }
        (bool active, uint8 region,) = stakeholders.nodeStatus(terms.node);
        if (!active) revert TrainingMarketInactiveNode(terms.node);
        uint256 regionBit = uint256(1) << region;

        bytes32 chain;
        uint256 weight;
        uint256 previousId;
        for (uint256 i = 0; i < n; ++i) {
            uint256 assetId = terms.assetIds[i];
            uint32 count = terms.sampleCounts[i];
            if (assetId <= previousId) revert TrainingMarketInvalidTerms("assetIds must be strictly increasing");
            previousId = assetId;
            (, AssetRegistry.Status status, uint32 accepted, uint256 mask) = assets.assetTerms(assetId);
            if (status != AssetRegistry.Status.Active || count == 0 || count > accepted) {
                revert TrainingMarketAssetNotSelectable(assetId);
            }
            if (mask & regionBit == 0) revert TrainingMarketNodeNotAllowed(assetId, terms.node);
            chain = _link(chain, assetId, count);
            weight += count;
        }

        // Cannot overflow: one increment per proposal.
        unchecked {
            proposalId = ++_proposalCount;
        }
        Proposal storage p = _proposals[proposalId];
        p.consumer = msg.sender;
        p.votingDeadline = terms.votingDeadline;
        p.wtpBps = terms.wtpBps;
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
        emit ProposalCreated(
            proposalId,
            msg.sender,
            terms.node,
            terms.offer,
            terms.wtpBps,
            terms.votingDeadline,
            uint64(weight),
            chain,
            terms.selectionRoot,
            terms.modelSpecHash,
            terms.validationSetHash,
            terms.proposalCid
        );
        paymentToken.safeTransferFrom(msg.sender, address(this), terms.offer);
    }

    /**
     * @notice Casts or replaces the caller's ask on a proposal, until its voting deadline.
     * @param proposalId the proposal
     * @param ask minimum acceptable price: 0 accepts any price, type(uint256).max rejects
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

    // ------------------------------------------------------------------ tally

    /**
     * @notice Tallies the next batch of a proposal's assets, after its voting deadline.
     * @dev The batches, in order, must repeat exactly the proposal's (assetId, sampleCount) list;
     *      every batch of one caller uses the same `clearingPrice`. The last batch checks the list
     *      against the commitment, the quorum and that `clearingPrice` is the weighted lower median
     *      of the participating asks, and records the outcome. An asset's vote is its owner's own
     *      ask, else the first ask along the owner's delegation chain as of the voting deadline,
     *      following at most MAX_DELEGATION_DEPTH hops; otherwise the asset abstains.
     * @param proposalId the proposal
     * @param clearingPrice the claimed weighted lower median of the participating asks
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
        if (n != sampleCounts.length) revert TrainingMarketTallyMismatch(proposalId);

        TallyProgress memory t = _tallies[proposalId][msg.sender];
        if (t.cursor == 0) t.price = clearingPrice;
        else if (t.price != clearingPrice) revert TrainingMarketTallyPriceChanged(proposalId, t.price);
        if (t.cursor + n > p.assetCount) revert TrainingMarketTallyMismatch(proposalId);

        uint48 asOf = p.votingDeadline;
        for (uint256 i = 0; i < n; ++i) {
            uint32 count = sampleCounts[i];
            t.runningHash = _link(t.runningHash, assetIds[i], count);
            (address voter,) = assets.ownerAndStatus(assetIds[i]);
            uint256 stored = _votes[proposalId][voter];
            for (uint256 hop = 0; stored == 0 && hop < MAX_DELEGATION_DEPTH; ++hop) {
                voter = _delegateAt(voter, asOf);
                if (voter == address(0)) break;
                stored = _votes[proposalId][voter];
            }
            if (stored == 0) continue; // abstains
            uint256 ask = stored == _REJECT ? _REJECT : stored - 1;
            t.participating += count;
            if (ask <= clearingPrice) t.atOrBelow += count;
            if (ask < clearingPrice) t.below += count;
        }
        t.cursor += uint64(n);

        if (t.cursor < p.assetCount) {
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

    function _finishTally(uint256 proposalId, Proposal storage p, TallyProgress memory t) private {
        Status outcome;
        uint256 price = t.price;
        bool quorum = t.participating > 0 && uint256(t.participating) * _BPS >= uint256(_params.quorumBps) * p.totalWeight;
        if (!quorum) {
            outcome = Status.Failed;
            price = 0;
        } else {
            // Lower weighted median: at least half the weight asks <= p*, less than half asks < p*.
            if (uint256(t.atOrBelow) * 2 < t.participating || uint256(t.below) * 2 >= t.participating) {
                revert TrainingMarketNotMedian(price, t.participating, t.atOrBelow, t.below);
            }
            if (price == _REJECT) {
                outcome = Status.Rejected;
            } else if (price <= p.offer) {
                outcome = Status.Approved;
                p.deadline = uint48(block.timestamp + _params.startPeriod);
            } else {
                outcome = Status.Countered;
                p.deadline = uint48(block.timestamp + _params.replyPeriod);
            }
        }
        p.status = outcome;
        p.clearingPrice = price;
        emit ProposalTallied(proposalId, outcome, price, t.participating, p.totalWeight, msg.sender);
        if (outcome == Status.Failed || outcome == Status.Rejected) {
            uint256 refund = p.price;
            p.price = 0;
            _credit(p.consumer, refund, proposalId);
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
     * @param quote the node's quote for this proposal
     * @param signature the node signer's EIP-712 signature of `quote`
     */
    function startTraining(uint256 proposalId, Quote calldata quote, bytes calldata signature) external nonReentrant {
        Proposal storage p = _ownProposal(proposalId);
        if (p.status != Status.Approved) revert TrainingMarketWrongStatus(proposalId, p.status);
        if (block.timestamp > p.deadline) revert TrainingMarketDeadlinePassed(proposalId);
        if (quote.proposalId != proposalId || quote.maxDuration == 0) revert TrainingMarketBadQuote(proposalId);
        if (block.timestamp > quote.expiry) revert TrainingMarketQuoteExpired(proposalId);
        (bool active,, address signer) = stakeholders.nodeStatus(p.node);
        if (!active) revert TrainingMarketInactiveNode(p.node);
        address recovered = ECDSA.recover(_hashTypedDataV4(_quoteHash(quote)), signature);
        if (recovered != signer) revert TrainingMarketBadSigner(recovered);

        uint48 deadline = uint48(block.timestamp + quote.maxDuration);
        p.trainingCost = quote.trainingCost;
        p.status = Status.Training;
        p.deadline = deadline;
        emit TrainingStarted(proposalId, quote.trainingCost, deadline);
        paymentToken.safeTransferFrom(msg.sender, address(this), quote.trainingCost);
    }

    /**
     * @notice The node posts the training result. WTP met: the training cost is credited to the
     *         node and the data price becomes claimable under `payoutRoot`. WTP missed: the data
     *         price is credited back to the consumer and the training cost to the node.
     * @param proposalId a proposal in Training whose node is the caller, before its deadline
     * @param accuracyBps accuracy on the consumer's validation set, basis points
     * @param modelHash hash of the encrypted model
     * @param payoutRoot Merkle root over (account, amount) payouts summing to the price
     * @param scoresHash hash of the published per-sample scores
     * @param modelCid CID of the encrypted model (only emitted)
     */
    function submitResult(
        uint256 proposalId,
        uint16 accuracyBps,
        bytes32 modelHash,
        bytes32 payoutRoot,
        bytes32 scoresHash,
        string calldata modelCid
    ) external nonReentrant {
        Proposal storage p = _existing(proposalId);
        if (msg.sender != p.node) revert TrainingMarketNotNode(msg.sender);
        if (p.status != Status.Training) revert TrainingMarketWrongStatus(proposalId, p.status);
        (bool active,,) = stakeholders.nodeStatus(msg.sender);
        if (!active) revert TrainingMarketInactiveNode(msg.sender); // suspended: consumer reclaims
        if (block.timestamp > p.deadline) revert TrainingMarketDeadlinePassed(proposalId);
        if (accuracyBps > _BPS) revert TrainingMarketInvalidTerms("accuracy above 10000 bps");
        bool met = accuracyBps >= p.wtpBps;
        if (met && payoutRoot == bytes32(0)) revert TrainingMarketInvalidTerms("payout root required");
        p.accuracyBps = accuracyBps;
        p.modelHash = modelHash;
        emit ResultSubmitted(proposalId, accuracyBps, met, modelHash, payoutRoot, scoresHash, modelCid);
        uint256 cost = p.trainingCost;
        p.trainingCost = 0;
        _credit(p.node, cost, proposalId);
        if (met) {
            p.status = Status.Completed;
            p.payoutRoot = payoutRoot;
            p.unclaimed = p.price;
        } else {
            p.status = Status.WtpMissed;
            uint256 refund = p.price;
            p.price = 0;
            _credit(p.consumer, refund, proposalId);
        }
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

    // ------------------------------------------------------------------ payouts

    /**
     * @notice Pays `amount` to `account` from a Completed proposal, proven against its payout
     *         root. Leaves are OpenZeppelin StandardMerkleTree leaves of
     *         (uint256 index, address account, uint256 amount); the index only serves the
     *         claimed-bitmap, as in Uniswap's MerkleDistributor. Anyone may submit a claim; the
     *         tokens always go to `account`. The sum paid can never exceed the proposal's price.
     */
    function claim(uint256 proposalId, uint256 index, address account, uint256 amount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        _claim(proposalId, index, account, amount, proof);
    }

    /// @notice Several claims in one transaction (any proposals, any accounts).
    function claimMany(ClaimRequest[] calldata requests) external nonReentrant {
        for (uint256 i = 0; i < requests.length; ++i) {
            ClaimRequest calldata r = requests[i];
            _claim(r.proposalId, r.index, r.account, r.amount, r.proof);
        }
    }

    /// @notice Whether payout leaf `index` of `proposalId` has been claimed.
    function isClaimed(uint256 proposalId, uint256 index) external view returns (bool) {
        return _claimedBits[proposalId][index >> 8] & (uint256(1) << (index & 0xff)) != 0;
    }

    /// @notice Withdraws the caller's credited balance (refunds, training fees).
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

    // ------------------------------------------------------------------ internals

    function _claim(uint256 proposalId, uint256 index, address account, uint256 amount, bytes32[] calldata proof)
        private
    {
        // Only a Completed proposal has a payout root: one read serves as the status check.
        Proposal storage p = _proposals[proposalId];
        bytes32 root = p.payoutRoot;
        if (root == bytes32(0)) {
            _existing(proposalId); // an unknown proposal gets its own error
            revert TrainingMarketWrongStatus(proposalId, p.status);
        }
        uint256 word = index >> 8;
        uint256 bit = uint256(1) << (index & 0xff);
        uint256 bits = _claimedBits[proposalId][word];
        if (bits & bit != 0) revert TrainingMarketAlreadyClaimed(proposalId, index);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(index, account, amount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) {
            revert TrainingMarketInvalidProof(proposalId, index, account);
        }
        uint256 unclaimed = p.unclaimed;
        if (amount > unclaimed) revert TrainingMarketOverClaim(proposalId, amount);
        // Cannot underflow: amount <= unclaimed was just checked.
        unchecked {
            p.unclaimed = unclaimed - amount;
        }
        _claimedBits[proposalId][word] = bits | bit;
        emit Claimed(proposalId, index, account, amount);
        paymentToken.safeTransfer(account, amount);
    }

    function _credit(address account, uint256 amount, uint256 proposalId) private {
        if (amount == 0) return;
        _credits[account] += amount;
        emit Credited(account, amount, proposalId);
    }

    function _quoteHash(Quote calldata quote) private pure returns (bytes32) {
        return keccak256(
            abi.encode(_QUOTE_TYPEHASH, quote.proposalId, quote.trainingCost, quote.maxDuration, quote.expiry)
        );
    }

    function _link(bytes32 chain, uint256 assetId, uint32 count) private pure returns (bytes32) {
        return keccak256(abi.encode(chain, assetId, count));
    }

    function _setParameters(Parameters memory params) private {
        if (
            params.quorumBps > _BPS || params.minVotingPeriod > params.maxVotingPeriod || params.replyPeriod == 0
                || params.startPeriod == 0
        ) revert TrainingMarketInvalidParameters();
        _params = params;
        emit ParametersChanged(params);
    }

    function _existing(uint256 proposalId) private view returns (Proposal storage p) {
        p = _proposals[proposalId];
        if (p.consumer == address(0)) revert TrainingMarketUnknownProposal(proposalId);
    }

    function _ownProposal(uint256 proposalId) private view returns (Proposal storage p) {
        p = _existing(proposalId);
        if (p.consumer != msg.sender) revert TrainingMarketNotConsumer(msg.sender);
    }
}
