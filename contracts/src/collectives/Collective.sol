// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

import {AssetRegistry} from "../AssetRegistry.sol";
import {TrainingMarket} from "../TrainingMarket.sol";
import {MarketBase} from "../market/MarketBase.sol";
import {WeightedMedian} from "./WeightedMedian.sol";

/**
 * @title Collective
 * @notice A data owners' collective (paper 4.1 (2)): providers join and leave at will, vote a
 *         standing price floor per sample, and the collective votes on every proposal from that
 *         policy with its members' pooled weight, so pricing no longer waits for each owner.
 * @dev Voting power comes from the market's own delegation registry: a member delegates to this
 *      contract's address, and the market's tally resolves each asset's vote through that
 *      delegation as of the proposal's voting deadline. The market therefore needs no change,
 *      a member's own vote (a REJECT above all) always overrides the collective for its own
 *      assets, and leaving before a deadline (undelegating) takes a member's assets out of the
 *      collective's vote on that proposal.
 *
 *      Policy: each member votes a floor price per sample; its weight is the attested sample
 *      count of the Active assets it lists (the most the market could ever weigh its vote).
 *      The policy floor is the weighted lower median of the counted votes, kept incrementally
 *      in a sorted list of distinct floors, so casting is O(1). A vote or a weight increase is
 *      counted only `policyDelay` after it is made (anyone settles it then): a provider cannot
 *      join, swing the median and cast in one go. Decreases (an asset withdrawn, a member
 *      leaving) count at once.
 *
 *      Casting: anyone may make the collective vote on a proposal in voting. With floor f and
 *      the proposal's selected weight W, the collective accepts (ask 0) when offer >= f * W and
 *      otherwise asks f * W, the price the market's median compares. The last cast before the
 *      deadline stands; casting again is allowed only when the policy's answer changed.
 *
 *      Steward fee: capped at MAX_FEE_BPS, changed only with `policyDelay` notice, applied as it
 *      stood at each proposal's voting deadline. The market pays asset owners directly, so the
 *      fee cannot be withheld from a payout; instead members keep a deposit here, and anyone
 *      may charge the fee against it by proving a payout leaf `(position, assetId, amount)`
 *      against the proposal's payout root, for an asset whose owner was a member, delegated to
 *      the collective at the deadline, did not vote itself, and that the collective voted for.
 *      A fee the deposit cannot cover becomes arrears and suspends the member from the policy
 *      until paid. A leaving member's deposit stays chargeable for the rounds it was in until
 *      those rounds could have produced results (EXIT_CHARGE_WINDOW after the market's reply,
 *      start and training periods), then it can be withdrawn.
 */
contract Collective is ReentrancyGuardTransient {
    using Checkpoints for Checkpoints.Trace208;
    using SafeERC20 for IERC20;
    using WeightedMedian for WeightedMedian.List;

    /// @notice The highest steward fee, in basis points of a payout (10 %).
    uint16 public constant MAX_FEE_BPS = 1000;
    /// @notice The longest notice a collective may set for policy and fee changes.
    uint32 public constant MAX_POLICY_DELAY = 30 days;
    /// @notice Most assets one member may list for its weight (bounds `refresh`).
    uint256 public constant MAX_MEMBER_ASSETS = 256;
    /// @notice Highest floor per sample (floors are stored shifted by one in 96 bits).
    uint256 public constant MAX_FLOOR = type(uint96).max - 1;
    /// @notice Time after the market's result deadline in which a leaver's fees may be charged.
    uint32 public constant EXIT_CHARGE_WINDOW = 7 days;

    uint256 private constant _BPS = 10_000;

    struct Member {
        uint64 weight; // counted in the policy now, at floorKey
        uint96 floorKey; // counted floor + 1 (0: counts nowhere)
        uint48 joinedAt; // of the latest membership (0: never joined)
        uint48 leftAt; // 0 while a member
        uint64 pendingWeight; // waiting for policyDelay
        uint96 pendingFloorKey;
        uint48 pendingSince; // 0: nothing waits
        uint48 unlockAt; // a former member's deposit can be withdrawn from then on
        bytes32 assetsHash; // keccak256 of the listed asset ids
        uint128 deposit;
        uint128 arrears;
    }

    /// @notice The market the collective votes in (and whose delegations give it its weight).
    TrainingMarket public immutable market;
    AssetRegistry public immutable assets;
    IERC20 public immutable paymentToken;
    /// @notice Seconds before a policy vote, a weight increase or a fee change counts.
    uint32 public immutable policyDelay;

    /// @notice The collective's name (1 to 32 bytes, unique in its factory).
    string public name;
    /// @notice Who receives the fee and may change it.
    address public steward;
    /// @notice Fees charged and not yet withdrawn by the steward.
    uint256 public stewardBalance;
    /// @notice Current members.
    uint256 public memberCount;

    mapping(address account => Member) private _members;
    WeightedMedian.List private _floors; // counted votes by floor + 1
    Checkpoints.Trace208 private _fees; // fee bps by the time it takes effect
    mapping(uint256 proposalId => uint256) private _cast; // ask + 1 (0: not cast)
    mapping(uint256 proposalId => mapping(uint256 word => uint256 bits)) private _charged;

    /// @notice A single payout leaf to charge the fee on, with its proof.
    struct FeeCharge {
        uint256 proposalId;
        uint256 position;
        uint256 assetId;
        uint256 amount;
        bytes32[] proof;
    }

    /// @notice `member` joined listing `assetIds`; its vote counts from `effectiveAt`.
    event MemberJoined(address indexed member, uint256[] assetIds, uint64 weight, uint48 effectiveAt);
    /// @notice `member` listed `assetIds` for its weight (now `weight`).
    event MemberAssetsSet(address indexed member, uint256[] assetIds, uint64 weight);
    /// @notice `member` left (or was expelled for no longer delegating); deposit free at `unlockAt`.
    event MemberLeft(address indexed member, bool expelled, uint48 unlockAt);
    /// @notice `member` voted `floor` per sample with `weight`; it counts from `effectiveAt`.
    event PolicyVoteStaged(address indexed member, uint256 floor, uint64 weight, uint48 effectiveAt);
    /// @notice `member`'s vote now counts: `floor` with `weight` (weight 0: counts nowhere).
    event PolicyVoteCounted(address indexed member, uint256 floor, uint64 weight);
    /// @notice The policy changed: the floor per sample (when `set`) over `weight` counted.
    event PolicyChanged(bool set, uint256 floor, uint64 weight);
    /// @notice The collective voted `ask` on `proposalId` (0: accept) from `floor`.
    event CollectiveVoteCast(
        uint256 indexed proposalId, uint256 ask, uint256 floor, uint256 offer, uint64 totalWeight, address caller
    );
    /// @notice The fee becomes `feeBps` at `effectiveAt`.
    event FeeScheduled(uint16 feeBps, uint48 effectiveAt);
    /// @notice A fee of `fee` on `amount` paid to `member` for `assetId`; `paid` came from its deposit.
    event FeeCharged(
        uint256 indexed proposalId,
        uint256 position,
        uint256 indexed assetId,
        address indexed member,
        uint256 amount,
        uint256 fee,
        uint256 paid
    );
    /// @notice `member` owes `arrears` its deposit did not cover; its vote no longer counts.
    event MemberSuspended(address indexed member, uint256 arrears);
    /// @notice `from` deposited `amount` for `member`, of which `arrearsPaid` settled arrears.
    event Deposited(address indexed member, address indexed from, uint256 amount, uint256 arrearsPaid);
    /// @notice A former member withdrew its deposit.
    event DepositWithdrawn(address indexed member, uint256 amount);
    /// @notice The steward withdrew charged fees.
    event FeesWithdrawn(address indexed steward, uint256 amount);
    /// @notice The steward changed.
    event StewardChanged(address indexed previousSteward, address indexed steward);

    error CollectiveInvalidName();
    error CollectiveInvalidSteward(address steward);
    error CollectiveFeeAboveCap(uint256 feeBps, uint256 maxFeeBps);
    error CollectivePolicyDelayTooLong(uint256 policyDelay, uint256 maxPolicyDelay);
    error CollectiveNotSteward(address account);
    error CollectiveAlreadyMember(address account);
    error CollectiveNotMember(address account);
    error CollectiveNotDelegating(address account);
    error CollectiveExitLocked(address account, uint48 unlockAt);
    error CollectiveInArrears(address account, uint256 arrears);
    error CollectiveInvalidFloor(uint256 floor);
    error CollectiveNoWeight(address account);
    error CollectiveTooManyAssets(uint256 count, uint256 maxAssets);
    error CollectiveAssetsNotIncreasing();
    error CollectiveNotAssetOwner(uint256 assetId, address account);
    error CollectiveAssetsMismatch(address account);
    error CollectiveNothingPending(address account);
    error CollectivePolicyPending(address account, uint48 effectiveAt);
    error CollectiveNoPolicy();
    error CollectiveUnknownProposal(uint256 proposalId);
    error CollectiveVotingClosed(uint256 proposalId);
    error CollectiveAlreadyVoted(uint256 proposalId, uint256 ask);
    error CollectiveNoPayouts(uint256 proposalId);
    error CollectiveInvalidProof(uint256 proposalId, uint256 position, uint256 assetId);
    error CollectiveNotSelected(uint256 proposalId, uint256 position, uint256 assetId);
    error CollectiveLeftRound(uint256 proposalId, uint256 assetId);
    error CollectiveAlreadyCharged(uint256 proposalId, uint256 position);
    error CollectiveDidNotVote(uint256 proposalId);
    error CollectiveOwnVote(uint256 proposalId, address account);
    error CollectiveNotDelegated(uint256 proposalId, address account);
    error CollectiveNotMemberThen(uint256 proposalId, address account);
    error CollectiveInvalidAmount(uint256 amount);
    error CollectiveNothingToWithdraw(address account);

    /**
     * @param market_ the marketplace's TrainingMarket (also its delegation registry)
     * @param name_ 1 to 32 bytes
     * @param steward_ receives the fee and may change it; not the zero address
     * @param initialFeeBps the fee from the start, at most MAX_FEE_BPS
     * @param policyDelay_ notice for policy votes, weight increases and fee changes, at most
     *        MAX_POLICY_DELAY (0 counts every change at once: no defence against flash-joining)
     */
    constructor(TrainingMarket market_, string memory name_, address steward_, uint16 initialFeeBps, uint32 policyDelay_) {
        uint256 length = bytes(name_).length;
        if (length == 0 || length > 32) revert CollectiveInvalidName();
        if (steward_ == address(0)) revert CollectiveInvalidSteward(steward_);
        if (initialFeeBps > MAX_FEE_BPS) revert CollectiveFeeAboveCap(initialFeeBps, MAX_FEE_BPS);
        if (policyDelay_ > MAX_POLICY_DELAY) revert CollectivePolicyDelayTooLong(policyDelay_, MAX_POLICY_DELAY);
        market = market_;
        assets = market_.assets();
        paymentToken = market_.paymentToken();
        policyDelay = policyDelay_;
        name = name_;
        steward = steward_;
        _fees.push(uint48(block.timestamp), initialFeeBps);
        emit FeeScheduled(initialFeeBps, uint48(block.timestamp));
        emit StewardChanged(address(0), steward_);
    }

    // ------------------------------------------------------------------ membership

    /**
     * @notice Joins with the caller's assets and its first floor vote. The caller must already
     *         delegate its market vote to this collective (`market.delegate(collective)`).
     * @param assetIds the caller's assets, strictly increasing; the Active ones' attested
     *        sample counts are its weight, which must not be zero
     * @param floor the caller's floor price per sample, at most MAX_FLOOR
     */
    function join(uint256[] calldata assetIds, uint256 floor) external {
        Member storage m = _members[msg.sender];
        if (m.joinedAt != 0 && m.leftAt == 0) revert CollectiveAlreadyMember(msg.sender);
        if (m.leftAt != 0 && block.timestamp < m.unlockAt) revert CollectiveExitLocked(msg.sender, m.unlockAt);
        if (m.arrears != 0) revert CollectiveInArrears(msg.sender, m.arrears);
        if (market.delegateOf(msg.sender) != address(this)) revert CollectiveNotDelegating(msg.sender);
        uint96 key = _floorKey(floor);
        uint64 weight = _weightOf(msg.sender, assetIds);
        if (weight == 0) revert CollectiveNoWeight(msg.sender);
        m.joinedAt = uint48(block.timestamp);
        m.leftAt = 0;
        m.unlockAt = 0;
        m.assetsHash = keccak256(abi.encodePacked(assetIds));
        ++memberCount;
        emit MemberJoined(msg.sender, assetIds, weight, uint48(block.timestamp + policyDelay));
        _stage(msg.sender, m, weight, key);
    }

    /// @notice Leaves: the caller's vote stops counting at once. Undelegate in the market too,
    ///         or the collective's votes still speak for the caller's assets (without a fee).
    function leave() external {
        _leave(msg.sender, _member(msg.sender), false);
    }

    /**
     * @notice Replaces the caller's floor vote; it counts `policyDelay` from now.
     * @param floor the floor price per sample, at most MAX_FLOOR
     */
    function voteFloor(uint256 floor) external {
        Member storage m = _activeMember(msg.sender);
        uint64 weight = m.pendingSince != 0 ? m.pendingWeight : m.weight;
        _stage(msg.sender, m, weight, _floorKey(floor));
    }

    /**
     * @notice Replaces the list of assets that make the caller's weight. A lower weight counts
     *         at once; a higher one (and the caller's floor with it) after `policyDelay`.
     * @param assetIds the caller's assets, strictly increasing, at most MAX_MEMBER_ASSETS
     */
    function setAssets(uint256[] calldata assetIds) external {
        Member storage m = _activeMember(msg.sender);
        uint64 weight = _weightOf(msg.sender, assetIds);
        if (weight == 0) revert CollectiveNoWeight(msg.sender);
        m.assetsHash = keccak256(abi.encodePacked(assetIds));
        emit MemberAssetsSet(msg.sender, assetIds, weight);
        if (weight < m.weight) _reduceCounted(msg.sender, m, weight);
        uint96 key = m.pendingSince != 0 ? m.pendingFloorKey : m.floorKey;
        if (m.pendingSince != 0 || weight > m.weight) _stage(msg.sender, m, weight, key);
    }

    /**
     * @notice Brings a member's counted weight down to what its listed assets hold now
     *         (withdrawn assets count nothing), or expels it when it no longer delegates to the
     *         collective. Anyone may call; it never raises a weight nor restarts a waiting vote.
     * @param account the member
     * @param assetIds the member's listed assets, exactly as it last set them
     */
    function refresh(address account, uint256[] calldata assetIds) external {
        Member storage m = _member(account);
        if (market.delegateOf(account) != address(this)) {
            _leave(account, m, true);
            return;
        }
        if (keccak256(abi.encodePacked(assetIds)) != m.assetsHash) revert CollectiveAssetsMismatch(account);
        uint64 weight = _weightOf(account, assetIds);
        if (m.pendingSince != 0 && weight < m.pendingWeight) m.pendingWeight = weight;
        if (weight < m.weight) _reduceCounted(account, m, weight);
    }

    /**
     * @notice Counts the waiting votes of `accounts` whose `policyDelay` has passed. Anyone may
     *         call, e.g. right before casting the collective's vote.
     * @param accounts members with a waiting vote, each past its delay
     */
    function settle(address[] calldata accounts) external {
        for (uint256 i = 0; i < accounts.length; ++i) {
            address account = accounts[i];
            Member storage m = _members[account];
            uint48 since = m.pendingSince;
            if (since == 0) revert CollectiveNothingPending(account);
            uint48 effectiveAt = since + policyDelay;
            if (block.timestamp < effectiveAt) revert CollectivePolicyPending(account, effectiveAt);
            _count(account, m, m.pendingWeight, m.pendingFloorKey);
        }
    }

    // ------------------------------------------------------------------ voting

    /**
     * @notice Casts the collective's vote on a proposal in voting, from the current policy:
     *         accept when the offer per selected sample meets the floor, else ask floor × the
     *         proposal's selected samples. Anyone may call; again only when the answer changed.
     * @param proposalId the proposal
     * @return ask the ask sent to the market (0: accept)
     */
    function castVote(uint256 proposalId) external returns (uint256 ask) {
        MarketBase.Proposal memory p = market.proposal(proposalId);
        if (p.consumer == address(0)) revert CollectiveUnknownProposal(proposalId);
        if (p.status != MarketBase.Status.Voting || block.timestamp > p.votingDeadline) {
            revert CollectiveVotingClosed(proposalId);
        }
        uint96 median = _floors.median;
        if (median == 0) revert CollectiveNoPolicy();
        uint256 floor;
        // Cannot overflow or underflow: median >= 1, a floor < 2^96 times a weight < 2^64.
        unchecked {
            floor = median - 1;
            uint256 price = floor * p.totalWeight;
            ask = p.offer >= price ? 0 : price;
            if (_cast[proposalId] == ask + 1) revert CollectiveAlreadyVoted(proposalId, ask);
            _cast[proposalId] = ask + 1;
        }
        emit CollectiveVoteCast(proposalId, ask, floor, p.offer, p.totalWeight, msg.sender);
        market.vote(proposalId, ask);
    }

    // ------------------------------------------------------------------ fee

    /**
     * @notice Schedules a new fee; it takes effect `policyDelay` from now. Only the steward.
     * @param newFeeBps basis points of each payout, at most MAX_FEE_BPS
     */
    function setFee(uint16 newFeeBps) external {
        if (msg.sender != steward) revert CollectiveNotSteward(msg.sender);
        if (newFeeBps > MAX_FEE_BPS) revert CollectiveFeeAboveCap(newFeeBps, MAX_FEE_BPS);
        uint48 effectiveAt = uint48(block.timestamp + policyDelay);
        _fees.push(effectiveAt, newFeeBps);
        emit FeeScheduled(newFeeBps, effectiveAt);
    }

    /// @notice Hands the steward's role to `newSteward`. Only the steward.
    function setSteward(address newSteward) external {
        if (msg.sender != steward) revert CollectiveNotSteward(msg.sender);
        if (newSteward == address(0)) revert CollectiveInvalidSteward(newSteward);
        emit StewardChanged(steward, newSteward);
        steward = newSteward;
    }

    /**
     * @notice Adds to `account`'s fee deposit (arrears are paid first). Anyone may pay.
     * @param account a member or former member
     * @param amount payment tokens, approved to this contract, at most 2^128 - 1
     */
    function deposit(address account, uint256 amount) external nonReentrant {
        Member storage m = _members[account];
        if (m.joinedAt == 0) revert CollectiveNotMember(account);
        if (amount == 0 || amount > type(uint128).max) revert CollectiveInvalidAmount(amount);
        uint256 owed = m.arrears;
        uint256 paid = Math.min(owed, amount);
        // Cannot truncate: paid <= owed < 2^128.
        m.arrears = uint128(owed - paid);
        uint256 kept = uint256(m.deposit) + (amount - paid);
        if (kept > type(uint128).max) revert CollectiveInvalidAmount(amount);
        m.deposit = uint128(kept);
        stewardBalance += paid;
        emit Deposited(account, msg.sender, amount, paid);
        paymentToken.safeTransferFrom(msg.sender, address(this), amount);
    }

    /**
     * @notice Charges the fee on payout leaves of completed proposals that the collective
     *         priced for its members. Anyone may call; each leaf once.
     * @param charges payout leaves with their proofs against each proposal's payout root
     */
    function chargeFees(FeeCharge[] calldata charges) external {
        for (uint256 i = 0; i < charges.length; ++i) {
            _charge(charges[i]);
        }
    }

    /// @notice A former member withdraws its deposit once its exit lock has passed.
    function withdrawDeposit() external nonReentrant {
        Member storage m = _members[msg.sender];
        if (m.joinedAt == 0 || m.leftAt == 0) revert CollectiveNotMember(msg.sender);
        if (block.timestamp < m.unlockAt) revert CollectiveExitLocked(msg.sender, m.unlockAt);
        uint256 amount = m.deposit;
        if (amount == 0) revert CollectiveNothingToWithdraw(msg.sender);
        m.deposit = 0;
        emit DepositWithdrawn(msg.sender, amount);
        paymentToken.safeTransfer(msg.sender, amount);
    }

    /// @notice The steward withdraws the fees charged so far.
    function withdrawFees() external nonReentrant {
        if (msg.sender != steward) revert CollectiveNotSteward(msg.sender);
        uint256 amount = stewardBalance;
        if (amount == 0) revert CollectiveNothingToWithdraw(msg.sender);
        stewardBalance = 0;
        emit FeesWithdrawn(msg.sender, amount);
        paymentToken.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice The record of `account` (all zero when it never joined).
    function member(address account) external view returns (Member memory) {
        return _members[account];
    }

    /// @notice Whether `account` is a member now.
    function isMember(address account) public view returns (bool) {
        Member storage m = _members[account];
        return m.joinedAt != 0 && m.leftAt == 0;
    }

    /**
     * @notice The standing policy.
     * @return set whether any weight is counted (without it the collective cannot vote)
     * @return floor the weighted lower median floor per sample
     * @return weight the counted weight
     */
    function policy() external view returns (bool set, uint256 floor, uint64 weight) {
        uint96 median = _floors.median;
        return (median != 0, median == 0 ? 0 : median - 1, _floors.total);
    }

    /// @notice Every counted floor with its weight, ascending.
    function floorLevels() external view returns (uint256[] memory floors, uint64[] memory weights) {
        uint96[] memory keys;
        (keys, weights) = _floors.levelsOf();
        floors = new uint256[](keys.length);
        for (uint256 i = 0; i < keys.length; ++i) {
            floors[i] = keys[i] - 1;
        }
    }

    /// @notice The fee in force now, in basis points.
    function feeBps() external view returns (uint16) {
        return uint16(_fees.upperLookupRecent(uint48(block.timestamp)));
    }

    /// @notice The fee in force at `timestamp` (as charged for a deadline at that time).
    function feeAt(uint48 timestamp) public view returns (uint16) {
        return uint16(_fees.upperLookupRecent(timestamp));
    }

    /// @notice The latest scheduled fee and when it takes (or took) effect.
    function latestFee() external view returns (uint16 bps, uint48 effectiveAt) {
        (, uint48 key, uint208 value) = _fees.latestCheckpoint();
        return (uint16(value), key);
    }

    /// @notice The collective's ask on `proposalId` ((false, 0) when it has not voted).
    function castOf(uint256 proposalId) external view returns (bool cast, uint256 ask) {
        uint256 stored = _cast[proposalId];
        // Cannot underflow: stored > 0 on the branch that subtracts.
        unchecked {
            return (stored != 0, stored == 0 ? 0 : stored - 1);
        }
    }

    /// @notice Whether the fee on `position` of `proposalId` has been charged.
    function isCharged(uint256 proposalId, uint256 position) external view returns (bool) {
        return _charged[proposalId][position >> 8] & (uint256(1) << (position & 0xff)) != 0;
    }

    // ------------------------------------------------------------------ internals: members

    function _member(address account) private view returns (Member storage m) {
        m = _members[account];
        if (m.joinedAt == 0 || m.leftAt != 0) revert CollectiveNotMember(account);
    }

    function _activeMember(address account) private view returns (Member storage m) {
        m = _member(account);
        if (m.arrears != 0) revert CollectiveInArrears(account, m.arrears);
    }

    function _floorKey(uint256 floor) private pure returns (uint96) {
        if (floor > MAX_FLOOR) revert CollectiveInvalidFloor(floor);
        return uint96(floor + 1);
    }

    /// @dev Attested samples of `account`'s Active assets among `assetIds`; each must be its own.
    function _weightOf(address account, uint256[] calldata assetIds) private view returns (uint64 weight) {
        uint256 n = assetIds.length;
        if (n > MAX_MEMBER_ASSETS) revert CollectiveTooManyAssets(n, MAX_MEMBER_ASSETS);
        uint256 previous;
        for (uint256 i = 0; i < n; ++i) {
            uint256 assetId = assetIds[i];
            if (assetId <= previous) revert CollectiveAssetsNotIncreasing();
            previous = assetId;
            (address owner, AssetRegistry.Status status, uint32 accepted,) = assets.assetTerms(assetId);
            if (owner != account) revert CollectiveNotAssetOwner(assetId, account);
            // Cannot overflow: at most 256 counts below 2^32 each.
            unchecked {
                if (status == AssetRegistry.Status.Active) weight += accepted;
            }
        }
    }

    /// @dev Records a vote that counts after policyDelay (at once without a delay).
    function _stage(address account, Member storage m, uint64 weight, uint96 key) private {
        uint48 now_ = uint48(block.timestamp);
        emit PolicyVoteStaged(account, key - 1, weight, now_ + policyDelay);
        if (policyDelay == 0) {
            _count(account, m, weight, key);
            return;
        }
        m.pendingWeight = weight;
        m.pendingFloorKey = key;
        m.pendingSince = now_;
    }

    /// @dev Moves `account`'s counted vote to (`weight`, `key`) and clears what was waiting;
    ///      a zero weight keeps the floor (key 0 only when the member leaves).
    function _count(address account, Member storage m, uint64 weight, uint96 key) private {
        uint96 oldKey = m.floorKey;
        uint64 oldWeight = m.weight;
        // added before the old vote is removed, so that a new level is found by walking from
        // the member's old one: a small change of floor walks few levels
        if (weight != 0) _floors.add(key, weight, oldWeight != 0 ? oldKey : 0);
        if (oldWeight != 0) _floors.remove(oldKey, oldWeight);
        m.weight = weight;
        m.floorKey = key;
        m.pendingWeight = 0;
        m.pendingFloorKey = 0;
        m.pendingSince = 0;
        emit PolicyVoteCounted(account, key == 0 ? 0 : key - 1, weight);
        _policyChanged();
    }

    /// @dev Lowers `account`'s counted weight at once, keeping its floor.
    function _reduceCounted(address account, Member storage m, uint64 weight) private {
        _floors.remove(m.floorKey, m.weight - weight);
        m.weight = weight;
        emit PolicyVoteCounted(account, m.floorKey - 1, weight);
        _policyChanged();
    }

    function _leave(address account, Member storage m, bool expelled) private {
        _count(account, m, 0, 0);
        // fees stay chargeable until the rounds the member was in could have had results
        MarketBase.Parameters memory params = market.parameters();
        uint48 unlockAt;
        // Cannot overflow: three uint32 periods and a constant added to a uint48 time.
        unchecked {
            unlockAt = uint48(
                block.timestamp + params.replyPeriod + params.startPeriod + params.maxTrainingPeriod
                    + EXIT_CHARGE_WINDOW
            );
        }
        m.leftAt = uint48(block.timestamp);
        m.unlockAt = unlockAt;
        --memberCount;
        emit MemberLeft(account, expelled, unlockAt);
    }

    // ------------------------------------------------------------------ internals: fees

    function _charge(FeeCharge calldata c) private {
        uint256 pid = c.proposalId;
        MarketBase.Proposal memory p = market.proposal(pid);
        if (p.payoutRoot == bytes32(0)) revert CollectiveNoPayouts(pid);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(c.position, c.assetId, c.amount))));
        if (!MerkleProof.verifyCalldata(c.proof, p.payoutRoot, leaf)) {
            revert CollectiveInvalidProof(pid, c.position, c.assetId);
        }
        // the market pays only what it selected and what stayed in the round
        if (market.selectedAsset(pid, c.position) != c.assetId) revert CollectiveNotSelected(pid, c.position, c.assetId);
        if (market.exclusionWord(pid, c.position >> 8) & (uint256(1) << (c.position & 0xff)) != 0) {
            revert CollectiveLeftRound(pid, c.assetId);
        }
        uint256 word = c.position >> 8;
        uint256 bit = uint256(1) << (c.position & 0xff);
        uint256 bits = _charged[pid][word];
        if (bits & bit != 0) revert CollectiveAlreadyCharged(pid, c.position);
        if (_cast[pid] == 0) revert CollectiveDidNotVote(pid);
        (address owner,) = assets.ownerAndStatus(c.assetId);
        (bool ownVote,) = market.voteOf(pid, owner);
        if (ownVote) revert CollectiveOwnVote(pid, owner);
        uint48 deadline = p.votingDeadline;
        if (market.delegateAt(owner, deadline) != address(this)) revert CollectiveNotDelegated(pid, owner);
        Member storage m = _members[owner];
        if (m.joinedAt == 0 || m.joinedAt > deadline || (m.leftAt != 0 && m.leftAt < deadline)) {
            revert CollectiveNotMemberThen(pid, owner);
        }
        _charged[pid][word] = bits | bit;
        uint256 fee = Math.mulDiv(c.amount, feeAt(deadline), _BPS);
        uint256 held = m.deposit;
        uint256 paid = Math.min(fee, held);
        // Cannot underflow: paid <= held and paid <= fee; fee < 2^128 when anything is owed.
        m.deposit = uint128(held - paid);
        stewardBalance += paid;
        emit FeeCharged(pid, c.position, c.assetId, owner, c.amount, fee, paid);
        if (paid < fee) {
            uint256 arrears = uint256(m.arrears) + (fee - paid);
            m.arrears = arrears > type(uint128).max ? type(uint128).max : uint128(arrears);
            emit MemberSuspended(owner, m.arrears);
            if (m.leftAt == 0) _count(owner, m, 0, m.pendingSince != 0 ? m.pendingFloorKey : m.floorKey);
        }
    }

    function _policyChanged() private {
        uint96 median = _floors.median;
        emit PolicyChanged(median != 0, median == 0 ? 0 : median - 1, _floors.total);
    }
}
