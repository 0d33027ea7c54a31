"""Provider-side asset registration, end to end (paper Algorithm 2, design 3.2 steps 1–5).

:func:`add_asset` is what ``visdm asset add`` runs: validate the folder (every bad file is
reported, the good ones go on), encrypt and store each sample, wrap the data key for the owner and
each allowed compute node, write and sign the XML manifest, store it, and register the asset on
chain. :func:`list_assets`, :func:`show_asset` and :func:`withdraw_asset` back the other
``visdm asset`` commands; ``show`` includes the public metadata the node attested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from visdm.accounts import UnlockedAccount
from visdm.chain.contracts import AssetStatus, StakeholderRegistry
from visdm.config import Settings
from visdm.errors import InvalidInputError
from visdm.ingest import IngestReport, KeyRecipient, prepare_asset, validate_directory
from visdm.jsonsafe import load_untrusted_object, read_untrusted_file
from visdm.manifest import AssetManifest, Licence, manifest_hash, sign_manifest
from visdm.session import connect_deployed, open_store
from visdm.types import Address, AssetId, Cid

__all__ = [
    "AddedAsset",
    "AssetView",
    "active_nodes",
    "add_asset",
    "list_assets",
    "load_licence",
    "show_asset",
    "withdraw_asset",
]

#: stages reported to the progress callback of :func:`add_asset`
STAGES = ("validate", "encrypt and store", "sign manifest", "register on chain")


@dataclass(frozen=True, slots=True)
class AddedAsset:
    """What ``visdm asset add`` did."""

    asset_id: AssetId
    manifest_cid: Cid
    sample_count: int
    rejected: list[dict[str, str]]
    nodes: list[str]
    regions: list[str]
    gas_used: int


def load_licence(
    path: Path | None, *, dp_required: bool | None = None, max_epsilon: float | None = None
) -> Licence:
    """A licence from a JSON file ``{"purposes": [...], "allowed_consumers": [...],
    "denied_consumers": [...], "expires": "2027-01-01T00:00:00Z", "dp_required": true,
    "max_epsilon": 8, "max_delta": null}``; every key is optional. Defaults: training only,
    DP required, ε ≤ 8, δ below 1/N (``max_delta`` null). ``dp_required`` and ``max_epsilon``
    override the file when given (``visdm asset add --allow-no-dp``, ``--max-epsilon``)."""
    data: dict[str, Any] = {}
    if path is not None:
        what, hint = f"licence file {path}", "fix it: it holds one small JSON object"
        try:  # a licence is a few keys: 1 MiB is generous, and bounds what is read
            raw = read_untrusted_file(path, what=what, max_bytes=1 << 20, hint=hint)
        except FileNotFoundError:
            raise InvalidInputError(f"licence file {path} does not exist") from None
        data = load_untrusted_object(raw, what=what, max_bytes=1 << 20, hint=hint)
    privacy_keys = ("dp_required", "max_epsilon", "max_delta")
    known = {"purposes", "allowed_consumers", "denied_consumers", "expires", *privacy_keys}
    unknown = set(data) - known
    if unknown:
        raise InvalidInputError(
            f"licence file {path} has unknown keys: {', '.join(sorted(unknown))}"
        )

    def strings(key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInputError(f"licence file {path}: {key} must be a list of strings")
        return tuple(value)

    expires = data.get("expires")
    when = None
    if expires is not None:
        try:
            when = datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"licence file {path}: expires {expires!r} is not ISO 8601"
            ) from None
    terms: dict[str, Any] = {key: data[key] for key in privacy_keys if key in data}
    try:  # the file's terms alone first, so that an error names the file only when it is at fault
        Licence(("training",), **terms)
    except InvalidInputError as exc:
        raise InvalidInputError(f"licence file {path}: {exc}") from None
    if dp_required is not None:
        terms["dp_required"] = dp_required
    if max_epsilon is not None:
        terms["max_epsilon"] = max_epsilon
    return Licence(
        purposes=strings("purposes") or ("training",),
        allowed_consumers=tuple(Address(a) for a in strings("allowed_consumers")),
        denied_consumers=tuple(Address(a) for a in strings("denied_consumers")),
        expires=when,
        **terms,
    )


def active_nodes(registry: StakeholderRegistry, regions: Sequence[str]) -> list[str]:
    """Addresses of active compute nodes placed in any of ``regions``, from admission events."""
    names = registry.regions()
    wanted = {names.index(r) for r in regions if r in names}
    seen: dict[str, None] = {}
    for log in registry.logs("NodeAdmitted"):
        seen[log["args"]["node"]] = None
    found = []
    for address in seen:
        record = registry.compute_node(address)
        if record.active and record.region in wanted:
            found.append(address)
    return found


def add_asset(
    settings: Settings,
    owner: UnlockedAccount,
    directory: Path,
    *,
    labels_file: Path | None = None,
    regions: Sequence[str] = ("local",),
    nodes: Sequence[str] | None = None,
    licence: Licence | None = None,
    on_stage: Callable[[str, IngestReport | None], None] | None = None,
    on_sample: Callable[[int], None] | None = None,
) -> AddedAsset:
    """Validate, encrypt, store, sign and register the images in ``directory``.

    ``nodes``: the compute nodes allowed to decrypt (default: every active node in ``regions``).
    Nothing is written on chain unless every step before it succeeded; blobs already stored
    are harmless (content-addressed, encrypted) and reused by a retry.
    """
    if not regions:
        raise InvalidInputError("allow at least one region (--regions)")
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    known = registry.regions()
    unknown = [r for r in regions if r not in known]
    if unknown:
        raise InvalidInputError(
            f"unknown region(s) {', '.join(unknown)}: the chain knows {', '.join(known) or 'none'}"
        )
    node_addresses = list(nodes) if nodes is not None else active_nodes(registry, regions)
    if not node_addresses:
        raise InvalidInputError(
            f"no active compute node in region(s) {', '.join(regions)}: name one with --nodes "
            "or ask governance to admit one"
        )
    recipients = []
    for address in node_addresses:
        record = registry.compute_node(address)
        if not record.active:
            raise InvalidInputError(f"{address} is not an active compute node")
        if known[record.region] not in regions:
            raise InvalidInputError(
                f"node {address} is in region {known[record.region]}, which this asset does "
                f"not allow ({', '.join(regions)})"
            )
        recipients.append(KeyRecipient(record.address, record.encryption_key))

    def stage(name: str, report: IngestReport | None = None) -> None:
        if on_stage is not None:
            on_stage(name, report)

    stage("validate")
    report = validate_directory(directory, labels_file=labels_file)
    stage("encrypt and store", report)
    store = open_store(settings)
    prepared = prepare_asset(
        report,
        store=store,
        owner=KeyRecipient(owner.address, owner.x25519_public),
        nodes=recipients,
        on_sample=on_sample,
    )
    stage("sign manifest", report)
    manifest = AssetManifest.from_prepared(
        prepared, regions=regions, licence=licence or Licence(("training",))
    )
    assets = conn.deployment.asset_registry(conn.client)
    signed = sign_manifest(
        manifest,
        bytes(owner.local_account.key),
        chain_id=conn.client.chain_id,
        registry=assets.address,
    )
    manifest_cid = store.put(signed, pin=True)
    stage("register on chain", report)
    conn.client.fund_from_dev_faucet(owner.address)
    asset_id, tx = assets.register_asset(
        owner.local_account,
        manifest_hash=manifest_hash(manifest),
        samples_root=prepared.samples_root,
        sample_count=prepared.sample_count,
        allowed_regions=list(regions),
        key_nodes=[r.address for r in recipients],
        manifest_cid=manifest_cid,
    )
    return AddedAsset(
        asset_id=asset_id,
        manifest_cid=manifest_cid,
        sample_count=prepared.sample_count,
        rejected=[{"file": r.name, "reason": r.reason} for r in report.rejected],
        nodes=[to_checksum_address(a) for a in node_addresses],
        regions=list(regions),
        gas_used=tx.gas_used,
    )


@dataclass(frozen=True, slots=True)
class AssetView:
    """An asset as ``visdm asset show`` presents it."""

    asset_id: int
    owner: str
    status: str
    sample_count: int
    accepted_count: int
    regions: list[str]
    manifest_cid: str | None
    metadata_cid: str | None
    attested_by: str | None
    labels: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    duplicate_links: list[dict[str, Any]] = field(default_factory=list)


def list_assets(settings: Settings, *, owner: str | None = None) -> list[dict[str, Any]]:
    """Every registered asset (optionally only ``owner``'s), newest first."""
    conn = connect_deployed(settings)
    assets = conn.deployment.asset_registry(conn.client)
    names = conn.deployment.stakeholder_registry(conn.client).regions()
    rows = []
    for asset_id in range(assets.asset_count(), 0, -1):
        record = assets.asset(asset_id)
        if owner is not None and str(record.owner) != str(to_checksum_address(owner)):
            continue
        rows.append(
            {
                "asset_id": asset_id,
                "owner": record.owner,
                "status": record.status.name.lower(),
                "samples": record.sample_count,
                "accepted": record.accepted_count,
                "regions": _regions(record.region_mask, names),
            }
        )
    return rows


def _regions(mask: int, names: Sequence[str]) -> list[str]:
    return [name for i, name in enumerate(names) if mask >> i & 1]


def show_asset(settings: Settings, asset_id: int, *, samples: int = 10) -> AssetView:
    """The chain record of ``asset_id`` with its public metadata once a node attested it."""
    conn = connect_deployed(settings)
    assets = conn.deployment.asset_registry(conn.client)
    record = assets.asset(asset_id)
    if record.status == AssetStatus.NONE:
        raise InvalidInputError(
            f"asset {asset_id} does not exist (the newest is {assets.asset_count()})"
        )
    names = conn.deployment.stakeholder_registry(conn.client).regions()
    registered = _first_log(assets.logs("AssetRegistered", where={"assetId": asset_id}))
    attested = _first_log(assets.logs("MetadataAttested", where={"assetId": asset_id}))
    view = AssetView(
        asset_id=asset_id,
        owner=record.owner,
        status=record.status.name.lower(),
        sample_count=record.sample_count,
        accepted_count=record.accepted_count,
        regions=_regions(record.region_mask, names),
        manifest_cid=registered["manifestCid"] if registered else None,
        metadata_cid=attested["metadataCid"] if attested else None,
        attested_by=attested["node"] if attested else None,
    )
    if attested is None:
        return view
    raw = open_store(settings).get(attested["metadataCid"])
    if keccak(raw) != record.metadata_hash:
        raise InvalidInputError(
            f"the metadata stored under {attested['metadataCid']} does not match the hash "
            f"attested on chain for asset {asset_id}"
        )
    document = load_untrusted_object(
        raw,
        what=f"the metadata document {attested['metadataCid']} of asset {asset_id}",
        max_bytes=len(raw),  # its hash is the one attested on chain: the size is the node's
        hint=f"the node {attested['node']} attested a broken document: tell governance",
    )
    labels: dict[str, int] = {}
    for sample in document["samples"]:
        labels[sample["label"]] = labels.get(sample["label"], 0) + 1
    view.labels.update(dict(sorted(labels.items())))
    for sample in document["samples"][:samples]:
        view.samples.append({k: v for k, v in sample.items() if k != "histogram"})
    view.duplicate_links.extend(document["duplicateLinks"])
    return view


def _first_log(logs: Sequence[Any]) -> dict[str, Any] | None:
    return dict(logs[0]["args"]) if logs else None


def withdraw_asset(settings: Settings, owner: UnlockedAccount, asset_id: int) -> str:
    """Withdraw ``asset_id`` (only its owner); returns its new status."""
    conn = connect_deployed(settings)
    assets = conn.deployment.asset_registry(conn.client)
    conn.client.fund_from_dev_faucet(owner.address)
    assets.withdraw_asset(owner.local_account, asset_id)
    return assets.asset(asset_id).status.name.lower()
