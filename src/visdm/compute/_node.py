"""The compute node's asset work: follow the chain, attest public metadata (design 3.2, 6–8).

For every ``AssetRegistered`` event in a region the node serves, the node fetches the manifest,
checks it against the chain (owner's EIP-712 signature, manifest hash, sample root and count),
unwraps the data key if — and only if — the owner wrapped it for this node, decrypts every
sample, describes it (:mod:`visdm.metadata`), links near-duplicates against every active sample
in the marketplace, stores the metadata document and calls ``attestMetadata``.

A sample that cannot be fetched, decrypted or decoded is excluded and counted, never fatal.
Decrypted bytes exist only in this process's memory, for as long as one batch takes: they are
never written to disk, so nothing of them outlives the batch.

A chain restarted from an older state (a local anvil killed before it saved its last blocks)
has lost blocks the node saw: the node keeps the newest block it saw (number and hash), and
when the chain no longer has it, reads every event again (handling is idempotent) and attests
again any asset whose attestation the chain lost — instead of waiting for blocks it has
already seen, or believing an attestation the chain forgot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import AssetRegistry, AssetStatus
from visdm.chain.deployment import Deployment
from visdm.errors import (
    ContractRevertError,
    CryptoError,
    InvalidInputError,
    StorageError,
    VisdmError,
)
from visdm.ingest import decode_image, decrypt_sample
from visdm.jsonsafe import load_untrusted_object
from visdm.manifest import ParsedManifest, verify_manifest
from visdm.metadata import (
    DEFAULT_DUPLICATE_RADIUS,
    DEFAULT_MAX_LINKS,
    AssetMetadata,
    DuplicateLink,
    HammingIndex,
    SampleMetadata,
    describe_images,
    read_cluster,
)
from visdm.storage import ContentStore
from visdm.types import SampleId

from ._state import AssetOutcome, NodeState

__all__ = ["AssetWorker", "NodeConfig"]

log = logging.getLogger("visdm.node")

#: samples decoded and described together; bounds the plaintext held in memory at once
_BATCH = 256


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """How the node follows the chain."""

    workdir: Path
    confirmations: int = 0
    poll_interval_s: float = 1.0
    max_blocks_per_poll: int = 2_000
    duplicate_radius: int = DEFAULT_DUPLICATE_RADIUS
    #: near-duplicate links kept per new sample (the nearest); each sample's cluster is
    #: published with them, so copies past the bound are still grouped (``None``: every link)
    max_links: int | None = DEFAULT_MAX_LINKS


class AssetWorker:
    """Follows asset events and attests metadata, resuming from its durable cursor."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ContentStore,
        account: UnlockedAccount,
        config: NodeConfig,
    ) -> None:
        self.client = client
        self.assets: AssetRegistry = deployment.asset_registry(client)
        self.registry = deployment.stakeholder_registry(client)
        self.store = store
        self.account = account
        self.config = config
        config.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config.workdir.chmod(0o700)
        self.state = NodeState(config.workdir / "state.sqlite3")
        self.index: HammingIndex[bytes] = HammingIndex(
            radius=config.duplicate_radius, max_links=config.max_links
        )
        active = self.state.active_samples()
        if active:
            self.index.add(
                [sid for sid, _, _ in active],
                [h for _, h, _ in active],
                clusters=[c for _, _, c in active],
            )
        me = self.registry.compute_node(account.address)
        if not me.admitted:
            raise InvalidInputError(
                f"{account.address} is not an admitted compute node: ask governance to admit "
                "it (visdm governance admit-node)"
            )
        self.start_block = deployment.contracts["AssetRegistry"].block_number

    def close(self) -> None:
        self.state.close()

    # --- following ------------------------------------------------------------------------
    def poll(self) -> int:
        """Handle every event up to the confirmed head; returns how many events were handled."""
        head = int(self.client.rpc(lambda: self.client.w3.eth.block_number))
        if self._lost_blocks(head):
            with self.state.transaction():
                self.state.set_cursor(self.start_block - 1)
        handled = 0
        for start, end in self.state.ranges(
            self.start_block, head - self.config.confirmations, self.config.max_blocks_per_poll
        ):
            events = self._events(start, end)
            for event in events:
                self._handle(event)
            handled += len(events)
            with self.state.transaction():
                self.state.set_cursor(end)
        # the newest block now, our own transactions included: if the chain ever loses it,
        # the next poll notices
        latest = self.client.rpc(lambda: self.client.w3.eth.get_block("latest"))
        with self.state.transaction():
            self.state.set_seen(int(latest["number"]), bytes(latest["hash"]))
        return handled

    def _lost_blocks(self, head: int) -> bool:
        """True when the chain no longer has the newest block this node saw."""
        seen = self.state.seen()
        if seen is None:
            return False
        number, block_hash = seen
        if head >= number:
            block = self.client.rpc(lambda: self.client.w3.eth.get_block(number))
            if bytes(block["hash"]) == block_hash:
                return False
        log.warning(
            "the chain no longer has block %d this node saw (restarted from an older state?): "
            "reading its events again",
            number,
        )
        return True

    def serve(self, should_stop: Callable[[], bool]) -> None:
        """Poll until ``should_stop()``; a failing poll is logged and retried, never fatal."""
        while not should_stop():
            try:
                self.poll()
            except VisdmError as exc:
                log.error("poll failed, retrying: %s", exc)
            deadline = time.monotonic() + self.config.poll_interval_s
            while time.monotonic() < deadline and not should_stop():
                time.sleep(0.05)

    def _events(self, start: int, end: int) -> list[Any]:
        found: list[Any] = []
        for name in ("AssetRegistered", "MetadataAttested", "AssetWithdrawn"):
            found += self.assets.logs(name, from_block=start, to_block=end)
        found.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
        return found

    def _handle(self, event: Any) -> None:
        asset_id = int(event["args"]["assetId"])
        if event["event"] == "AssetRegistered":
            self._on_registered(asset_id, event["args"])
        elif event["event"] == "MetadataAttested":
            self._index_attested(asset_id, event["args"])
        else:
            with self.state.transaction():
                removed = self.state.deactivate_asset(asset_id)
            held = [sid for sid in removed if sid in self.index]
            if held:
                self.index.remove(held)
            log.info(
                "asset %d withdrawn: %d samples leave the duplicate index", asset_id, len(held)
            )

    # --- one asset ------------------------------------------------------------------------
    def _on_registered(self, asset_id: int, args: Any) -> None:
        record = self.assets.asset(asset_id)
        known = self.state.outcome(asset_id)
        lost = (
            known is not None
            and known.outcome == "attested"
            and record.status == AssetStatus.PENDING
        )
        if known is not None and not lost:
            return  # handled before a restart
        if record.status != AssetStatus.PENDING:
            return  # attested (its MetadataAttested event indexes it) or withdrawn
        if lost:  # the chain forgot our attestation: describe and attest the asset afresh
            log.warning("asset %d: the chain lost its attestation; attesting it again", asset_id)
            with self.state.transaction():
                forgotten = self.state.forget_samples(asset_id)
            held = [sid for sid in forgotten if sid in self.index]
            if held:
                self.index.remove(held)
        if not self.assets.node_allowed(asset_id, self.account.address):
            self._record(AssetOutcome(asset_id, "skipped", "this node's region is not allowed"))
            return
        try:
            parsed = self._checked_manifest(asset_id, args, record)
        except VisdmError as exc:
            log.warning("asset %d rejected: %s", asset_id, exc)
            self._record(AssetOutcome(asset_id, "rejected", str(exc)))
            return
        try:
            wrapped = parsed.manifest.key_for(self.account.address)
        except VisdmError:
            self._record(AssetOutcome(asset_id, "skipped", "no data key wrapped for this node"))
            return
        try:
            data_key = self.account.unwrap_key(wrapped.wrapped)
        except CryptoError as exc:
            self._record(AssetOutcome(asset_id, "rejected", f"cannot unwrap the data key: {exc}"))
            return
        metadata, excluded = self._describe(parsed, data_key)
        cid = self.store.put(metadata.to_json(), pin=True)
        try:
            self.client.fund_from_dev_faucet(self.account.address)
            self.assets.attest_metadata(
                self.account.local_account,
                asset_id,
                metadata_hash=metadata.metadata_hash,
                accepted_count=len(metadata.samples),
                metadata_cid=cid,
            )
        except ContractRevertError as exc:
            if exc.error_name != "AssetRegistryWrongStatus":
                raise
            return  # another node attested (or the owner withdrew) meanwhile
        self._activate(asset_id, metadata)
        self._record(
            AssetOutcome(
                asset_id,
                "attested",
                f"{len(metadata.samples)} samples described, {len(metadata.links)} duplicate links",
                accepted=len(metadata.samples),
                excluded=len(excluded),
                metadata_cid=cid,
            )
        )
        log.info(
            "asset %d attested: %d samples, %d excluded, %d duplicate links, metadata %s",
            asset_id,
            len(metadata.samples),
            len(excluded),
            len(metadata.links),
            cid,
        )

    def _checked_manifest(self, asset_id: int, args: Any, record: Any) -> ParsedManifest:
        data = self.store.get(args["manifestCid"])
        parsed = verify_manifest(data, chain_id=self.client.chain_id, registry=self.assets.address)
        manifest = parsed.manifest
        problems = []
        if manifest.owner != record.owner:
            problems.append(f"signed by {manifest.owner}, but the asset's owner is {record.owner}")
        if parsed.manifest_hash != record.manifest_hash:
            problems.append("its hash differs from the manifest hash registered on chain")
        if manifest.samples_root != bytes(args["samplesRoot"]):
            problems.append("its sample root differs from the one registered on chain")
        if len(manifest.samples) != record.sample_count:
            problems.append(
                f"it lists {len(manifest.samples)} samples, the chain says {record.sample_count}"
            )
        if problems:
            raise InvalidInputError(f"manifest of asset {asset_id}: " + "; ".join(problems))
        return parsed

    def _describe(
        self, parsed: ParsedManifest, data_key: bytes
    ) -> tuple[AssetMetadata, list[tuple[int, str]]]:
        samples: list[SampleMetadata] = []
        excluded: list[tuple[int, str]] = []
        entries = list(parsed.manifest.samples)
        for start in range(0, len(entries), _BATCH):
            batch = entries[start : start + _BATCH]
            decoded, kept = [], []
            for entry in batch:
                try:
                    image = decode_image(
                        decrypt_sample(self.store, entry.cid, index=entry.index, data_key=data_key),
                        name=f"sample {entry.index}",
                    )
                except (StorageError, CryptoError, InvalidInputError) as exc:
                    excluded.append((entry.index, str(exc)))
                    continue
                decoded.append(image)
                kept.append(entry)
            described = describe_images(
                [d.image for d in decoded],
                byte_sizes=[d.byte_size for d in decoded],
                formats=[d.format for d in decoded],
            )
            for entry, meta in zip(kept, described, strict=True):
                samples.append(SampleMetadata(entry.index, entry.sample_id, entry.label, meta))
            del decoded
        links = self.index.link(
            [bytes(s.sample_id) for s in samples], [int(s.image.phash) for s in samples]
        )
        # each sample's cluster: readers group copies by it past the bound on links
        clustered = [
            replace(s, cluster=SampleId(self.index.cluster_of(bytes(s.sample_id)))) for s in samples
        ]
        metadata = AssetMetadata(
            manifest_hash=parsed.manifest_hash,
            samples=tuple(clustered),
            links=tuple(DuplicateLink(SampleId(a), SampleId(b), d) for a, b, d in links),
            rejected=tuple(excluded),
            radius=self.index.radius,
        )
        # link() added the new samples to the in-memory index; the state follows in _activate
        return metadata, excluded

    def _activate(self, asset_id: int, metadata: AssetMetadata) -> None:
        with self.state.transaction():
            self.state.add_samples(
                asset_id,
                [(bytes(s.sample_id), int(s.image.phash)) for s in metadata.samples],
                [None if s.cluster is None else bytes(s.cluster) for s in metadata.samples],
            )

    def _index_attested(self, asset_id: int, args: Any) -> None:
        """Bring an asset attested elsewhere (or before a crash) into the duplicate index."""
        known = self.state.outcome(asset_id)
        if known is not None and known.outcome in ("attested", "attested-elsewhere"):
            return
        record = self.assets.asset(asset_id)
        raw = self.store.get(args["metadataCid"])
        if keccak(raw) != record.metadata_hash:
            log.warning("asset %d: stored metadata does not match its attested hash", asset_id)
            self._record(AssetOutcome(asset_id, "rejected", "metadata does not match its hash"))
            return
        try:  # another node wrote it: its hash only proves that node attested these bytes
            document = load_untrusted_object(
                raw,
                what=f"asset {asset_id}'s metadata document",
                max_bytes=len(raw),
                hint="the asset stays out of this node's duplicate index",
            )
            samples = [
                (bytes.fromhex(s["sampleId"][2:]), int(s["phash"], 16)) for s in document["samples"]
            ]
            # the attesting node's clusters, so that later copies join the same ones
            roots = [read_cluster(s) for s in document["samples"]]
        except (ValueError, KeyError, TypeError) as exc:
            reason = str(exc) if isinstance(exc, InvalidInputError) else f"malformed ({exc!r})"
            log.warning("asset %d: attested metadata unusable: %s", asset_id, reason)
            self._record(AssetOutcome(asset_id, "rejected", f"metadata document: {reason}"))
            return
        fresh = [
            (sid, h, sid if root is None else bytes.fromhex(root[2:]))
            for (sid, h), root in zip(samples, roots, strict=True)
            if sid not in self.index
        ]
        new = [(sid, h) for sid, h, _ in fresh]
        if new:
            self.index.add(
                [sid for sid, _ in new], [h for _, h in new], clusters=[c for _, _, c in fresh]
            )
        with self.state.transaction():
            self.state.add_samples(asset_id, new, [c for _, _, c in fresh])
            mine = args["node"] == self.account.address
            self.state.record(
                AssetOutcome(
                    asset_id,
                    "attested" if mine else "attested-elsewhere",
                    f"indexed {len(new)} samples attested by {args['node']}",
                    accepted=len(samples),
                    metadata_cid=args["metadataCid"],
                )
            )
        if record.status == AssetStatus.WITHDRAWN:
            self._handle({"event": "AssetWithdrawn", "args": {"assetId": asset_id}})

    def _record(self, outcome: AssetOutcome) -> None:
        with self.state.transaction():
            self.state.record(outcome)

    def outcomes(self) -> Sequence[AssetOutcome]:
        return self.state.outcomes()
