// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {TrainingMarket} from "../TrainingMarket.sol";
import {MarketBase} from "../market/MarketBase.sol";

/// @notice ezkl's reusable Halo2 verifier, generated per ezkl version and deployed once.
interface IHalo2VerifierReusable {
    function verifyProof(bytes calldata proof, uint256[] calldata instances, bytes32[] memory vka)
        external
        returns (bool success, bytes32 vkaDigest, int256[] memory rescaled);
}

/**
 * @title ZkAccuracyCheck
 * @notice Checks an accuracy claim with a zero-knowledge proof on k validation samples that
 *         chain randomness draws after the claim is committed.
 * @dev A claim commits the circuit (digest of its verifying-key artifact, whose fixed columns
 *      are the model's weights), the model hash it says the circuit was built from, a Merkle
 *      root over (position, keccak256 of the sample's public inputs, label) for the whole
 *      validation set, its size and the claimed accuracy. The blockhash of the block after the
 *      commitment draws k positions with replacement, so the count c of correctly classified
 *      drawn samples of a node with true accuracy p is Bin(k, p). The proof's public inputs are
 *      the drawn samples' pixels or their Poseidon hashes (checked against the root) and their
 *      logits (argmax compared with the committed labels); the claim is accepted when
 *      c >= c_min, the largest count
 *      with P[Bin(k, claimed) < c_min] <= 1 %.
 *
 *      Bound to a market (`market` non-zero), a claim is a result's: its id is the proposal
 *      id, only the proposal's node or its registered signer commits it, only while the result
 *      is in its challenge window, and the model hash and accuracy must be the ones the node
 *      committed in `submitResult`; the market's ResultCourt then waits for the claim before
 *      the result counts. Unbound (zero market) any caller commits any id: a stand-alone check
 *      no court accepts. Not checked here: that the circuit is the committed model's and the
 *      root the consumer's validation set; anyone with the model file and the node's circuit
 *      settings (`circuitCid`), or the validation set, recomputes both off chain.
 */
contract ZkAccuracyCheck {
    enum Status {
        None,
        Pending,
        Accepted,
        Rejected,
        Expired
    }

    struct Claim {
        address node;
        uint64 drawBlock;
        uint32 sampleCount;
        uint16 accuracyBps;
        uint16 features;
        uint16 classes;
        Status status;
        uint16 correct;
        bytes32 vkaDigest;
        bytes32 modelHash;
        bytes32 sampleRoot;
    }

    /// @notice one proof for k samples
    struct Opening {
        uint256[] instances;
        bytes32[] vka;
        bytes proof;
        bytes32[][] paths; // Merkle path of each drawn sample's leaf
        uint256[] labels;
    }

    uint256 private constant _BPS = 10_000;
    uint256 private constant _FALSE_REJECT_BPS = 100;
    uint256 private constant _MODE_WEIGHT = 1e36;
    uint256 private constant _FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617;

    IHalo2VerifierReusable public immutable verifier;
    /// @notice samples checked per claim; a circuit proves exactly this many
    uint16 public immutable samples;
    /// @notice the market whose results the claims are (zero: unbound, claims of anything)
    TrainingMarket public immutable market;

    mapping(uint256 => Claim) private _claims;

    event ClaimCommitted(
        uint256 indexed claimId, address indexed node, uint16 accuracyBps, bytes32 vkaDigest, string circuitCid
    );
    event ClaimDecided(uint256 indexed claimId, bool accepted, uint16 correct, uint16 minCorrect);
    event ClaimExpired(uint256 indexed claimId);

    error ZkAccuracyCheckBadInput(string what);
    error ZkAccuracyCheckWrongStatus(uint256 claimId, Status status);
    error ZkAccuracyCheckNotNode(address caller);
    error ZkAccuracyCheckNotDrawnYet(uint256 claimId, uint256 drawBlock);
    error ZkAccuracyCheckInvalidProof(uint256 claimId);
    error ZkAccuracyCheckWrongCircuit(bytes32 expected, bytes32 given);
    error ZkAccuracyCheckNotDrawnSample(uint256 position, uint256 index);
    error ZkAccuracyCheckNoOpenResult(uint256 claimId);
    error ZkAccuracyCheckNotTheResult(uint256 claimId, string field);

    /**
     * @param verifier_ the reusable Halo2 verifier the circuits' artifacts are registered with
     * @param samples_ k, 1..256
     * @param market_ the market whose results are claimed, or zero for an unbound check
     */
    constructor(IHalo2VerifierReusable verifier_, uint16 samples_, TrainingMarket market_) {
        if (samples_ == 0 || samples_ > 256) revert ZkAccuracyCheckBadInput("samples");
        verifier = verifier_;
        samples = samples_;
        market = market_;
    }

    /**
     * @notice Commit an accuracy claim before its samples are drawn. Bound to a market: only
     *         the node of proposal `claimId` (or its signer), while its Completed result is in
     *         its challenge window, with the result's model hash and accuracy.
     * @param claimId a fresh id (bound: the result's proposal id)
     * @param vkaDigest keccak256 of the circuit's verifying-key artifact
     * @param modelHash the model hash the circuit was built from (the result's)
     * @param sampleRoot Merkle root over (position, inputs hash, label) of the validation set
     * @param sampleCount validation samples under the root
     * @param features public inputs per sample (its pixels, or one hash of them); classes logits per sample
     * @param accuracyBps the claimed accuracy
     * @param circuitCid where the circuit's settings file is stored (only emitted): with the
     *        model file it rebuilds the verifying-key artifact
     */
    function commit(
        uint256 claimId,
        bytes32 vkaDigest,
        bytes32 modelHash,
        bytes32 sampleRoot,
        uint32 sampleCount,
        uint16 features,
        uint16 classes,
        uint16 accuracyBps,
        string calldata circuitCid
    ) external {
        if (_claims[claimId].status != Status.None) {
            revert ZkAccuracyCheckWrongStatus(claimId, _claims[claimId].status);
        }
        if (address(market) != address(0)) _checkResult(claimId, modelHash, accuracyBps);
        if (sampleCount == 0) revert ZkAccuracyCheckBadInput("sampleCount");
        if (features == 0 || classes < 2) revert ZkAccuracyCheckBadInput("shape");
        if (accuracyBps > _BPS) revert ZkAccuracyCheckBadInput("accuracyBps");
        _claims[claimId] = Claim({
            node: msg.sender,
            drawBlock: uint64(block.number + 1),
            sampleCount: sampleCount,
            accuracyBps: accuracyBps,
            features: features,
            classes: classes,
            status: Status.Pending,
            correct: 0,
            vkaDigest: vkaDigest,
            modelHash: modelHash,
            sampleRoot: sampleRoot
        });
        emit ClaimCommitted(claimId, msg.sender, accuracyBps, vkaDigest, circuitCid);
    }

    /// @notice The claim as committed, with its status and the count of correct samples.
    function claim(uint256 claimId) external view returns (Claim memory) {
        return _claims[claimId];
    }

    /// @notice Where claim `claimId` stands (None: never committed).
    function statusOf(uint256 claimId) external view returns (Status) {
        return _claims[claimId].status;
    }

    /**
     * @notice The validation positions drawn for a claim (with replacement), once the block
     *         after its commitment is mined and while its hash is readable (256 blocks).
     * @dev Dev chains: a block hash. A block proposer can withhold a block to redraw, so a
     *      production chain takes a VRF output (e.g. Chainlink VRF) requested at commit time.
     */
    function drawnIndices(uint256 claimId) public view returns (uint256[] memory indices) {
        Claim storage c = _claims[claimId];
        if (c.status != Status.Pending) revert ZkAccuracyCheckWrongStatus(claimId, c.status);
        bytes32 r = blockhash(c.drawBlock);
        if (r == bytes32(0)) revert ZkAccuracyCheckNotDrawnYet(claimId, c.drawBlock);
        indices = new uint256[](samples);
        for (uint256 i = 0; i < samples; ++i) {
            indices[i] = uint256(keccak256(abi.encode(r, claimId, i))) % c.sampleCount;
        }
    }

    /**
     * @notice Check a claim's proof on its drawn samples and accept or reject the claim.
     * @dev Reverts (leaving the claim pending) when the proof, the circuit or a sample's path
     *      does not verify; a valid proof with too few correct samples rejects the claim.
     */
    function prove(uint256 claimId, Opening calldata o) external returns (bool accepted) {
        Claim storage c = _claims[claimId];
        if (msg.sender != c.node) revert ZkAccuracyCheckNotNode(msg.sender);
        uint256[] memory indices = drawnIndices(claimId);
        uint256 k = samples;
        uint256 d = c.features;
        uint256 classes = c.classes;
        if (o.instances.length != k * (d + classes) || o.paths.length != k || o.labels.length != k) {
            revert ZkAccuracyCheckBadInput("layout");
        }
        bytes32 digest = keccak256(abi.encodePacked(o.vka));
        if (digest != c.vkaDigest) revert ZkAccuracyCheckWrongCircuit(c.vkaDigest, digest);
        if (!_verified(o)) revert ZkAccuracyCheckInvalidProof(claimId);
        uint256 correct = 0;
        for (uint256 i = 0; i < k; ++i) {
            bytes32 inputs = keccak256(abi.encodePacked(o.instances[i * d:(i + 1) * d]));
            bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(indices[i], inputs, o.labels[i]))));
            if (!MerkleProof.verifyCalldata(o.paths[i], c.sampleRoot, leaf)) {
                revert ZkAccuracyCheckNotDrawnSample(i, indices[i]);
            }
            if (_argmax(o.instances, k * d + i * classes, classes) == o.labels[i]) ++correct;
        }
        uint256 need = minCorrect(k, c.accuracyBps);
        accepted = correct >= need;
        c.correct = uint16(correct);
        c.status = accepted ? Status.Accepted : Status.Rejected;
        emit ClaimDecided(claimId, accepted, uint16(correct), uint16(need));
    }

    /// @notice A claim whose draw can no longer be read (256 blocks later) without a proof fails.
    function expire(uint256 claimId) external {
        Claim storage c = _claims[claimId];
        if (c.status != Status.Pending) revert ZkAccuracyCheckWrongStatus(claimId, c.status);
        if (block.number <= uint256(c.drawBlock) + 256) revert ZkAccuracyCheckNotDrawnYet(claimId, c.drawBlock);
        c.status = Status.Expired;
        emit ClaimExpired(claimId);
    }

    /**
     * @notice c_min: the largest c with P[Bin(k, a) < c] <= 1 %, a = accuracyBps / 10,000.
     * @dev Binomial weights walked from the mode (weight 1e36) by the ratios of neighbouring
     *      terms, so none exceeds 1e36 and the products stay below 1e36 * 256 * 1e4.
     */
    function minCorrect(uint256 k, uint256 accuracyBps) public pure returns (uint256) {
        if (k == 0 || k > 256 || accuracyBps > _BPS) revert ZkAccuracyCheckBadInput("k or accuracy");
        uint256 a = accuracyBps;
        uint256 b = _BPS - accuracyBps;
        uint256 mode = (k + 1) * a / _BPS;
        if (mode > k) mode = k;
        uint256[] memory w = new uint256[](k + 1);
        w[mode] = _MODE_WEIGHT;
        // a > 0 whenever mode > 0, and b > 0 whenever mode < k: no division by zero
        for (uint256 j = mode; j > 0; --j) {
            w[j - 1] = w[j] * j * b / ((k - j + 1) * a);
        }
        for (uint256 j = mode; j < k; ++j) {
            w[j + 1] = w[j] * (k - j) * a / ((j + 1) * b);
        }
        uint256 total = 0;
        for (uint256 j = 0; j <= k; ++j) {
            total += w[j];
        }
        uint256 cdf = 0;
        for (uint256 j = 0; j <= k; ++j) {
            cdf += w[j];
            if (cdf * _BPS > _FALSE_REJECT_BPS * total) return j;
        }
        return k;
    }

    /// @dev A bound claim is the open result's: its node or signer, its model and accuracy.
    function _checkResult(uint256 claimId, bytes32 modelHash, uint16 accuracyBps) private view {
        MarketBase.Proposal memory p = market.proposal(claimId);
        // a Completed result keeps its window's end in `deadline` until the court settles it
        if (p.status != MarketBase.Status.Completed || p.deadline == 0 || block.timestamp >= p.deadline) {
            revert ZkAccuracyCheckNoOpenResult(claimId);
        }
        (,, address signer) = market.stakeholders().nodeRegions(p.node); // a federation's: its coordinator's
        if (msg.sender != p.node && msg.sender != signer) revert ZkAccuracyCheckNotNode(msg.sender);
        if (modelHash != p.modelHash) revert ZkAccuracyCheckNotTheResult(claimId, "modelHash");
        if (accuracyBps != p.accuracyBps) revert ZkAccuracyCheckNotTheResult(claimId, "accuracyBps");
    }

    /// @dev The verifier reverts on a bad proof; on a good one it answers (1, vka digest) and
    ///      then rescaled instances in a layout the ABI decoder refuses, so only the first two
    ///      words are read, from a low-level call.
    function _verified(Opening calldata o) private returns (bool) {
        (bool ok, bytes memory answer) =
            address(verifier).call(abi.encodeCall(IHalo2VerifierReusable.verifyProof, (o.proof, o.instances, o.vka)));
        if (!ok || answer.length < 64) return false;
        uint256 success;
        bytes32 digest;
        assembly ("memory-safe") {
            success := mload(add(answer, 0x20))
            digest := mload(add(answer, 0x40))
        }
        return success == 1 && digest == keccak256(abi.encodePacked(o.vka));
    }

    /// @dev argmax of `count` signed field elements from `start`, the first on ties
    function _argmax(uint256[] calldata values, uint256 start, uint256 count) private pure returns (uint256 best) {
        int256 top = _signed(values[start]);
        for (uint256 j = 1; j < count; ++j) {
            int256 v = _signed(values[start + j]);
            if (v > top) {
                top = v;
                best = j;
            }
        }
    }

    /// @dev the upper half of the field holds negative numbers
    function _signed(uint256 x) private pure returns (int256) {
        if (x >= _FIELD) revert ZkAccuracyCheckBadInput("instance outside the field");
        // both branches are below 2^254, so the casts cannot overflow
        return x > _FIELD / 2 ? -int256(_FIELD - x) : int256(x);
    }
}
