"""Contract errors as sentences: what went wrong, with which input, and what to do next.

:func:`explain_revert` turns a decoded revert (:class:`~visdm.errors.ContractRevertError`) into
one line for people. The table below has an entry for every custom error of every shipped
artifact, OpenZeppelin's included (a test iterates the artifacts' ABIs, so a new error without
a sentence fails it); the arguments are filled in, amounts in tokens, times as UTC dates. The
client applies it where a revert is decoded, so every caller — CLI, SDK, node — says the same.

The sentences know only the error and its arguments; workflows that can read the chain first
refuse earlier with the exact deadline and time left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eth_utils.crypto import keccak

from visdm.chain._explain_court import court_sentences
from visdm.chain._explain_federation import federation_sentences
from visdm.chain._explain_zk import zk_sentences
from visdm.errors import ContractRevertError, PanicError, RevertReasonError

__all__ = ["SENTENCES", "explain_revert", "sentence_for"]

_DECIMALS = 18
_MAX_UINT256 = 2**256 - 1

#: ``TrainingMarket.Status`` by value, with what it means for whoever meets it
_PROPOSAL_STATES: dict[int, tuple[str, str]] = {
    0: ("unknown", "check the proposal id with `visdm status ID`"),
    1: ("still in voting", "wait for its voting deadline, then anyone may `visdm tally {id}`"),
    2: (
        "approved",
        "its consumer starts training with `visdm train {id}`, or reclaims the escrow with "
        "`visdm reclaim {id}` after the start deadline",
    ),
    3: (
        "countered",
        "its consumer accepts the counter price with `visdm accept-counter {id}`, or lets it "
        "lapse and runs `visdm reclaim {id}` after the reply deadline",
    ),
    4: (
        "failed (no quorum)",
        "the offer was credited back to the consumer: `visdm withdraw` pays it out",
    ),
    5: (
        "rejected",
        "the offer was credited back to the consumer: `visdm withdraw` pays it out",
    ),
    6: (
        "training",
        "wait for the node's result (`visdm status {id}`); its consumer may `visdm reclaim {id}` "
        "once the training deadline has passed without one",
    ),
    7: (
        "completed",
        "providers claim with `visdm claim {id}` and the consumer fetches the model with "
        "`visdm model get {id}`",
    ),
    8: (
        "finished below its accuracy threshold",
        "the price was credited back to the consumer: `visdm withdraw` pays it out",
    ),
    9: ("cancelled", "its escrow has been returned; nothing is left to do on it"),
}
_ASSET_STATES = {0: "unknown", 1: "pending attestation", 2: "active", 3: "withdrawn"}
_BATCH_STATES = {0: "unknown", 1: "claimed", 2: "published", 3: "released", 4: "lapsed"}
_ROLES = {
    bytes(32): "DEFAULT_ADMIN_ROLE",
    bytes(keccak(text="GOVERNANCE_ROLE")): "GOVERNANCE_ROLE",
}
_PANICS = {
    0x01: "an internal assertion failed",
    0x11: "an arithmetic overflow or underflow",
    0x12: "a division or modulo by zero",
    0x21: "a value out of range for an enum",
    0x22: "a corrupt storage byte array",
    0x31: "a pop from an empty array",
    0x32: "an index out of bounds",
    0x41: "too much memory",
    0x51: "a call to an uninitialised function",
}


def _tokens(value: Any) -> str:
    amount = int(value)
    if amount == _MAX_UINT256:
        return "an unlimited amount"
    return f"{Decimal(amount) / (10**_DECIMALS):f} tokens ({amount} wei)"


def _when(value: Any) -> str:
    seconds = int(value)
    try:
        stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        return f"unix time {seconds}"
    return f"{stamp} (unix {seconds})"


def _text32(value: Any) -> str:
    raw = bytes(value) if isinstance(value, bytes | bytearray) else b""
    text = raw.rstrip(b"\0")
    try:
        return repr(text.decode()) if text else "an empty name"
    except UnicodeDecodeError:
        return "0x" + raw.hex()


def _role(value: Any) -> str:
    raw = bytes(value) if isinstance(value, bytes | bytearray) else b""
    return _ROLES.get(raw, "role 0x" + raw.hex())


def _proposal_state(args: Mapping[str, Any], *, wanted: str | None = None) -> str:
    pid = args.get("proposalId", "?")
    name, step = _PROPOSAL_STATES.get(int(args.get("status", 0)), ("in an unknown state", ""))
    head = f"proposal {pid} is {name}"
    if wanted:
        head += f", which {wanted}"
    return f"{head}: {step.format(id=pid)}" if step else head


def _ask(value: Any) -> str:
    return "accept" if int(value) == 0 else f"an ask of {_tokens(value)}"


def _terms(reason: Any) -> str:
    text = str(reason)
    hints = {
        "voting deadline outside the allowed window": (
            "choose a --voting-period between the market's minVotingPeriod and maxVotingPeriod "
            "(60 s and 30 days under the default rules), counted from the block the proposal "
            "lands in"
        ),
        "offer must be positive": "offer more than 0",
        "the compute node cannot be the consumer": "choose another node with --node",
    }
    return f"the proposal's terms were refused ({text}): " + hints.get(
        text, "correct that term and propose again"
    )


Explainer = Callable[[Mapping[str, Any]], str]

#: error name → sentence builder; every custom error of every shipped artifact has one
SENTENCES: dict[str, Explainer] = {
    # --- TrainingMarket ---------------------------------------------------------------------
    "TrainingMarketNotConsumer": lambda a: (
        f"{a['account']} is not this proposal's consumer (or not a registered consumer): act "
        "as the account that proposed it, or register with `visdm register --role consumer`"
    ),
    "TrainingMarketNotGovernance": lambda a: (
        f"{a['account']} does not hold GOVERNANCE_ROLE: only governance may change the market "
        "parameters; use a governance account (--account)"
    ),
    "TrainingMarketInvalidTerms": lambda a: _terms(a["reason"]),
    "TrainingMarketInvalidParameters": lambda a: (
        f"the market parameters were refused ({a['reason']}): correct that parameter and send "
        "them again"
    ),
    "TrainingMarketAssetNotSelectable": lambda a: (
        f"asset {a['assetId']} cannot be selected: it is not active (pending, withdrawn or "
        "unknown) or the selection asks for more of its samples than the node accepted; check "
        f"it with `visdm asset show {a['assetId']}` and leave it out"
    ),
    "TrainingMarketOwnAsset": lambda a: (
        f"asset {a['assetId']} belongs to {a['owner']}, the consumer or the chosen node: a "
        "proposal cannot buy its own data; leave the asset out"
    ),
    "TrainingMarketSelectionTooSmall": lambda a: (
        f"the selection has {a['samples']} samples of {a['providers']} provider(s); the market "
        f"trains on at least {a['minSamples']} samples of at least {a['minProviders']} "
        "providers: select more data"
    ),
    "TrainingMarketNodeNotAllowed": lambda a: (
        f"asset {a['assetId']} does not allow compute node {a['node']}'s region: choose a node "
        "in a region every selected asset allows, or leave the asset out"
    ),
    "TrainingMarketInactiveNode": lambda a: (
        f"compute node {a['node']} is not active (never admitted, or suspended by governance): "
        "choose an active node; `visdm propose` without --node lists them"
    ),
    "TrainingMarketUnknownProposal": lambda a: (
        f"proposal {a['proposalId']} does not exist on this market: check the id (and "
        "--rpc-url: another chain has other proposals)"
    ),
    "TrainingMarketWrongStatus": lambda a: _proposal_state(a, wanted="does not allow this step"),
    "TrainingMarketVotingClosed": lambda a: (
        f"voting on proposal {a['proposalId']} has closed: no vote can be cast or changed; "
        f"anyone may now `visdm tally {a['proposalId']}`"
    ),
    "TrainingMarketVotingOpen": lambda a: (
        f"voting on proposal {a['proposalId']} is still open: tally after its voting deadline "
        f"(`visdm status {a['proposalId']}` shows it)"
    ),
    "TrainingMarketTallyMismatch": lambda a: (
        f"the tally batches of proposal {a['proposalId']} do not repeat its selection exactly: "
        "tally from the proposal's signed document (`visdm tally` does), after "
        "`resetTally` if a batch was wrong"
    ),
    "TrainingMarketTallyBatch": lambda a: (
        f"a tally batch of proposal {a['proposalId']} holds {a['assets']} assets; every batch "
        "but the last must hold a multiple of 256: split the selection that way"
    ),
    "TrainingMarketTallyPriceChanged": lambda a: (
        f"this account's unfinished tally of proposal {a['proposalId']} used clearing price "
        f"{_tokens(a['price'])}: finish it with the same price, or call resetTally first"
    ),
    "TrainingMarketNotMedian": lambda a: (
        f"clearing price {_tokens(a['clearingPrice'])} is not the weighted lower median of the "
        f"asks ({a['atOrBelow']} of {a['participating']} participating samples ask at most it, "
        f"{a['below']} ask less): let `visdm tally` compute it"
    ),
    "TrainingMarketDeadlinePassed": lambda a: (
        f"the deadline of proposal {a['proposalId']} has passed: its consumer can now "
        f"`visdm reclaim {a['proposalId']}` the escrow"
    ),
    "TrainingMarketDeadlineNotPassed": lambda a: (
        f"the deadline of proposal {a['proposalId']} has not passed yet: reclaim after it "
        f"(`visdm status {a['proposalId']}` shows it)"
    ),
    "TrainingMarketBadQuote": lambda a: (
        f"the quote is not for proposal {a['proposalId']}, or its maxDuration is 0 or longer "
        "than the market's maxTrainingPeriod: ask the node for a fresh quote (`visdm train` "
        "does); the node must promise a duration the market allows"
    ),
    "TrainingMarketQuoteExpired": lambda a: (
        f"the node's quote for proposal {a['proposalId']} has expired: run "
        f"`visdm train {a['proposalId']}` again for a fresh one"
    ),
    "TrainingMarketBadSigner": lambda a: (
        f"the quote is signed by {a['signer']}, not by the node's registered signer: ask the "
        "proposal's node itself (check --node-url)"
    ),
    "TrainingMarketNotNode": lambda a: (
        f"{a['account']} is not the compute node this proposal names: only that node may "
        "post or abandon its result"
    ),
    "TrainingMarketInvalidProof": lambda a: (
        f"the payout proof for position {a['position']} (asset {a['assetId']}) of proposal "
        f"{a['proposalId']} does not match the committed payout root: claim with the node's "
        "published result (`visdm claim` does)"
    ),
    "TrainingMarketNotSelected": lambda a: (
        f"asset {a['assetId']} is not the asset proposal {a['proposalId']} selected at position "
        f"{a['position']}: claim with the node's published result (`visdm claim` does)"
    ),
    "TrainingMarketLeftRound": lambda a: (
        f"asset {a['assetId']} left proposal {a['proposalId']}'s round (its owner rejected or "
        "withdrew it): it earns nothing from this proposal"
    ),
    "TrainingMarketAlreadyClaimed": lambda a: (
        f"position {a['position']} of proposal {a['proposalId']} has already been claimed: "
        "`visdm withdraw` pays out credited payouts"
    ),
    "TrainingMarketOverClaim": lambda a: (
        f"a claim of {_tokens(a['amount'])} exceeds what is left unclaimed of proposal "
        f"{a['proposalId']}: the payout tree is inconsistent; claim with the node's published "
        "result"
    ),
    "TrainingMarketClaimPeriodOver": lambda a: (
        f"the claim period of proposal {a['proposalId']} ended at {_when(a['claimDeadline'])}: "
        "unclaimed payouts go to the market treasury (`visdm sweep`)"
    ),
    "TrainingMarketClaimPeriodOpen": lambda a: (
        f"payouts of proposal {a['proposalId']} are claimable until "
        f"{_when(a['claimDeadline'])}: sweep after that (and after its result is settled)"
    ),
    "TrainingMarketNothingToWithdraw": lambda a: (
        f"{a['account']} has no credit on the market: nothing to withdraw (payouts are "
        "credited by `visdm claim`, refunds after a tally or result)"
    ),
    # the result court's and the market's own challenge-window errors; the lambdas bind the
    # formatters late, as they are defined below this table
    **court_sentences(lambda v: _tokens(v), lambda v: _when(v)),  # noqa: PLW0108
    **zk_sentences(),  # the accuracy proof's check
    **federation_sentences(),  # federations of regional nodes
    # --- AssetRegistry -----------------------------------------------------------------------
    "AssetRegistryNotProvider": lambda a: (
        f"{a['account']} is not a registered provider: `visdm register --role provider` first"
    ),
    "AssetRegistryInvalidAsset": lambda a: (
        "the asset registration or attestation is incomplete (a zero manifest hash, samples "
        "root, sample count or metadata hash): register it again with `visdm asset add`"
    ),
    "AssetRegistryNoRegions": lambda a: (
        "the asset allows no region: allow at least one region in which compute nodes run"
    ),
    "AssetRegistryUnknownAsset": lambda a: (
        f"asset {a['assetId']} does not exist: check the id with `visdm asset list`"
    ),
    "AssetRegistryNotOwner": lambda a: (
        f"{a['account']} does not own asset {a['assetId']}: act as its owner (--account)"
    ),
    "AssetRegistryWrongStatus": lambda a: (
        f"asset {a['assetId']} is {_ASSET_STATES.get(int(a['status']), 'in an unknown state')}"
        ", which does not allow this step: check it with "
        f"`visdm asset show {a['assetId']}`"
    ),
    "AssetRegistryNodeNotAllowed": lambda a: (
        f"compute node {a['node']} is not in a region asset {a['assetId']} allows, or is not "
        "active: only a node the owner allowed may attest it"
    ),
    "AssetRegistryInvalidKeyNodes": lambda a: (
        "the key-holding nodes are empty, unsorted, repeated or differ from the registered "
        "ones: pass the nodes the manifest wraps keys for, in ascending address order"
    ),
    "AssetRegistryNotKeyHolder": lambda a: (
        f"compute node {a['node']} holds no wrapped key for asset {a['assetId']}: only a node "
        "the owner wrapped the data key for can attest it"
    ),
    "AssetRegistryTooManyAccepted": lambda a: (
        f"the attestation of asset {a['assetId']} accepts {a['acceptedCount']} samples but "
        f"the asset has only {a['sampleCount']}: attest at most that many"
    ),
    # --- StakeholderRegistry -----------------------------------------------------------------
    "StakeholderRegistryAlreadyRegistered": lambda a: (
        f"{a['account']} is already registered: `visdm whoami` shows its record"
    ),
    "StakeholderRegistryNotRegistered": lambda a: (
        f"{a['account']} is not registered: `visdm register --role provider|consumer` first"
    ),
    "StakeholderRegistryInvalidRole": lambda a: (
        f"role bits {a['roles']} are not provider (1), consumer (2) or both (3): pass "
        "--role provider, consumer or provider,consumer"
    ),
    "StakeholderRegistryInvalidKey": lambda a: (
        "the X25519 encryption key is zero: use the key `visdm account export-public` prints"
    ),
    "StakeholderRegistryUnknownRegion": lambda a: (
        f"region {_text32(a['name'])} does not exist: governance adds it with "
        "`visdm governance add-region NAME`"
    ),
    "StakeholderRegistryRegionExists": lambda a: (
        f"region {_text32(a['name'])} already exists: use it as it is"
    ),
    "StakeholderRegistryTooManyRegions": lambda a: (
        "the registry already holds 256 regions, its maximum: reuse an existing region"
    ),
    "StakeholderRegistryUnknownNode": lambda a: (
        f"{a['node']} is not an admitted compute node: admit it first with "
        "`visdm governance admit-node`"
    ),
    "StakeholderRegistryInvalidNode": lambda a: (
        f"compute node {a['node']} needs a non-zero address and signer and an endpoint: pass "
        "--endpoint (and --signer)"
    ),
    # --- DelegationRegistry -------------------------------------------------------------------
    "DelegationRegistryInvalidDelegate": lambda a: (
        f"{a['delegatee']} cannot be your delegate (yourself or the zero address): name "
        "another account"
    ),
    "DelegationRegistryCycle": lambda a: (
        f"delegating from {a['delegator']} to {a['delegatee']} would close a cycle (the chain "
        "from that delegate leads back to you): choose another delegate"
    ),
    "DelegationRegistryTooDeep": lambda a: (
        f"delegating from {a['delegator']} would make a chain {a['depth']} hops long, over "
        "the registry's maximum: delegate to someone nearer the end of the chain"
    ),
    "DelegationRegistryNotDelegating": lambda a: (
        f"{a['delegator']} delegates to nobody: there is nothing to undelegate"
    ),
    "DelegationRegistryUnchanged": lambda a: (
        f"you already delegate to {a['delegatee']}: nothing changed"
    ),
    "CheckpointUnorderedInsertion": lambda a: (
        "a delegation checkpoint went back in time (the chain's clock moved backwards): retry "
        "in a later block"
    ),
    # --- Collective and CollectiveFactory -------------------------------------------------------
    "CollectiveInvalidName": lambda a: "a collective's name must have 1 to 32 bytes: shorten it",
    "CollectiveInvalidSteward": lambda a: (
        f"steward {a['steward']} is the zero address: name a real account with --steward"
    ),
    "CollectiveFeeAboveCap": lambda a: (
        f"a fee of {a['feeBps']} bps is above the cap of {a['maxFeeBps']} bps every collective "
        "has on chain: choose a lower fee"
    ),
    "CollectivePolicyDelayTooLong": lambda a: (
        f"a policy delay of {a['policyDelay']} s is longer than the {a['maxPolicyDelay']} s a "
        "collective may set: choose a shorter --policy-delay"
    ),
    "CollectiveNotSteward": lambda a: (
        f"{a['account']} is not this collective's steward: only the steward changes the fee, "
        "the steward or withdraws fees (`visdm collective show` names it)"
    ),
    "CollectiveAlreadyMember": lambda a: f"{a['account']} is already a member: nothing changed",
    "CollectiveNotMember": lambda a: (
        f"{a['account']} is not a member of this collective: join with `visdm collective join`"
    ),
    "CollectiveNotDelegating": lambda a: (
        f"{a['account']} does not delegate its market vote to this collective: `visdm "
        "collective join` delegates for you"
    ),
    "CollectiveExitLocked": lambda a: (
        f"{a['account']} left recently: its deposit stays chargeable for its last rounds until "
        f"{_when(a['unlockAt'])}; withdraw or join again after that"
    ),
    "CollectiveInArrears": lambda a: (
        f"{a['account']} owes the collective {_tokens(a['arrears'])} of fees: pay them with "
        "`visdm collective deposit` first"
    ),
    "CollectiveInvalidFloor": lambda a: (
        f"a floor of {_tokens(a['floor'])} per sample is above the highest a collective "
        "stores (2^96 - 2 wei): choose a lower floor"
    ),
    "CollectiveNoWeight": lambda a: (
        f"{a['account']} has no attested samples in the assets it listed: list Active assets "
        "(`visdm asset list`), or wait for their attestation"
    ),
    "CollectiveTooManyAssets": lambda a: (
        f"{a['count']} assets were listed, at most {a['maxAssets']} count: list your largest"
    ),
    "CollectiveAssetsNotIncreasing": lambda a: (
        "the asset ids must be strictly increasing, each once: sort them and drop repeats"
    ),
    "CollectiveNotAssetOwner": lambda a: (
        f"asset {a['assetId']} is not owned by {a['account']}: list only your own assets"
    ),
    "CollectiveAssetsMismatch": lambda a: (
        f"the asset list given is not the one {a['account']} last set: read it from the "
        "member's MemberJoined or MemberAssetsSet event"
    ),
    "CollectiveNothingPending": lambda a: (
        f"{a['account']} has no vote waiting to be counted: nothing to settle"
    ),
    "CollectivePolicyPending": lambda a: (
        f"{a['account']}'s vote counts only from {_when(a['effectiveAt'])} (the collective's "
        "policy delay): settle it then"
    ),
    "CollectiveNoPolicy": lambda a: (
        "the collective has no policy yet (no member's floor vote counts): members' votes "
        "count after the policy delay; settle them with `visdm collective policy --settle`"
    ),
    "CollectiveUnknownProposal": lambda a: (
        f"proposal {a['proposalId']} does not exist: check the id with `visdm status`"
    ),
    "CollectiveVotingClosed": lambda a: (
        f"proposal {a['proposalId']} is no longer in voting: the collective's vote can no "
        "longer change it"
    ),
    "CollectiveAlreadyVoted": lambda a: (
        f"the collective already voted {_ask(a['ask'])} on proposal {a['proposalId']}, which "
        "is what its policy says now: nothing changed"
    ),
    "CollectiveNoPayouts": lambda a: (
        f"proposal {a['proposalId']} has no payouts (it is not completed): a fee is charged "
        "only on payouts"
    ),
    "CollectiveInvalidProof": lambda a: (
        f"the payout leaf for asset {a['assetId']} at position {a['position']} does not prove "
        f"against proposal {a['proposalId']}'s payout root: use the published payout tree"
    ),
    "CollectiveNotSelected": lambda a: (
        f"proposal {a['proposalId']} did not select asset {a['assetId']} at position "
        f"{a['position']}: the market would not pay that leaf, so it carries no fee"
    ),
    "CollectiveLeftRound": lambda a: (
        f"asset {a['assetId']} left proposal {a['proposalId']}'s round: it is not paid, so "
        "there is no fee to charge"
    ),
    "CollectiveAlreadyCharged": lambda a: (
        f"the fee on position {a['position']} of proposal {a['proposalId']} was already "
        "charged: each payout carries it once"
    ),
    "CollectiveDidNotVote": lambda a: (
        f"the collective did not vote on proposal {a['proposalId']}: its payouts carry no fee, "
        "charge only proposals it voted on"
    ),
    "CollectiveOwnVote": lambda a: (
        f"{a['account']} voted on proposal {a['proposalId']} itself: the collective did not "
        "price its assets there, so no fee is due"
    ),
    "CollectiveNotDelegated": lambda a: (
        f"{a['account']} did not delegate to the collective at proposal {a['proposalId']}'s "
        "deadline: the collective did not price its assets there, so no fee is due"
    ),
    "CollectiveNotMemberThen": lambda a: (
        f"{a['account']} was not a member at proposal {a['proposalId']}'s deadline: no fee is "
        "due on its payout"
    ),
    "CollectiveInvalidAmount": lambda a: (
        f"an amount of {_tokens(a['amount'])} cannot be deposited: give more than 0 and less "
        "than 2^128 wei in all"
    ),
    "CollectiveNothingToWithdraw": lambda a: (
        f"{a['account']} has nothing to withdraw from this collective: `visdm collective "
        "show` lists deposits, their unlock times and the steward's balance"
    ),
    "CollectiveFactoryNameTaken": lambda a: (
        f"a collective named {str(a['name'])[:40]!r} exists already ({a['collective']}): choose "
        "another name"
    ),
    # --- ScoringPool -------------------------------------------------------------------------
    "ScoringPoolNotGovernance": lambda a: (
        f"{a['account']} does not hold GOVERNANCE_ROLE: only governance sets the scoring pool's "
        "terms and reference; use a governance account (--account)"
    ),
    "ScoringPoolInvalidTerms": lambda a: f"the scoring pool refused: {a['reason']}",
    "ScoringPoolNoReference": lambda a: (
        "the scoring pool has no reference set or terms yet: governance sets them with "
        "`visdm scoring reference` first"
    ),
    "ScoringPoolNotNode": lambda a: (
        f"{a['account']} is not an active compute node: only admitted, unsuspended nodes score"
    ),
    "ScoringPoolEmptyBatch": lambda a: (
        "a batch needs at least one asset with accepted samples, and one key-node list per "
        "asset: `visdm scoring claim` picks them"
    ),
    "ScoringPoolAssetsNotIncreasing": lambda a: (
        f"asset {a['assetId']} is out of order: list a batch's assets in increasing id order"
    ),
    "ScoringPoolAssetNotScorable": lambda a: (
        f"asset {a['assetId']} is not active or does not allow {a['node']}'s region: choose "
        "another asset"
    ),
    "ScoringPoolNoKey": lambda a: (
        f"{a['node']} holds no data key for asset {a['assetId']} (or the key-node list differs "
        "from its registration): its owner did not let this node decrypt it"
    ),
    "ScoringPoolOwnAsset": lambda a: (
        f"asset {a['assetId']} belongs to {a['owner']}, the scoring node itself: a node cannot "
        "score its own data"
    ),
    "ScoringPoolAssetLocked": lambda a: (
        f"asset {a['assetId']} is held by batch {a['batchId']} until {_when(a['until'])}: "
        "choose another asset, or claim it after that"
    ),
    "ScoringPoolLapsed": lambda a: (
        f"this node let batch {a['batchId']} lapse with asset {a['assetId']}: other nodes have "
        f"it first until {_when(a['until'])}"
    ),
    "ScoringPoolRoundsDone": lambda a: (
        f"asset {a['assetId']} has had its {a['rounds']} paid scoring rounds: choose another"
    ),
    "ScoringPoolBatchTooLarge": lambda a: (
        f"the batch holds {a['samples']} samples, the pool takes at most {a['maxSamples']}: "
        "claim fewer assets"
    ),
    "ScoringPoolInsufficientFunds": lambda a: (
        f"the batch would be paid {_tokens(a['needed'])} but the pool has only "
        f"{_tokens(a['available'])} free: claim fewer samples, or fund it (`visdm scoring fund`)"
    ),
    "ScoringPoolOpenBatch": lambda a: (
        f"{a['node']} still holds batch {a['batchId']}: publish its scores or release it first"
    ),
    "ScoringPoolUnknownBatch": lambda a: (
        f"there is no batch {a['batchId']}: `visdm scoring status` lists them"
    ),
    "ScoringPoolNotBatchNode": lambda a: (
        f"batch {a['batchId']} was claimed by another node, not {a['account']}: act as its "
        "node (--account)"
    ),
    "ScoringPoolWrongStatus": lambda a: (
        f"batch {a['batchId']} is {_BATCH_STATES.get(int(a['status']), 'unknown')}, no longer "
        "claimed: nothing more can be done with it"
    ),
    "ScoringPoolDeadlinePassed": lambda a: (
        f"batch {a['batchId']}'s deadline {_when(a['deadline'])} has passed: it lapsed unpaid; "
        "claim a new batch"
    ),
    "ScoringPoolDeadlineNotPassed": lambda a: (
        f"batch {a['batchId']} runs until {_when(a['deadline'])}: lapse it only after that"
    ),
    "ScoringPoolAssetsMismatch": lambda a: (
        f"the asset list differs from the one batch {a['batchId']} was claimed with: pass the "
        "assets of its BatchClaimed event"
    ),
    "ScoringPoolTooManyScored": lambda a: (
        f"batch {a['batchId']} holds {a['samples']} samples, {a['scored']} cannot have been "
        "scored: publish the count the scores document holds"
    ),
    "ScoringPoolInvalidResult": lambda a: f"the scores were refused: {a['reason']}",
    "ScoringPoolNothingToWithdraw": lambda a: (
        f"{a['account']} has no scoring pay to withdraw: publish a batch's scores first"
    ),
    # --- DevToken and OpenZeppelin's ERC-20 ----------------------------------------------------
    "DevTokenFaucetLimit": lambda a: (
        f"the faucet mints at most {_tokens(a['limit'])} per call, {_tokens(a['requested'])} "
        "was asked for: ask in smaller steps"
    ),
    "ERC20InsufficientBalance": lambda a: (
        f"{a['sender']} holds {_tokens(a['balance'])} of the payment token but this needs "
        f"{_tokens(a['needed'])}: get more of the payment token first"
    ),
    "ERC20InsufficientAllowance": lambda a: (
        f"{a['spender']} may spend only {_tokens(a['allowance'])} of this account's payment "
        f"token but needs {_tokens(a['needed'])}: approve more tokens to it"
    ),
    "ERC20InvalidApprover": lambda a: (
        f"approver {a['approver']} is the zero address: approve from a real account"
    ),
    "ERC20InvalidReceiver": lambda a: (
        f"receiver {a['receiver']} is the zero address: send tokens to a real account"
    ),
    "ERC20InvalidSender": lambda a: (
        f"sender {a['sender']} is the zero address: send tokens from a real account"
    ),
    "ERC20InvalidSpender": lambda a: (
        f"spender {a['spender']} is the zero address: approve a real account"
    ),
    "SafeERC20FailedOperation": lambda a: (
        f"the payment token {a['token']} refused a transfer: check the balance and allowance "
        "of the paying account on that token"
    ),
    # --- OpenZeppelin's access control, signatures, strings and reentrancy guard --------------
    "AccessControlUnauthorizedAccount": lambda a: (
        f"{a['account']} lacks {_role(a['neededRole'])}: act as an account that holds it "
        "(--account), or have an admin grant it"
    ),
    "AccessControlBadConfirmation": lambda a: (
        "renouncing a role must name the caller's own address: pass your own address"
    ),
    "ECDSAInvalidSignature": lambda a: (
        "the signature does not recover to any signer: ask the node for a fresh quote"
    ),
    "ECDSAInvalidSignatureLength": lambda a: (
        f"the signature has {a['length']} bytes, not 65: pass the node's signature unchanged"
    ),
    "ECDSAInvalidSignatureS": lambda a: (
        "the signature's s value is in the upper half of the curve order (malleable): ask the "
        "node for a fresh quote"
    ),
    "InvalidShortString": lambda a: (
        "a stored short string is malformed: deploy the contracts again with `visdm deploy`"
    ),
    "StringTooLong": lambda a: (
        f"the string {str(a['str'])[:40]!r} is longer than 31 bytes: shorten it"
    ),
    "ReentrancyGuardReentrantCall": lambda a: (
        "the contract was re-entered during a call (a malicious or broken token?): the "
        "transaction was undone; use the marketplace's payment token"
    ),
    # --- the test-only probe contract ----------------------------------------------------------
    "RevertProbeCustom": lambda a: (
        f"the probe refused {a['who']} with amount {a['amount']}: a test contract, nothing to do"
    ),
    # --- built-in reverts ----------------------------------------------------------------------
    "Error": lambda a: (
        f"the contract refused with the reason {str(a.get('reason', ''))[:200]!r}: correct the "
        "input it names"
    ),
    "Panic": lambda a: (
        f"the contract hit {_PANICS.get(int(str(a.get('code', '0')), 0), 'an internal fault')}"
        f" (panic {a.get('code')}): an input far out of range, or a contract bug; report it "
        "with the command that caused it"
    ),
    "UnknownError": lambda a: (
        "the contract reverted with an error this client does not know: the contracts may be "
        "newer than this visdm; update it, or check --rpc-url and the deployment"
    ),
}


def sentence_for(error_name: str, error_args: Mapping[str, Any]) -> str:
    """The sentence for one decoded error (a generic one for a name outside the table)."""
    builder = SENTENCES.get(error_name)
    if builder is None:
        args = ", ".join(f"{k}={v!r}" for k, v in error_args.items())
        return f"the contract refused with {error_name}({args}): see the contract's NatSpec"
    try:
        return builder(error_args)
    except (KeyError, TypeError, ValueError):  # arguments of another shape than declared
        return f"the contract refused with {error_name}"


def explain_revert(error: ContractRevertError) -> str:
    """The one-line message for ``error``: the action, the sentence, the error's name."""
    args = error.error_args
    if isinstance(error, RevertReasonError):
        args = {"reason": error.reason}
    elif isinstance(error, PanicError):
        args = {"code": hex(error.code)}
    where = f"{error.action} refused" if error.action else "call refused"
    text = f"{where}: {sentence_for(error.error_name, args)} [{error.error_name}]"
    # a reason string comes from whatever contract reverted: keep the message on one line
    return "".join(c if c.isprintable() else " " for c in text)
