// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {StakeholderRegistry} from "../StakeholderRegistry.sol";
import {TrainingMarket} from "../TrainingMarket.sol";
import {MarketBase} from "../market/MarketBase.sol";
import {ZkAccuracyCheck} from "./ZkAccuracyCheck.sol";

/**
 * @title ResultCourt
 * @notice Bonds of compute nodes, challenges of their training results, and the resolution of
 *         challenges by a committee of other bonded nodes that re-execute the job (DESIGN §7).
 *
 *         A node deposits a bond; the market locks `bond` of it for every job it starts
 *         (`lockBond`), so a node whose free stake is below one bond cannot start a job. After
 *         `submitResult` the market holds claims and the node's fee for its challenge window.
 *         Within it any other admitted, bonded node that re-executed the job may `confirm` it
 *         (an event) or `challenge` it with a bond. Without a challenge anyone may `release`
 *         the result once the window is over. A challenge draws a committee of `committeeSize`
 *         other bonded nodes; each re-executes and votes before the ruling deadline; the
 *         majority of votes cast decides (`resolve`): an overturned result refunds the consumer
 *         its price and training cost (the scoring fee the market already paid out comes from
 *         the node's bond) and the rest of the node's bond goes to the challenger; an upheld
 *         one is released and the challenger's bond goes to the node. A tie or a silent
 *         committee leaves the decision to governance (`decide`), the last resort.
 *
 *         Governance may also name a ZkAccuracyCheck bound to the market (`setZkCheck`). A job
 *         started while one is named needs an accepted zero-knowledge accuracy claim before
 *         its WTP-met result counts: `release` (and an upheld challenge) waits for it; a claim
 *         rejected or expired, or none committed by the window's end, lets anyone overturn the
 *         result (`overturnUnproven`), slashing the node's bond to the consumer.
 *
 * @dev The committee is drawn with `block.prevrandao`, which the block's proposer can bias by
 *      withholding a block: enough on a dev chain; a production chain draws from a VRF or from
 *      the randomness of a block fixed at challenge time and only known later. Bonds and the
 *      market's escrow are separate: slashing moves stake between nodes inside this contract;
 *      tokens leave only by `withdraw` of free stake.
 */
contract ResultCourt is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice An open or settled challenge of one proposal's result.
    struct Challenge {
        address challenger;
        uint48 deadline; // committee votes close
        uint8 upheld; // votes that the result is right
        uint8 overturned; // votes that it is wrong
        bool settled;
        address node;
        uint256 bond; // the challenger's locked bond
    }

    StakeholderRegistry public immutable stakeholders;
    TrainingMarket public immutable market;
    IERC20 public immutable token;

    uint256 private _bond;
    uint8 private _committeeSize;
    uint32 private _rulingPeriod;

    mapping(address node => uint256) private _stake;
    mapping(address node => uint256) private _locked;
    address[] private _bonded; // every node that ever deposited: the committee's pool
    mapping(address node => bool) private _listed;
    mapping(uint256 proposalId => uint256) private _jobBond; // the node's bond locked for the job
    mapping(uint256 proposalId => Challenge) private _challenges;
    mapping(uint256 proposalId => address[]) private _committees;
    // 0 not a member, 1 member who has not voted, 2 voted
    mapping(uint256 proposalId => mapping(address member => uint8)) private _seats;
    ZkAccuracyCheck private _zkCheck; // named for jobs started from now on (zero: none)
    mapping(uint256 proposalId => ZkAccuracyCheck) private _jobCheck; // fixed at lockBond

    event ParametersChanged(uint256 bond, uint8 committeeSize, uint32 rulingPeriod);
    event Deposited(address indexed node, uint256 amount);
    event Withdrawn(address indexed node, uint256 amount);
    event BondLocked(uint256 indexed proposalId, address indexed node, uint256 amount);
    event BondUnlocked(uint256 indexed proposalId, address indexed node, uint256 amount);
    event ResultConfirmed(uint256 indexed proposalId, address indexed verifier);
    event ChallengeOpened(
        uint256 indexed proposalId, address indexed challenger, address[] committee, uint48 deadline
    );
    event CommitteeVoted(uint256 indexed proposalId, address indexed member, bool resultCorrect);
    event ChallengeResolved(
        uint256 indexed proposalId, bool overturned, address indexed winner, address indexed loser, uint256 slashed
    );
    event ZkCheckChanged(address check);
    event UnprovenOverturned(
        uint256 indexed proposalId, address indexed node, ZkAccuracyCheck.Status proof, uint256 slashed
    );

    error ResultCourtNotGovernance(address account);
    error ResultCourtNotMarket(address account);
    error ResultCourtInvalidParameters(string reason);
    error ResultCourtNotBondedNode(address account);
    error ResultCourtBondTooLow(address node, uint256 free, uint256 required);
    error ResultCourtNotChallengeable(uint256 proposalId);
    error ResultCourtOwnResult(uint256 proposalId);
    error ResultCourtAlreadyChallenged(uint256 proposalId);
    error ResultCourtWindowOpen(uint256 proposalId, uint48 closesAt);
    error ResultCourtJobOpen(uint256 proposalId);
    error ResultCourtNotMember(uint256 proposalId, address account);
    error ResultCourtVotingClosed(uint256 proposalId);
    error ResultCourtVotingOpen(uint256 proposalId);
    error ResultCourtUndecided(uint256 proposalId, uint8 upheld, uint8 overturned);
    error ResultCourtNoChallenge(uint256 proposalId);
    error ResultCourtProofNotAccepted(uint256 proposalId, ZkAccuracyCheck.Status status);
    error ResultCourtProofNotFailed(uint256 proposalId, ZkAccuracyCheck.Status status, uint48 windowEnd);
    error ResultCourtNoProofRequired(uint256 proposalId);

    constructor(
        StakeholderRegistry stakeholderRegistry,
        TrainingMarket trainingMarket,
        uint256 bond,
        uint8 committeeSize,
        uint32 rulingPeriod
    ) {
        stakeholders = stakeholderRegistry;
        market = trainingMarket;
        token = trainingMarket.paymentToken();
        _setParameters(bond, committeeSize, rulingPeriod);
    }

    // ------------------------------------------------------------------ governance

    /**
     * @notice Changes the bond per job, the committee size and the ruling period; only
     *         GOVERNANCE_ROLE of the StakeholderRegistry. Locks already taken keep their amount.
     */
    function setParameters(uint256 bond, uint8 committeeSize, uint32 rulingPeriod) external {
        _onlyGovernance();
        _setParameters(bond, committeeSize, rulingPeriod);
    }

    /**
     * @notice Names the ZkAccuracyCheck whose accepted claim a WTP-met result needs before it
     *         counts, for jobs started from now on (zero: none, results count after their
     *         window as before); only GOVERNANCE_ROLE. The check must be bound to this market.
     */
    function setZkCheck(ZkAccuracyCheck check) external {
        _onlyGovernance();
        if (address(check) != address(0) && address(check.market()) != address(market)) {
            revert ResultCourtInvalidParameters("the accuracy check is not bound to this market");
        }
        _zkCheck = check;
        emit ZkCheckChanged(address(check));
    }

    /// @notice The accuracy check named for jobs started from now on (zero: none).
    function zkCheck() external view returns (ZkAccuracyCheck) {
        return _zkCheck;
    }

    /**
     * @notice The accuracy check job `proposalId` was started under (zero: its result needs no
     *         proof) and its claim's status there.
     */
    function proofOf(uint256 proposalId)
        external
        view
        returns (ZkAccuracyCheck check, ZkAccuracyCheck.Status status)
    {
        check = _jobCheck[proposalId];
        if (address(check) != address(0)) status = check.statusOf(proposalId);
    }

    /// @notice The bond per job, the committee size and the ruling period in seconds.
    function parameters() external view returns (uint256 bond, uint8 committeeSize, uint32 rulingPeriod) {
        return (_bond, _committeeSize, _rulingPeriod);
    }

    // ------------------------------------------------------------------ bonds

    /// @notice Deposits `amount` of the payment token as the caller's stake (an admitted node or
    ///         an active federation).
    function deposit(uint256 amount) external nonReentrant {
        // a federation bonds its jobs like a node (nodeRegions); it is never drawn (nodeStatus)
        (bool active,,) = stakeholders.nodeRegions(msg.sender);
        if (!active || amount == 0) revert ResultCourtNotBondedNode(msg.sender);
        _stake[msg.sender] += amount;
        if (!_listed[msg.sender]) {
            _listed[msg.sender] = true;
            _bonded.push(msg.sender);
        }
        emit Deposited(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Withdraws `amount` of the caller's free stake (not locked by jobs or challenges).
    function withdraw(uint256 amount) external nonReentrant {
        uint256 free = freeStake(msg.sender);
        if (amount > free) revert ResultCourtBondTooLow(msg.sender, free, amount);
        _stake[msg.sender] -= amount;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Locks one bond of `node` for `proposalId`; only the market, at `startTraining`.
    function lockBond(uint256 proposalId, address node) external {
        if (msg.sender != address(market)) revert ResultCourtNotMarket(msg.sender);
        uint256 bond = _bond;
        _lock(node, bond);
        _jobBond[proposalId] = bond;
        ZkAccuracyCheck check = _zkCheck;
        if (address(check) != address(0)) _jobCheck[proposalId] = check;
        emit BondLocked(proposalId, node, bond);
    }

    /// @notice `node`'s stake and the part of it locked by open jobs and challenges.
    function stakeOf(address node) external view returns (uint256 stake, uint256 locked) {
        return (_stake[node], _locked[node]);
    }

    /// @notice The stake `node` may lock or withdraw.
    function freeStake(address node) public view returns (uint256) {
        return _stake[node] - _locked[node];
    }

    // ------------------------------------------------------------------ verification

    /// @notice An admitted node that re-executed `proposalId` and found the same result says so.
    function confirm(uint256 proposalId) external {
        MarketBase.Proposal memory p = _inWindow(proposalId);
        if (p.node == msg.sender) revert ResultCourtOwnResult(proposalId);
        emit ResultConfirmed(proposalId, msg.sender);
    }

    /**
     * @notice Challenges `proposalId`'s result within its window, locking one bond of the
     *         caller, and draws the committee that will re-execute the job.
     * @return committee the drawn members (empty when no other node is bonded: governance decides)
     */
    function challenge(uint256 proposalId) external returns (address[] memory committee) {
        MarketBase.Proposal memory p = _inWindow(proposalId);
        if (p.node == msg.sender) revert ResultCourtOwnResult(proposalId);
        Challenge storage c = _challenges[proposalId];
        if (c.challenger != address(0)) revert ResultCourtAlreadyChallenged(proposalId);
        uint256 bond = _bond;
        _lock(msg.sender, bond);
        uint48 deadline = uint48(block.timestamp + _rulingPeriod);
        _challenges[proposalId] =
            Challenge({challenger: msg.sender, deadline: deadline, upheld: 0, overturned: 0, settled: false, node: p.node, bond: bond});
        committee = _draw(proposalId, p.node, msg.sender);
        _committees[proposalId] = committee;
        for (uint256 i = 0; i < committee.length; ++i) {
            _seats[proposalId][committee[i]] = 1;
        }
        emit ChallengeOpened(proposalId, msg.sender, committee, deadline);
    }

    /// @notice A committee member's finding after re-executing the job, before the deadline.
    function vote(uint256 proposalId, bool resultCorrect) external {
        Challenge storage c = _challenges[proposalId];
        if (_seats[proposalId][msg.sender] != 1) revert ResultCourtNotMember(proposalId, msg.sender);
        if (c.settled || block.timestamp > c.deadline) revert ResultCourtVotingClosed(proposalId);
        _seats[proposalId][msg.sender] = 2;
        // Cannot overflow: at most committeeSize (uint8) members vote once each.
        unchecked {
            if (resultCorrect) ++c.upheld;
            else ++c.overturned;
        }
        emit CommitteeVoted(proposalId, msg.sender, resultCorrect);
    }

    /**
     * @notice Settles a challenge by its committee's majority once every member voted or the
     *         deadline passed; anyone may call. A tie (or no vote) is left to governance.
     */
    function resolve(uint256 proposalId) external nonReentrant {
        Challenge storage c = _open(proposalId);
        uint256 members = _committees[proposalId].length;
        if (c.upheld + c.overturned < members && block.timestamp <= c.deadline) {
            revert ResultCourtVotingOpen(proposalId);
        }
        if (c.upheld == c.overturned) revert ResultCourtUndecided(proposalId, c.upheld, c.overturned);
        _settle(proposalId, c, c.overturned > c.upheld);
    }

    /// @notice Governance's decision on a challenge its committee left undecided at its deadline.
    function decide(uint256 proposalId, bool overturn) external nonReentrant {
        _onlyGovernance();
        Challenge storage c = _open(proposalId);
        if (block.timestamp <= c.deadline) revert ResultCourtVotingOpen(proposalId);
        if (c.upheld != c.overturned) revert ResultCourtUndecided(proposalId, c.upheld, c.overturned);
        _settle(proposalId, c, overturn);
    }

    /**
     * @notice Releases an unchallenged (or upheld) result once its window is over and, for a
     *         job under an accuracy check, its claim is accepted; unlocks the node's bond of a
     *         job that ended (released, overturned, abandoned or reclaimed); anyone.
     */
    function release(uint256 proposalId) external nonReentrant {
        MarketBase.Proposal memory p = market.proposal(proposalId);
        bool submitted = p.status == MarketBase.Status.Completed || p.status == MarketBase.Status.WtpMissed;
        if (submitted && p.deadline != 0) {
            Challenge storage c = _challenges[proposalId];
            if (c.challenger != address(0) && !c.settled) revert ResultCourtAlreadyChallenged(proposalId);
            if (block.timestamp < p.deadline) revert ResultCourtWindowOpen(proposalId, p.deadline);
            if (p.status == MarketBase.Status.Completed) {
                ZkAccuracyCheck.Status proof = _proofStatus(proposalId);
                if (proof != ZkAccuracyCheck.Status.Accepted) revert ResultCourtProofNotAccepted(proposalId, proof);
            }
            market.settleResult(proposalId, false);
        } else if (!submitted && p.status != MarketBase.Status.Cancelled) {
            revert ResultCourtJobOpen(proposalId);
        }
        _unlockJob(proposalId, p.node);
    }

    /**
     * @notice Overturns a WTP-met result whose job needs an accuracy proof that failed: its
     *         claim was rejected or expired (a pending claim past its 256 blocks is expired
     *         here), or none was committed before the window closed; anyone. An open challenge
     *         is settled in the challenger's favour; otherwise the node's bond goes to the
     *         consumer (not to the caller: the node could overturn itself from another account
     *         and take its own bond back). The market refunds the price and training cost.
     */
    function overturnUnproven(uint256 proposalId) external nonReentrant {
        ZkAccuracyCheck check = _jobCheck[proposalId];
        MarketBase.Proposal memory p = market.proposal(proposalId);
        if (address(check) == address(0) || p.status != MarketBase.Status.Completed || p.deadline == 0) {
            revert ResultCourtNoProofRequired(proposalId);
        }
        ZkAccuracyCheck.Status proof = check.statusOf(proposalId);
        if (proof == ZkAccuracyCheck.Status.Pending) {
            check.expire(proposalId); // reverts while the node may still prove
            proof = ZkAccuracyCheck.Status.Expired;
        }
        bool failed = proof == ZkAccuracyCheck.Status.Rejected || proof == ZkAccuracyCheck.Status.Expired
            || (proof == ZkAccuracyCheck.Status.None && block.timestamp >= p.deadline);
        if (!failed) revert ResultCourtProofNotFailed(proposalId, proof, p.deadline);
        Challenge storage c = _challenges[proposalId];
        if (c.challenger != address(0) && !c.settled) {
            emit UnprovenOverturned(proposalId, p.node, proof, 0);
            return _settle(proposalId, c, true);
        }
        // no challenge, or one upheld while the proof was outstanding: the job's bond is locked
        uint256 bond = _jobBond[proposalId];
        _jobBond[proposalId] = 0;
        _locked[p.node] -= bond;
        _stake[p.node] -= bond;
        emit UnprovenOverturned(proposalId, p.node, proof, bond);
        market.settleResult(proposalId, true);
        if (bond != 0) token.safeTransfer(p.consumer, bond);
    }

    /// @notice The challenge of `proposalId` (all zero when none) and its committee.
    function challengeOf(uint256 proposalId) external view returns (Challenge memory, address[] memory) {
        return (_challenges[proposalId], _committees[proposalId]);
    }

    /// @notice The nodes that ever deposited, from which committees are drawn.
    function bondedNodes() external view returns (address[] memory) {
        return _bonded;
    }

    // ------------------------------------------------------------------ internals

    function _setParameters(uint256 bond, uint8 committeeSize, uint32 rulingPeriod) private {
        if (bond == 0 || committeeSize == 0 || rulingPeriod == 0) {
            revert ResultCourtInvalidParameters("bond, committee size and ruling period must be positive");
        }
        _bond = bond;
        _committeeSize = committeeSize;
        _rulingPeriod = rulingPeriod;
        emit ParametersChanged(bond, committeeSize, rulingPeriod);
    }

    function _onlyGovernance() private view {
        if (!stakeholders.hasRole(stakeholders.GOVERNANCE_ROLE(), msg.sender)) {
            revert ResultCourtNotGovernance(msg.sender);
        }
    }

    function _lock(address node, uint256 amount) private {
        uint256 free = freeStake(node);
        if (free < amount) revert ResultCourtBondTooLow(node, free, amount);
        _locked[node] += amount;
    }

    function _unlockJob(uint256 proposalId, address node) private {
        uint256 bond = _jobBond[proposalId];
        if (bond == 0) return;
        _jobBond[proposalId] = 0;
        _locked[node] -= bond;
        emit BondUnlocked(proposalId, node, bond);
    }

    /// @dev A submitted result still in its challenge window, challenged by an admitted node.
    function _inWindow(uint256 proposalId) private view returns (MarketBase.Proposal memory p) {
        (bool active,,) = stakeholders.nodeStatus(msg.sender);
        if (!active) revert ResultCourtNotBondedNode(msg.sender);
        p = market.proposal(proposalId);
        bool submitted = p.status == MarketBase.Status.Completed || p.status == MarketBase.Status.WtpMissed;
        if (!submitted || p.deadline == 0 || block.timestamp >= p.deadline) {
            revert ResultCourtNotChallengeable(proposalId);
        }
    }

    function _open(uint256 proposalId) private view returns (Challenge storage c) {
        c = _challenges[proposalId];
        if (c.challenger == address(0) || c.settled) revert ResultCourtNoChallenge(proposalId);
    }

    /// @dev The accepted claim's status, or Accepted when the job needs no proof.
    function _proofStatus(uint256 proposalId) private view returns (ZkAccuracyCheck.Status) {
        ZkAccuracyCheck check = _jobCheck[proposalId];
        return address(check) == address(0) ? ZkAccuracyCheck.Status.Accepted : check.statusOf(proposalId);
    }

    /**
     * @dev The loser's bond pays the winner; the market releases or overturns the result. An
     *      upheld WTP-met result whose accuracy proof is not accepted yet stays held, its node's
     *      bond locked, until `release` or `overturnUnproven`.
     */
    function _settle(uint256 proposalId, Challenge storage c, bool overturn) private {
        c.settled = true;
        address node = c.node;
        address challenger = c.challenger;
        bool waits = !overturn && market.proposal(proposalId).status == MarketBase.Status.Completed
            && _proofStatus(proposalId) != ZkAccuracyCheck.Status.Accepted;
        uint256 nodeBond = waits ? 0 : _jobBond[proposalId];
        uint256 challengerBond = c.bond;
        if (!waits) _jobBond[proposalId] = 0;
        _locked[node] -= nodeBond;
        _locked[challenger] -= challengerBond;
        (address winner, address loser, uint256 slashed) =
            overturn ? (challenger, node, nodeBond) : (node, challenger, challengerBond);
        _stake[loser] -= slashed;
        // the market already paid the scoring pool its fee from the price: an overturned
        // result's consumer gets it back from the slashed bond, the challenger the rest
        uint256 repay;
        address consumer;
        if (overturn) {
            (,,, uint256 fee) = market.scoringFee(proposalId);
            repay = fee < slashed ? fee : slashed;
            consumer = market.proposal(proposalId).consumer;
        }
        _stake[winner] += slashed - repay;
        emit ChallengeResolved(proposalId, overturn, winner, loser, slashed);
        if (!waits) market.settleResult(proposalId, overturn);
        if (repay != 0) token.safeTransfer(consumer, repay);
    }

    /**
     * @dev Draws up to `committeeSize` distinct members among the bonded nodes other than the
     *      result's node and its challenger that are active and hold one free bond: a partial
     *      Fisher–Yates shuffle of the pool driven by keccak256(prevrandao, proposalId, i).
     */
    function _draw(uint256 proposalId, address node, address challenger) private view returns (address[] memory out) {
        address[] memory pool = _bonded;
        uint256 n = pool.length;
        uint256 size = _committeeSize;
        out = new address[](size);
        uint256 picked;
        uint256 bond = _bond;
        for (uint256 i = 0; i < n && picked < size; ++i) {
            uint256 j = i + uint256(keccak256(abi.encode(block.prevrandao, proposalId, i))) % (n - i);
            (pool[i], pool[j]) = (pool[j], pool[i]);
            address candidate = pool[i];
            if (candidate == node || candidate == challenger || freeStake(candidate) < bond) continue;
            (bool active,,) = stakeholders.nodeStatus(candidate);
            if (active) out[picked++] = candidate;
        }
        // Shrinks the array in place to the members found.
        assembly ("memory-safe") {
            mstore(out, picked)
        }
    }
}
