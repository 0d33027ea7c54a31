// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {AssetRegistry} from "../AssetRegistry.sol";
import {StakeholderRegistry} from "../StakeholderRegistry.sol";

/// @notice What the pool needs of the TrainingMarket: the fees it was credited, and pulling them.
interface IScoringFeeSource {
    function creditOf(address account) external view returns (uint256);
    function withdraw() external;
}

/**
 * @title ScoringPool
 * @notice Pays admitted compute nodes to score samples that have few or no scores yet (paper
 *         3.5 (iii)): a node claims a batch of assets, values their samples in its sandbox
 *         against the public reference set governance chose, publishes the scores and is paid
 *         per scored sample. Funded by the market's scoring fee on completed proposals, and by
 *         anyone through `fund`.
 *
 *         claimBatch → Claimed → (publishScores before the deadline) → Published, node credited
 *         Claimed → (releaseBatch by its node, or the deadline passes) → Released | Lapsed
 *
 * @dev Only what a node is paid for lives here: per asset the scoring rounds paid so far and a
 *      lock while a batch holds it; per batch its node, deadline, sample count, the hash of its
 *      asset list and the reference it is scored against. Scores stay off chain: their document's
 *      keccak256 and the hash of the job's secret seed are committed, so that another node can
 *      re-execute a batch (training, evaluation and valuation are deterministic given the seed)
 *      once challenges exist. A batch's pay is reserved when it is claimed, so a published batch
 *      is always paid; a lapsed or released batch frees its reserve. Payments are pulled
 *      (`withdraw`); the only external calls are to the trusted registries, the market and the
 *      payment token.
 */
contract ScoringPool is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    enum BatchStatus {
        None,
        Claimed,
        Published,
        Released,
        Lapsed
    }

    /// @notice The pool's terms, set by governance.
    struct Terms {
        uint96 ratePerSample; // paid per scored sample, in the payment token's smallest unit
        uint32 maxBatchSamples; // most accepted samples one batch may hold
        uint32 claimPeriod; // seconds a node has to publish a batch's scores
        uint16 maxRounds; // scoring rounds the pool pays per asset
    }

    // Field order packs the small fields into three words.
    struct Batch {
        address node;
        uint48 deadline;
        BatchStatus status;
        uint32 samples; // accepted samples of the batch's assets when it was claimed
        uint32 scored; // samples the published scores value
        uint32 assetCount;
        uint128 reserved; // samples * rate, held for the batch until it ends
        bytes32 assetsHash; // keccak256(abi.encode(assetIds))
        bytes32 referenceHash; // the reference document the batch is scored against
    }

    /// @notice An asset as the pool sees it: rounds paid, and the batch that last held it.
    struct AssetScoring {
        uint16 rounds;
        uint48 lockedUntil; // a Claimed batch holds the asset until then
        uint64 batchId;
    }

    /// @notice What a node commits with its scores.
    struct ScoreResult {
        uint32 scored; // samples valued (at most the batch's samples)
        bytes32 scoresHash; // keccak256 of the scores document
        bytes32 seedHash; // keccak256 of the job's secret 256-bit seed
        string scoresCid; // the scores document in storage (only emitted)
    }

    StakeholderRegistry public immutable stakeholders;
    AssetRegistry public immutable assets;
    IScoringFeeSource public immutable market;
    IERC20 public immutable paymentToken;

    Terms private _terms;
    bytes32 private _referenceHash;
    uint256 private _batchCount;
    uint256 private _reserved; // pay held for Claimed batches
    uint256 private _owed; // pay credited to nodes and not withdrawn yet
    mapping(uint256 batchId => Batch) private _batches;
    mapping(uint256 assetId => AssetScoring) private _assets;
    mapping(address node => uint256 batchId) private _openBatch;
    mapping(address account => uint256) private _credits;

    event TermsChanged(Terms terms);
    event ReferenceChanged(bytes32 referenceHash, string referenceCid);
    event Funded(address indexed from, uint256 amount);
    event FeesCollected(uint256 amount);
    event BatchClaimed(
        uint256 indexed batchId,
        address indexed node,
        uint256[] assetIds,
        uint32 samples,
        uint48 deadline,
        uint256 reserved,
        bytes32 referenceHash
    );
    event BatchEnded(uint256 indexed batchId, address indexed node, BatchStatus status);
    event ScoresPublished(
        uint256 indexed batchId,
        address indexed node,
        uint32 scored,
        uint256 paid,
        bytes32 scoresHash,
        bytes32 seedHash,
        bytes32 referenceHash,
        string scoresCid
    );
    event Withdrawn(address indexed account, uint256 amount);

    error ScoringPoolNotGovernance(address account);
    error ScoringPoolInvalidTerms(string reason);
    error ScoringPoolNoReference();
    error ScoringPoolNotNode(address account);
    error ScoringPoolEmptyBatch();
    error ScoringPoolAssetsNotIncreasing(uint256 assetId);
    error ScoringPoolAssetNotScorable(uint256 assetId, address node);
    error ScoringPoolNoKey(uint256 assetId, address node);
    error ScoringPoolOwnAsset(uint256 assetId, address owner);
    error ScoringPoolAssetLocked(uint256 assetId, uint256 batchId, uint48 until);
    error ScoringPoolLapsed(uint256 assetId, uint256 batchId, uint48 until);
    error ScoringPoolRoundsDone(uint256 assetId, uint16 rounds);
    error ScoringPoolBatchTooLarge(uint256 samples, uint32 maxSamples);
    error ScoringPoolInsufficientFunds(uint256 needed, uint256 available);
    error ScoringPoolOpenBatch(address node, uint256 batchId);
    error ScoringPoolUnknownBatch(uint256 batchId);
    error ScoringPoolNotBatchNode(uint256 batchId, address account);
    error ScoringPoolWrongStatus(uint256 batchId, BatchStatus status);
    error ScoringPoolDeadlinePassed(uint256 batchId, uint48 deadline);
    error ScoringPoolDeadlineNotPassed(uint256 batchId, uint48 deadline);
    error ScoringPoolAssetsMismatch(uint256 batchId);
    error ScoringPoolTooManyScored(uint256 batchId, uint32 scored, uint32 samples);
    error ScoringPoolInvalidResult(string reason);
    error ScoringPoolNothingToWithdraw(address account);

    constructor(StakeholderRegistry stakeholderRegistry, AssetRegistry assetRegistry, IScoringFeeSource feeSource, IERC20 token) {
        stakeholders = stakeholderRegistry;
        assets = assetRegistry;
        market = feeSource;
        paymentToken = token;
    }

    // ------------------------------------------------------------------ governance

    /// @notice Sets the pool's terms; only GOVERNANCE_ROLE of the StakeholderRegistry.
    function setTerms(Terms calldata newTerms) external {
        _onlyGovernance();
        if (newTerms.ratePerSample == 0 || newTerms.maxBatchSamples == 0 || newTerms.maxRounds == 0) {
            revert ScoringPoolInvalidTerms("rate, batch size and rounds must be positive");
        }
        if (newTerms.claimPeriod < 60 || newTerms.claimPeriod > 30 days) {
            revert ScoringPoolInvalidTerms("claim period outside 60 s .. 30 days");
        }
        _terms = newTerms;
        emit TermsChanged(newTerms);
    }

    /**
     * @notice Sets the public reference batches are scored against from now on; only
     *         GOVERNANCE_ROLE. Batches already claimed keep the reference they were claimed with.
     * @param newReferenceHash keccak256 of the reference document (validation set, anchors,
     *        model spec)
     * @param referenceCid the reference document in storage (only emitted)
     */
    function setReference(bytes32 newReferenceHash, string calldata referenceCid) external {
        _onlyGovernance();
        if (newReferenceHash == bytes32(0)) revert ScoringPoolNoReference();
        _referenceHash = newReferenceHash;
        emit ReferenceChanged(newReferenceHash, referenceCid);
    }

    // ------------------------------------------------------------------ money in

    /// @notice Pays `amount` of the payment token into the pool (approve it first).
    function fund(uint256 amount) external nonReentrant {
        if (amount == 0) revert ScoringPoolInvalidTerms("fund a positive amount");
        emit Funded(msg.sender, amount);
        paymentToken.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Pulls the scoring fees the market credited to the pool; anyone may call.
    function collectFees() external nonReentrant returns (uint256 amount) {
        return _collect();
    }

    // ------------------------------------------------------------------ batches

    /**
     * @notice Claims a batch of assets to score; the caller must be an active compute node
     *         that holds a wrapped data key for each asset, in a region each allows, owning
     *         none. Each asset must be Active, not held by another running batch and scored
     *         fewer than `maxRounds` times; their accepted samples must fit `maxBatchSamples`
     *         and the pool must hold their pay, which is reserved now. A node has one open
     *         batch at a time.
     * @param assetIds the assets, strictly increasing
     * @param keyNodes for each asset, its key holders as registered (its AssetRegistered event)
     * @return batchId the new batch (ids start at 1)
     */
    function claimBatch(uint256[] calldata assetIds, address[][] calldata keyNodes)
        external
        nonReentrant
        returns (uint256 batchId)
    {
        Terms memory t = _terms;
        bytes32 ref = _referenceHash;
        if (ref == bytes32(0) || t.ratePerSample == 0) revert ScoringPoolNoReference();
        (bool active, uint8 region, address signer) = stakeholders.nodeStatus(msg.sender);
        if (!active) revert ScoringPoolNotNode(msg.sender);
        uint256 n = assetIds.length;
        if (n == 0 || n != keyNodes.length) revert ScoringPoolEmptyBatch();
        _endOpenBatch(msg.sender);

        // Cannot overflow: one increment per batch.
        unchecked {
            batchId = ++_batchCount;
        }
        uint48 deadline = uint48(block.timestamp + t.claimPeriod);
        uint256 samples;
        uint256 previous;
        for (uint256 i = 0; i < n; ++i) {
            uint256 assetId = assetIds[i];
            if (assetId <= previous) revert ScoringPoolAssetsNotIncreasing(assetId);
            previous = assetId;
            samples += _checkAsset(assetId, keyNodes[i], region, signer, t.claimPeriod);
            AssetScoring storage s = _assets[assetId];
            s.lockedUntil = deadline;
            s.batchId = uint64(batchId);
        }
        if (samples == 0) revert ScoringPoolEmptyBatch();
        if (samples > t.maxBatchSamples) revert ScoringPoolBatchTooLarge(samples, t.maxBatchSamples);
        uint256 reserve = samples * t.ratePerSample;
        uint256 free = _available();
        if (reserve > free && market.creditOf(address(this)) != 0) {
            _collect();
            free = _available();
        }
        if (reserve > free) revert ScoringPoolInsufficientFunds(reserve, free);

        Batch storage b = _batches[batchId];
        b.node = msg.sender;
        b.deadline = deadline;
        b.status = BatchStatus.Claimed;
        b.samples = uint32(samples);
        b.assetCount = uint32(n);
        b.reserved = uint128(reserve);
        b.assetsHash = keccak256(abi.encode(assetIds));
        b.referenceHash = ref;
        _reserved += reserve;
        _openBatch[msg.sender] = batchId;
        emit BatchClaimed(batchId, msg.sender, assetIds, uint32(samples), deadline, reserve, ref);
    }

    /**
     * @notice Publishes a batch's scores and credits its node `scored * ratePerSample`.
     * @param batchId a Claimed batch of the caller, before its deadline
     * @param assetIds the batch's assets, as claimed
     * @param result the committed scores; see ScoreResult
     */
    function publishScores(uint256 batchId, uint256[] calldata assetIds, ScoreResult calldata result) external {
        Batch storage b = _ownBatch(batchId);
        if (block.timestamp > b.deadline) revert ScoringPoolDeadlinePassed(batchId, b.deadline);
        (bool active,,) = stakeholders.nodeStatus(msg.sender);
        if (!active) revert ScoringPoolNotNode(msg.sender); // suspended: the batch lapses
        if (keccak256(abi.encode(assetIds)) != b.assetsHash) revert ScoringPoolAssetsMismatch(batchId);
        if (result.scored == 0 || result.scoresHash == bytes32(0) || result.seedHash == bytes32(0)) {
            revert ScoringPoolInvalidResult("scored, scores hash and seed hash must be non-zero");
        }
        if (result.scored > b.samples) revert ScoringPoolTooManyScored(batchId, result.scored, b.samples);
        // Cannot overflow: scored <= samples, and samples * rate fitted the uint128 reserve.
        uint256 paid;
        unchecked {
            paid = uint256(result.scored) * _terms.ratePerSample;
        }
        if (paid > b.reserved) paid = b.reserved; // the rate rose since the claim: the reserve caps it
        _reserved -= b.reserved;
        b.status = BatchStatus.Published;
        b.scored = result.scored;
        delete _openBatch[msg.sender];
        for (uint256 i = 0; i < assetIds.length; ++i) {
            AssetScoring storage s = _assets[assetIds[i]];
            // Cannot overflow: claimBatch refused an asset with maxRounds (uint16) rounds.
            unchecked {
                s.rounds += 1;
            }
            s.lockedUntil = 0;
        }
        _owed += paid;
        _credits[msg.sender] += paid;
        emit ScoresPublished(
            batchId, msg.sender, result.scored, paid, result.scoresHash, result.seedHash, b.referenceHash, result.scoresCid
        );
    }

    /**
     * @notice The node gives up a batch it cannot score: its reserve and its assets are free
     *         at once (a batch left to lapse keeps its assets from its node for a while).
     * @param batchId a Claimed batch of the caller
     */
    function releaseBatch(uint256 batchId, uint256[] calldata assetIds) external {
        Batch storage b = _ownBatch(batchId);
        if (keccak256(abi.encode(assetIds)) != b.assetsHash) revert ScoringPoolAssetsMismatch(batchId);
        for (uint256 i = 0; i < assetIds.length; ++i) {
            _assets[assetIds[i]].lockedUntil = 0;
        }
        _end(batchId, b, BatchStatus.Released);
    }

    /**
     * @notice Ends a batch whose deadline passed without scores, freeing its reserve; anyone
     *         may call (claiming its assets again does it too).
     * @param batchId a Claimed batch past its deadline
     */
    function lapseBatch(uint256 batchId) external {
        Batch storage b = _existing(batchId);
        if (b.status != BatchStatus.Claimed) revert ScoringPoolWrongStatus(batchId, b.status);
        if (block.timestamp <= b.deadline) revert ScoringPoolDeadlineNotPassed(batchId, b.deadline);
        _end(batchId, b, BatchStatus.Lapsed);
    }

    /// @notice Withdraws the caller's credited pay.
    function withdraw() external nonReentrant {
        uint256 amount = _credits[msg.sender];
        if (amount == 0) revert ScoringPoolNothingToWithdraw(msg.sender);
        _credits[msg.sender] = 0;
        _owed -= amount;
        emit Withdrawn(msg.sender, amount);
        paymentToken.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice The pool's terms.
    function terms() external view returns (Terms memory) {
        return _terms;
    }

    /// @notice The reference document's hash new batches are scored against (0: none yet).
    function referenceHash() external view returns (bytes32) {
        return _referenceHash;
    }

    /// @notice The record of `batchId` (all zero when unknown).
    function batch(uint256 batchId) external view returns (Batch memory) {
        return _batches[batchId];
    }

    /// @notice Number of batches ever claimed (the highest id).
    function batchCount() external view returns (uint256) {
        return _batchCount;
    }

    /// @notice Scoring rounds paid for `assetId`, and the batch that last held it.
    function assetScoring(uint256 assetId) external view returns (AssetScoring memory) {
        return _assets[assetId];
    }

    /// @notice The batch `node` holds open (0: none).
    function openBatchOf(address node) external view returns (uint256) {
        return _openBatch[node];
    }

    /// @notice Balances: free to reserve, reserved for running batches, owed to nodes, and the
    ///         fees the market holds for the pool.
    function balances() external view returns (uint256 available, uint256 reserved, uint256 owed, uint256 uncollected) {
        return (_available(), _reserved, _owed, market.creditOf(address(this)));
    }

    /// @notice The pay `account` can withdraw.
    function creditOf(address account) external view returns (uint256) {
        return _credits[account];
    }

    // ------------------------------------------------------------------ internals

    function _onlyGovernance() private view {
        if (!stakeholders.hasRole(stakeholders.GOVERNANCE_ROLE(), msg.sender)) {
            revert ScoringPoolNotGovernance(msg.sender);
        }
    }

    function _collect() private returns (uint256 amount) {
        amount = market.creditOf(address(this));
        if (amount == 0) return 0;
        emit FeesCollected(amount);
        market.withdraw();
    }

    /// @dev Tokens held that no batch and no node has a claim on (donations count too).
    function _available() private view returns (uint256) {
        uint256 held = paymentToken.balanceOf(address(this));
        uint256 taken = _reserved + _owed;
        return held > taken ? held - taken : 0;
    }

    /// @dev Checks one asset of a new batch; returns its accepted samples.
    function _checkAsset(
        uint256 assetId,
        address[] calldata keyNodes,
        uint8 region,
        address signer,
        uint32 claimPeriod
    ) private returns (uint256) {
        AssetRegistry.Asset memory a = assets.asset(assetId);
        if (a.status != AssetRegistry.Status.Active || a.regionMask & (uint256(1) << region) == 0) {
            revert ScoringPoolAssetNotScorable(assetId, msg.sender);
        }
        if (a.owner == msg.sender || a.owner == signer) revert ScoringPoolOwnAsset(assetId, a.owner);
        if (keccak256(abi.encodePacked(keyNodes)) != a.keyNodesHash || !_contains(keyNodes, msg.sender)) {
            revert ScoringPoolNoKey(assetId, msg.sender);
        }
        AssetScoring storage s = _assets[assetId];
        if (s.rounds >= _terms.maxRounds) revert ScoringPoolRoundsDone(assetId, s.rounds);
        uint256 previous = s.batchId;
        if (previous != 0) {
            Batch storage p = _batches[previous];
            if (p.status == BatchStatus.Claimed) {
                if (block.timestamp <= p.deadline) revert ScoringPoolAssetLocked(assetId, previous, p.deadline);
                _end(previous, p, BatchStatus.Lapsed);
            }
            // a node that let the asset lapse waits one more claim period, so others get it first
            if (p.status == BatchStatus.Lapsed && p.node == msg.sender) {
                uint48 until = p.deadline + claimPeriod;
                if (block.timestamp <= until) revert ScoringPoolLapsed(assetId, previous, until);
            }
        }
        return a.acceptedCount;
    }

    /// @dev Ends the caller's open batch if its deadline passed; refuses a running one.
    function _endOpenBatch(address node) private {
        uint256 open = _openBatch[node];
        if (open == 0) return;
        Batch storage b = _batches[open];
        if (b.status == BatchStatus.Claimed) {
            if (block.timestamp <= b.deadline) revert ScoringPoolOpenBatch(node, open);
            _end(open, b, BatchStatus.Lapsed);
        }
        delete _openBatch[node];
    }

    function _end(uint256 batchId, Batch storage b, BatchStatus status) private {
        _reserved -= b.reserved;
        b.status = status;
        if (_openBatch[b.node] == batchId) delete _openBatch[b.node];
        emit BatchEnded(batchId, b.node, status);
    }

    function _existing(uint256 batchId) private view returns (Batch storage b) {
        b = _batches[batchId];
        if (b.node == address(0)) revert ScoringPoolUnknownBatch(batchId);
    }

    function _ownBatch(uint256 batchId) private view returns (Batch storage b) {
        b = _existing(batchId);
        if (b.node != msg.sender) revert ScoringPoolNotBatchNode(batchId, msg.sender);
        if (b.status != BatchStatus.Claimed) revert ScoringPoolWrongStatus(batchId, b.status);
    }

    function _contains(address[] calldata list, address item) private pure returns (bool) {
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] == item) return true;
        }
        return false;
    }
}
