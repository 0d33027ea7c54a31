"""A hand-made marketplace history for the index tests: chain events and real documents.

:class:`World` plays the contracts (one event per block, args shaped as web3 decodes them) and
writes the documents those events point to into a :class:`MemoryStore`: signed manifests,
metadata documents built with :class:`visdm.metadata.AssetMetadata`, and result and scores
documents in the compute node's format, and signed proposal documents whose selection matches
the event's ``assetsHash`` and ``assetsRoot``. :class:`FakeSource` serves the events (and the
positions each tally took out of the round) to the indexer, and can fork the chain to test
reorganisations.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from visdm.index import TABLES, ChainEvent, Database, IndexConfig, Indexer
from visdm.manifest import (
    AssetManifest,
    Licence,
    Location,
    ManifestKey,
    ManifestSample,
    manifest_hash,
    sign_manifest,
)
from visdm.merkle import PositionalMerkleTree, StandardMerkleTree
from visdm.metadata import AssetMetadata, DuplicateLink, ImageMetadata, SampleMetadata
from visdm.proposals import SelectedAsset, TrainingProposal, ValidationSetRef, sign_proposal
from visdm.storage import MemoryStore, cid_digest, compute_cid
from visdm.types import Address, Cid, PHash, SampleId

CHAIN_ID = 31337
CONTRACTS = {
    "StakeholderRegistry": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "AssetRegistry": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "TrainingMarket": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
}
START_BLOCK = 1
PAYOUT_LEAF = ("uint256", "uint256", "uint256")
REJECT = 2**256 - 1
SPEC_JSON = b'{"architecture":"mlp"}'
VALIDATION_HASH = keccak(text="validation")
ZERO = "0x" + "00" * 20
CREATED = datetime(2025, 1, 1, tzinfo=UTC)


def account(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(keccak(text=f"visdm-index-test/{name}"))
    return acct


PROVIDER, PROVIDER2, CONSUMER, NODE, STRANGER = (
    account(n) for n in ("provider", "provider2", "consumer", "node", "stranger")
)


@dataclass
class Image:
    """The public metadata of one made-up sample."""

    label: str
    width: int = 28
    height: int = 28
    fmt: str = "PNG"
    brightness: float = 100.0
    contrast: float = 50.0
    blur: float = 500.0
    phash: int = 0
    byte_size: int | None = 700


class FakeSource:
    """An :class:`~visdm.index.EventSource` over the world's events."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.fork = 0
        self.calls = 0

    def head(self) -> int:
        return self.world.block

    def block_hash(self, number: int) -> str:
        return "0x" + keccak(text=f"block {number} fork {self.fork}").hex()

    def events(self, start: int, end: int) -> list[ChainEvent]:
        self.calls += 1
        return [e for e in self.world.events if start <= e.block_number <= end]

    def excluded_positions(self, proposal_id: int) -> set[int]:
        return set(self.world.exclusions.get(proposal_id, ()))


@dataclass
class World:
    store: MemoryStore = field(default_factory=MemoryStore)
    events: list[ChainEvent] = field(default_factory=list)
    block: int = START_BLOCK
    assets: int = 0
    proposals: int = 0
    sample_ids: dict[tuple[int, int], str] = field(default_factory=dict)
    manifest_hashes: dict[int, bytes] = field(default_factory=dict)
    owners: dict[int, str] = field(default_factory=dict)
    #: each proposal's selected asset ids, in proposal order
    selections: dict[int, list[int]] = field(default_factory=dict)
    #: the positions each tally took out of the round (what the market's bitmap says)
    exclusions: dict[int, set[int]] = field(default_factory=dict)
    payout_trees: dict[int, StandardMerkleTree] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = FakeSource(self)

    # --- plumbing -------------------------------------------------------------------------
    def emit(self, contract: str, event_name: str, /, **args: Any) -> ChainEvent:
        self.block += 1
        event = ChainEvent(
            block_number=self.block,
            log_index=0,
            tx_hash="0x" + keccak(text=f"tx {self.block}").hex(),
            contract=contract,
            name=event_name,
            args=args,
        )
        self.events.append(event)
        return event

    def mine(self, blocks: int = 1) -> None:
        """Blocks without marketplace events."""
        self.block += blocks

    def indexer(
        self, db: Database, *, confirmations: int = 0, max_blocks: int = 2000, **kwargs: Any
    ) -> Indexer:
        return Indexer(
            db,
            self.source,
            self.store,
            chain_id=CHAIN_ID,
            contracts=dict(CONTRACTS),
            start_block=START_BLOCK,
            config=IndexConfig(confirmations=confirmations, max_blocks_per_poll=max_blocks),
            **kwargs,
        )

    # --- StakeholderRegistry ----------------------------------------------------------------
    def setup(self) -> None:
        """Regions, a node and the cast's registrations."""
        self.emit("StakeholderRegistry", "RegionAdded", region=0, name=b"local".ljust(32, b"\0"))
        self.emit("StakeholderRegistry", "RegionAdded", region=1, name=b"eu".ljust(32, b"\0"))
        self.emit(
            "StakeholderRegistry",
            "NodeAdmitted",
            node=NODE.address,
            signer=NODE.address,
            region=0,
            encryptionKey=bytes(range(32)),
            endpoint="http://127.0.0.1:9/",
        )
        for who, roles in ((PROVIDER, 1), (PROVIDER2, 1), (CONSUMER, 2)):
            self.emit(
                "StakeholderRegistry",
                "StakeholderRegistered",
                account=who.address,
                roles=roles,
                encryptionKey=keccak(text=who.address),
            )

    # --- AssetRegistry ----------------------------------------------------------------------
    def register(
        self,
        owner: LocalAccount,
        labels: Sequence[str],
        *,
        regions: int = 0b1,
        licence: Licence | None = None,
        store_manifest: bool = True,
    ) -> int:
        """Register an asset of ``len(labels)`` samples with a real signed manifest."""
        self.assets += 1
        asset_id = self.assets
        samples = tuple(
            ManifestSample(i, compute_cid(f"asset {asset_id} sample {i}".encode()), label)
            for i, label in enumerate(labels)
        )
        root = StandardMerkleTree.of([(s.sample_id,) for s in samples], ("bytes32",)).root
        manifest = AssetManifest(
            owner=owner.address,
            created_at=CREATED,
            samples=samples,
            samples_root=root,
            keys=(
                ManifestKey("owner", owner.address, bytes(32), bytes(80)),
                ManifestKey("node", NODE.address, bytes(range(32)), bytes(80)),
            ),
            location=Location(("local",), (NODE.address,)),
            licence=licence or Licence(("training",)),
        )
        signed = sign_manifest(
            manifest, bytes(owner.key), chain_id=CHAIN_ID, registry=CONTRACTS["AssetRegistry"]
        )
        cid = self.store.put(signed) if store_manifest else compute_cid(signed)
        for s in samples:
            self.sample_ids[(asset_id, s.index)] = "0x" + cid_digest(s.cid).hex()
        self.manifest_hashes[asset_id] = manifest_hash(manifest)
        self.owners[asset_id] = owner.address
        self.emit(
            "AssetRegistry",
            "AssetRegistered",
            assetId=asset_id,
            owner=owner.address,
            manifestHash=manifest_hash(manifest),
            samplesRoot=root,
            sampleCount=len(samples),
            regionMask=regions,
            keyNodes=[NODE.address],
            manifestCid=cid,
        )
        return asset_id

    def metadata(
        self,
        asset_id: int,
        images: Sequence[Image | None],
        *,
        links: Sequence[tuple[tuple[int, int], tuple[int, int], int]] = (),
        rejected: Sequence[tuple[int, str]] = (),
    ) -> bytes:
        """The metadata document a node would write (``images[i]`` describes sample ``i``)."""
        samples = []
        for index, img in enumerate(images):
            if img is None:
                continue
            samples.append(
                SampleMetadata(
                    index,
                    SampleId(bytes.fromhex(self.sample_ids[(asset_id, index)][2:])),
                    img.label,
                    ImageMetadata(
                        width=img.width,
                        height=img.height,
                        channels=1,
                        mode="L",
                        format=img.fmt,
                        byte_size=img.byte_size,
                        histogram_channels="L",
                        histogram=((1.0,) + (0.0,) * 15,),
                        phash=PHash(img.phash),
                        brightness=img.brightness,
                        contrast=img.contrast,
                        blur=img.blur,
                    ),
                )
            )
        document = AssetMetadata(
            manifest_hash=self.manifest_hashes[asset_id],
            samples=tuple(samples),
            links=tuple(
                DuplicateLink(
                    SampleId(bytes.fromhex(self.sample_ids[a][2:])),
                    SampleId(bytes.fromhex(self.sample_ids[b][2:])),
                    d,
                )
                for a, b, d in links
            ),
            rejected=tuple(rejected),
        )
        return document.to_json()

    def attest(
        self,
        asset_id: int,
        images: Sequence[Image | None],
        *,
        links: Sequence[tuple[tuple[int, int], tuple[int, int], int]] = (),
        raw: bytes | None = None,
        attested_hash: bytes | None = None,
        store: bool = True,
        rejected: Sequence[tuple[int, str]] = (),
    ) -> bytes:
        """Store a metadata document and emit ``MetadataAttested``; returns the document."""
        document = (
            raw
            if raw is not None
            else self.metadata(asset_id, images, links=links, rejected=rejected)
        )
        cid = self.store.put(document) if store else compute_cid(document)
        self.emit(
            "AssetRegistry",
            "MetadataAttested",
            assetId=asset_id,
            node=NODE.address,
            metadataHash=attested_hash or keccak(document),
            acceptedCount=sum(1 for i in images if i is not None),
            metadataCid=cid,
        )
        return document

    def withdraw(self, asset_id: int) -> None:
        self.emit("AssetRegistry", "AssetWithdrawn", assetId=asset_id)

    # --- TrainingMarket ---------------------------------------------------------------------
    def proposal_document(
        self,
        selection: Sequence[tuple[int, Sequence[int]]],
        *,
        offer: int,
        wtp_bps: int,
        deadline: int,
        selection_root: bytes,
        signer: LocalAccount = CONSUMER,
    ) -> bytes:
        """The consumer's signed proposal document for ``selection`` (asset id, indexes)."""
        proposal = TrainingProposal(
            chain_id=CHAIN_ID,
            market=Address(CONTRACTS["TrainingMarket"]),
            consumer=Address(CONSUMER.address),
            node=Address(NODE.address),
            created_at=int(CREATED.timestamp()),
            offer=offer,
            wtp_bps=wtp_bps,
            voting_deadline=deadline,
            classes=("cat", "dog", "bird"),
            model_spec_json=SPEC_JSON,
            model_spec_hash=keccak(SPEC_JSON),
            validation=ValidationSetRef(
                Cid(compute_cid(b"validation")), VALIDATION_HASH, 10, bytes(80)
            ),
            selection=tuple(SelectedAsset(a, tuple(indexes)) for a, indexes in selection),
            selection_root=selection_root,
        )
        return sign_proposal(proposal, bytes(signer.key))

    def propose(
        self,
        selection: Sequence[tuple[int, Sequence[int]]] = ((1, (0,)),),
        *,
        offer: int = 1000,
        wtp_bps: int = 8000,
        min_share_bps: int = 0,
        document: bytes | None = None,
        store_document: bool = True,
    ) -> int:
        """Emit ``ProposalCreated`` for ``selection`` with a stored, signed proposal document
        (or ``document`` instead)."""
        self.proposals += 1
        pid = self.proposals
        deadline = 10_000 + pid
        root = keccak(text=f"selection {pid}")
        raw = document or self.proposal_document(
            selection, offer=offer, wtp_bps=wtp_bps, deadline=deadline, selection_root=root
        )
        cid = self.store.put(raw) if store_document else compute_cid(raw)
        ids = [a for a, _ in selection]
        self.selections[pid] = ids
        self.emit(
            "TrainingMarket",
            "ProposalCreated",
            proposalId=pid,
            consumer=CONSUMER.address,
            node=NODE.address,
            offer=offer,
            wtpBps=wtp_bps,
            minShareBps=min_share_bps,
            votingDeadline=deadline,
            totalWeight=sum(len(indexes) for _, indexes in selection),
            assetsHash=assets_hash([(a, len(indexes)) for a, indexes in selection]),
            assetsRoot=assets_root(ids),
            selectionRoot=root,
            modelSpecHash=keccak(SPEC_JSON),
            validationSetHash=VALIDATION_HASH,
            proposalCid=cid,
        )
        return pid

    def vote(self, pid: int, voter: LocalAccount, ask: int) -> None:
        self.emit("TrainingMarket", "VoteCast", proposalId=pid, voter=voter.address, ask=ask)

    def tally(
        self,
        pid: int,
        outcome: int = 2,
        price: int = 1000,
        *,
        excluded: Sequence[int] = (),
        remaining: int = 10,
    ) -> None:
        """Emit ``ProposalTallied``; ``excluded`` positions left the round."""
        self.exclusions[pid] = set(excluded)
        self.emit(
            "TrainingMarket",
            "ProposalTallied",
            proposalId=pid,
            outcome=outcome,
            clearingPrice=price,
            participatingWeight=10,
            remainingWeight=remaining,
            totalWeight=10,
            tallier=STRANGER.address,
        )

    def start(self, pid: int, cost: int = 50) -> None:
        self.emit(
            "TrainingMarket", "TrainingStarted", proposalId=pid, trainingCost=cost, deadline=20_000
        )

    def payout_tree(self, pid: int, payouts: dict[int, int]) -> StandardMerkleTree:
        """The payout tree paying ``payouts`` (asset id → amount) at each asset's position in
        proposal ``pid``'s selection (an asset it did not select gets the next position)."""
        ids = self.selections.get(pid, [])
        extra = iter(range(len(ids), len(ids) + len(payouts)))
        rows = sorted(
            (ids.index(a) if a in ids else next(extra), a, amount) for a, amount in payouts.items()
        )
        return StandardMerkleTree.of(rows, PAYOUT_LEAF)

    def payouts_section(
        self, pid: int, payouts: dict[int, int], tree: StandardMerkleTree | None = None
    ) -> dict[str, Any]:
        """The ``payouts`` of a result document, as the node writes it."""
        tree = tree or self.payout_tree(pid, payouts)
        per_owner: dict[str, int] = {}
        for asset, amount in payouts.items():
            owner = self.owners.get(asset, STRANGER.address)
            per_owner[owner] = per_owner.get(owner, 0) + amount
        return {
            "root": "0x" + tree.root.hex(),
            "basis": "value",
            "amounts": {a: str(v) for a, v in per_owner.items()},
            "assets": {str(a): str(v) for a, v in payouts.items()},
            "tree": tree.dump(),
        }

    def result(
        self,
        pid: int,
        scores: Sequence[dict[str, Any]] | None,
        *,
        payouts: dict[int, int] | None = None,
        accuracy: int = 9000,
        wtp_met: bool = True,
        consumer_fault: bool = False,
        document: dict[str, Any] | None = None,
        scores_raw: bytes | None = None,
        scores_hash: bytes | None = None,
        store_document: bool = True,
    ) -> dict[str, Any]:
        """Store a result document (and its scores) and emit ``ResultSubmitted``; ``payouts``
        maps asset id → amount."""
        model_hash = keccak(text=f"model {pid}")
        seed_hash = keccak(text=f"seed {pid}")
        tree = self.payout_tree(pid, payouts) if payouts else None
        if tree is not None:
            self.payout_trees[pid] = tree
        scores_cid = None
        raw = scores_raw
        if scores is not None and raw is None:
            raw = json.dumps({"version": 1, "proposalId": pid, "samples": list(scores)}).encode()
        if raw is not None:
            scores_cid = self.store.put(raw)
        doc = document or {
            "version": 1,
            "kind": "visdm-training-result",
            "proposalId": pid,
            "node": NODE.address,
            "accuracyBps": accuracy,
            "wtpBps": 8000,
            "wtpMet": wtp_met,
            "epsilonSpent": 2.5,
            "seedHash": "0x" + seed_hash.hex(),
            "model": {"cid": "bafkreimodelcid", "modelHash": "0x" + model_hash.hex()},
            "scores": None if scores_cid is None else {"cid": scores_cid},
            "payouts": None
            if tree is None or payouts is None
            else self.payouts_section(pid, payouts, tree),
        }
        if consumer_fault and document is None:
            doc = dict(
                doc,
                consumerFault="the validation set cannot be used",
                wtpMet=False,
                seedHash=None,
                model=None,
                scores=None,
                payouts=None,
            )
        encoded = json.dumps(doc).encode()
        cid = self.store.put(encoded) if store_document else compute_cid(encoded)
        self.emit(
            "TrainingMarket",
            "ResultSubmitted",
            proposalId=pid,
            accuracyBps=accuracy,
            wtpMet=wtp_met and not consumer_fault,
            consumerFault=consumer_fault,
            modelHash=model_hash,
            payoutRoot=tree.root if tree is not None else bytes(32),
            scoresHash=scores_hash or (keccak(raw) if raw is not None else bytes(32)),
            seedHash=bytes(32) if consumer_fault else seed_hash,
            resultCid=cid,
        )
        return doc

    def claim(self, pid: int, asset_id: int) -> None:
        """Emit ``Claimed`` for ``asset_id``'s leaf of proposal ``pid``'s payout tree."""
        for position, asset, amount in self.payout_trees[pid].values:
            if int(asset) == asset_id:
                self.emit(
                    "TrainingMarket",
                    "Claimed",
                    proposalId=pid,
                    position=int(position),
                    assetId=asset_id,
                    owner=self.owners[asset_id],
                    amount=int(amount),
                )
                return
        raise KeyError(asset_id)

    def abandon(self, pid: int, reason: str = "the job crashed three times") -> None:
        self.emit(
            "TrainingMarket", "TrainingAbandoned", proposalId=pid, node=NODE.address, reason=reason
        )

    def sweep(self, pid: int, amount: int) -> None:
        self.emit(
            "TrainingMarket",
            "UnclaimedSwept",
            proposalId=pid,
            treasury=STRANGER.address,
            amount=amount,
        )

    def score(
        self,
        asset_id: int,
        index: int,
        value: float,
        provider: LocalAccount,
        flags: Sequence[str] = (),
        evidence: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A scores row; a ``noisy`` flag comes with :data:`EVIDENCE` unless told otherwise."""
        sid = self.sample_ids[(asset_id, index)]
        return {
            "sample_id": sid,
            "asset_id": asset_id,
            "index": index,
            "provider": provider.address,
            "value": value,
            "cluster_founder": sid,
            "cluster_size": 1,
            "flags": list(flags),
            "evidence": evidence if evidence is not None or "noisy" not in flags else EVIDENCE,
        }


#: the witnesses a valuation publishes with a ``noisy`` flag (visdm.valuation._evidence)
EVIDENCE = {"t": -3.5, "value_se": 0.002, "peer_agreement": 0.1, "peers": 10,
            "provider_suspects": 9, "provider_players": 24, "provider_p": 2e-6,
            "base_rate": 0.04}  # fmt: skip


def assets_hash(selection: Sequence[tuple[int, int]]) -> bytes:
    """``TrainingMarket``'s hash chain over ``(assetId, sampleCount)``."""
    link = bytes(32)
    for asset_id, count in selection:
        link = keccak(abi_encode(["bytes32", "uint256", "uint32"], [link, asset_id, count]))
    return link


def assets_root(asset_ids: Sequence[int]) -> bytes:
    """``TrainingMarket``'s Merkle root over ``(position, assetId)``."""
    return PositionalMerkleTree(list(enumerate(asset_ids)), ("uint256", "uint256")).root


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every index table's rows, sorted: equal dumps mean identical tables."""
    out = {}
    for table in TABLES:
        rows = db.query(f"SELECT * FROM {table}")
        out[table] = sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r))
    return out


#: "now" for licence expiry in the scenario: after asset 3's licence starts, before it ends
NOW = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp())
#: after asset 3's licence has expired
LATER = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


def build_market(w: World) -> None:
    """The scenario most tests search (see the expectations in the conformance suite).

    * asset 1 (provider; region local; licence training): cat, dog, cat, bird
    * asset 2 (provider2; local + eu; training + evaluation, denies the stranger): cat, cat, dog;
      its sample 0 copies asset 1's sample 0 (0 bits), its sample 1 is 6 bits from asset 1's 2
    * asset 3 (provider; eu; only the consumer, expires 2025-06-01): dog, bird
    * asset 4 (provider2): registered, never attested
    * asset 5 (provider): cat, cat; its sample 0 is 2 bits from asset 2's sample 0; withdrawn
    * proposal 1 (assets 1 and 2) completed with scores for asset 1's samples 0 (0.5) and 1
      (-0.25, noisy) and asset 2's sample 0 (0.0, copied), payouts of 600 to asset 1 and 400 to
      asset 2, and asset 1's claim; proposal 2 (asset 1) completed and scores asset 1's sample 0
      again (0.25); proposal 3 countered, accepted, then reclaimed
    * provider2 delegates to provider, then to the stranger
    """
    w.setup()
    a1 = w.register(PROVIDER, ["cat", "dog", "cat", "bird"])
    w.attest(
        a1,
        [
            Image("cat"),
            Image("dog", width=64, height=64, fmt="JPEG", brightness=200.0, contrast=10.0),
            Image("cat", brightness=30.0, blur=50.0),
            Image("bird", width=128, height=96, phash=0xFFFF),
        ],
    )
    a2 = w.register(
        PROVIDER2,
        ["cat", "cat", "dog"],
        regions=0b11,
        licence=Licence(("training", "evaluation"), denied_consumers=(STRANGER.address,)),
    )
    w.attest(
        a2,
        [Image("cat"), Image("cat", contrast=80.0), Image("dog", blur=1500.0)],
        links=[((a2, 0), (a1, 0), 0), ((a2, 1), (a1, 2), 6)],
    )
    a3 = w.register(
        PROVIDER,
        ["dog", "bird"],
        regions=0b10,
        licence=Licence(
            ("training",),
            allowed_consumers=(CONSUMER.address,),
            expires=datetime(2025, 6, 1, tzinfo=UTC),
        ),
    )
    w.attest(a3, [Image("dog", fmt="WEBP"), Image("bird", byte_size=None)])
    w.register(PROVIDER2, ["cat"])
    a5 = w.register(PROVIDER, ["cat", "cat"])
    w.attest(a5, [Image("cat"), Image("cat")], links=[((a5, 0), (a2, 0), 2)])
    w.withdraw(a5)

    p1 = w.propose([(a1, (0, 1, 2, 3)), (a2, (0, 1, 2))])
    w.vote(p1, PROVIDER, 0)
    w.vote(p1, PROVIDER2, 500)
    w.vote(p1, PROVIDER2, 0)  # a changed vote: the last one counts
    w.tally(p1, remaining=7)
    w.start(p1)
    w.result(
        p1,
        [
            w.score(a1, 0, 0.5, PROVIDER),
            w.score(a1, 1, -0.25, PROVIDER, ["noisy"]),
            w.score(a2, 0, 0.0, PROVIDER2, ["copied", "duplicate"]),
        ],
        payouts={a1: 600, a2: 400},
    )
    w.claim(p1, a1)
    p2 = w.propose([(a1, (0,))])
    w.tally(p2, remaining=1)
    w.start(p2)
    w.result(p2, [w.score(a1, 0, 0.25, PROVIDER)], payouts={a1: 1000})
    p3 = w.propose([(a1, (0, 1))], offer=100)
    w.tally(p3, outcome=3, price=300, remaining=2)
    w.emit("TrainingMarket", "CounterAccepted", proposalId=p3, price=300)
    w.emit("TrainingMarket", "Reclaimed", proposalId=p3, consumer=CONSUMER.address, amount=300)
    w.emit(
        "TrainingMarket",
        "DelegateChanged",
        delegator=PROVIDER2.address,
        previousDelegate=ZERO,
        delegatee=PROVIDER.address,
    )
    w.emit(
        "TrainingMarket",
        "DelegateChanged",
        delegator=PROVIDER2.address,
        previousDelegate=PROVIDER.address,
        delegatee=STRANGER.address,
    )
    w.emit("TrainingMarket", "Credited", account=NODE.address, amount=50, proposalId=p1)
    w.emit("TrainingMarket", "ParametersChanged", parameters={"quorumBps": 3000, "big": 2**255})
