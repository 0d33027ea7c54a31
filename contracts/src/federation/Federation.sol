// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {MarketBase} from "../market/MarketBase.sol";

/// @notice What a federation asks of the market.
interface IFederatedMarket {
    function paymentToken() external view returns (IERC20);
    function parameters() external view returns (MarketBase.Parameters memory);
    function proposal(uint256 proposalId) external view returns (MarketBase.Proposal memory);
    function submitResult(uint256 proposalId, MarketBase.Result calldata result) external;
    function abandonTraining(uint256 proposalId, string calldata reason) external;
    function creditOf(address account) external view returns (uint256);
    function withdraw() external;
}

/// @notice What a federation asks of the court: a bond, as any node.
interface IFederationCourt {
    function deposit(uint256 amount) external;
    function withdraw(uint256 amount) external;
}

/**
 * @title Federation
 * @notice One proposal's node when its assets may only be trained in different regions: a
 *         coordinator runs the federated rounds, each member (a regional compute node) trains on
 *         the selected assets its region allows. The market sees this contract as the node
 *         (`StakeholderRegistry.nodeRegions`: the members' regions, the coordinator's signer), so
 *         the escrow, the deadlines, the challenge window and the bond cover the whole federation.
 *
 *         Rounds: the coordinator announces each round's document (its signed quote, every
 *         member's share and quoted fee, its SuperLink) and each member binds its SuperNode key
 *         to the round on chain. Fees: before its result the coordinator splits the training
 *         cost the consumer paid into one fee per member (`setFees`, summing to it; a member
 *         that dropped out of the round is paid nothing); a result cannot be submitted before
 *         that. Once the market releases the cost to this contract, `collect` books every
 *         member's fee and members `withdraw` them.
 *
 * @dev Plain storage, no immutables: a member checks that a federation runs exactly the shipped
 *      runtime code before it joins (its code hash is the artifact's).
 */
contract Federation is ReentrancyGuard {
    using SafeERC20 for IERC20;

    IFederatedMarket public market;
    address public coordinator;
    address[] private _members;

    mapping(uint256 proposalId => uint256[] fees) private _fees;
    mapping(uint256 proposalId => bool) private _collected;
    mapping(address member => uint256) private _owed;

    /// @notice The coordinator published `proposalId`'s round document (quote, shares, SuperLink).
    event RoundAnnounced(uint256 indexed proposalId, string roundCid);
    /// @notice `member` binds its SuperNode public key to `proposalId`'s round.
    event KeyBound(uint256 indexed proposalId, address indexed member, bytes publicKey);
    event FeesSet(uint256 indexed proposalId, uint256[] fees);
    event FeesCollected(uint256 indexed proposalId, uint256 total);
    event FeeWithdrawn(address indexed member, uint256 amount);

    error FederationNotCoordinator(address caller);
    error FederationInvalidMembers();
    error FederationNotOurs(uint256 proposalId);
    error FederationBadFees(uint256 proposalId, string reason);
    error FederationFeesNotSet(uint256 proposalId);
    error FederationNotReleased(uint256 proposalId);
    error FederationNothingOwed(address member);
    error FederationNotMember(address caller);
    error FederationBadKey(uint256 length);

    /**
     * @param market_ the TrainingMarket this federation trains for
     * @param coordinator_ the compute node that runs the rounds (sends this contract's
     *        transactions); it may be a member too
     * @param members_ the regional nodes, one to eight, in the order fees are listed
     */
    constructor(IFederatedMarket market_, address coordinator_, address[] memory members_) {
        if (members_.length == 0 || members_.length > 8 || coordinator_ == address(0)) {
            revert FederationInvalidMembers();
        }
        market = market_;
        coordinator = coordinator_;
        _members = members_;
    }

    modifier onlyCoordinator() {
        if (msg.sender != coordinator) revert FederationNotCoordinator(msg.sender);
        _;
    }

    /// @notice The regional nodes, in fee order.
    function members() external view returns (address[] memory) {
        return _members;
    }

    /// @notice The fee of each member for `proposalId` (empty until set).
    function feesOf(uint256 proposalId) external view returns (uint256[] memory) {
        return _fees[proposalId];
    }

    /// @notice What `member` may withdraw.
    function owedTo(address member) external view returns (uint256) {
        return _owed[member];
    }

    // ------------------------------------------------------------------ the coordinator's

    /**
     * @notice Splits `proposalId`'s training cost into one fee per member, once, while it trains.
     * @param fees one per member, in `members()` order, summing to the training cost
     */
    function setFees(uint256 proposalId, uint256[] calldata fees) external onlyCoordinator {
        MarketBase.Proposal memory p = _ours(proposalId);
        if (p.status != MarketBase.Status.Training) revert FederationBadFees(proposalId, "not training");
        if (_fees[proposalId].length != 0) revert FederationBadFees(proposalId, "already set");
        if (fees.length != _members.length) revert FederationBadFees(proposalId, "one fee per member");
        uint256 total;
        for (uint256 i = 0; i < fees.length; ++i) {
            total += fees[i];
        }
        if (total != p.trainingCost) revert FederationBadFees(proposalId, "fees must sum to the training cost");
        _fees[proposalId] = fees;
        emit FeesSet(proposalId, fees);
    }

    /// @notice Posts the federated round's result to the market; only once its fees are set.
    function submitResult(uint256 proposalId, MarketBase.Result calldata result) external onlyCoordinator {
        if (_fees[proposalId].length == 0) revert FederationFeesNotSet(proposalId);
        market.submitResult(proposalId, result);
    }

    /// @notice Gives up a round (e.g. too few regions left): the market refunds the consumer.
    function abandonTraining(uint256 proposalId, string calldata reason) external onlyCoordinator {
        market.abandonTraining(proposalId, reason);
    }

    /// @notice Adds `amount` of the coordinator's tokens to the federation's bond in the court.
    function depositBond(uint256 amount) external onlyCoordinator nonReentrant {
        IFederationCourt court = IFederationCourt(market.parameters().court);
        IERC20 token = market.paymentToken();
        token.safeTransferFrom(msg.sender, address(this), amount);
        token.forceApprove(address(court), amount);
        court.deposit(amount);
    }

    /// @notice Returns `amount` of the federation's free bond to the coordinator.
    function withdrawBond(uint256 amount) external onlyCoordinator nonReentrant {
        IFederationCourt(market.parameters().court).withdraw(amount);
        market.paymentToken().safeTransfer(msg.sender, amount);
    }

    /**
     * @notice Publishes `proposalId`'s round document: the signed quote, each member's share and
     *         fee, and where its SuperLink listens with the round's CA certificate.
     */
    function announceRound(uint256 proposalId, string calldata roundCid) external onlyCoordinator {
        _ours(proposalId);
        emit RoundAnnounced(proposalId, roundCid);
    }

    // ------------------------------------------------------------------ anyone's, members'

    /**
     * @notice A member binds the public key of its SuperNode to `proposalId`'s round: the
     *         coordinator registers exactly the keys its members bound, so a binding needs no
     *         signature of its own (the member sent it).
     */
    function bindKey(uint256 proposalId, bytes calldata publicKey) external {
        _ours(proposalId);
        if (publicKey.length == 0 || publicKey.length > 512) revert FederationBadKey(publicKey.length);
        address[] storage listed = _members;
        for (uint256 i = 0; i < listed.length; ++i) {
            if (listed[i] == msg.sender) {
                emit KeyBound(proposalId, msg.sender, publicKey);
                return;
            }
        }
        revert FederationNotMember(msg.sender);
    }

    /// @notice Books every member's fee of `proposalId` once the market released its cost here.
    function collect(uint256 proposalId) external nonReentrant {
        MarketBase.Proposal memory p = _ours(proposalId);
        uint256[] storage fees = _fees[proposalId];
        if (fees.length == 0) revert FederationFeesNotSet(proposalId);
        // released: a submitted result whose window closed and which was not overturned
        bool submitted = p.status == MarketBase.Status.Completed || p.status == MarketBase.Status.WtpMissed;
        if (!submitted || p.deadline != 0 || _collected[proposalId]) revert FederationNotReleased(proposalId);
        _collected[proposalId] = true;
        uint256 total;
        for (uint256 i = 0; i < fees.length; ++i) {
            _owed[_members[i]] += fees[i];
            total += fees[i];
        }
        emit FeesCollected(proposalId, total);
        if (market.creditOf(address(this)) != 0) market.withdraw();
    }

    /// @notice Pays the caller what `collect` booked for it.
    function withdraw() external nonReentrant {
        uint256 amount = _owed[msg.sender];
        if (amount == 0) revert FederationNothingOwed(msg.sender);
        _owed[msg.sender] = 0;
        emit FeeWithdrawn(msg.sender, amount);
        market.paymentToken().safeTransfer(msg.sender, amount);
    }

    function _ours(uint256 proposalId) private view returns (MarketBase.Proposal memory p) {
        p = market.proposal(proposalId);
        if (p.node != address(this)) revert FederationNotOurs(proposalId);
    }
}
