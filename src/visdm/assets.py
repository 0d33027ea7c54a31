"""Provider-side asset registration, end to end (paper Algorithm 2, design 3.2 steps 1–5).

:func:`add_asset` is what ``visdm asset add`` runs: validate the folder (every bad file and
labels row is reported by name, with its reason), encrypt and store each sample, wrap the data
key for the owner and each allowed compute node, write and sign the XML manifest, store it, and
register the asset on chain. :func:`check_asset` is ``--check``: everything ``add`` would find,
with nothing stored, signed or sent. :func:`list_assets`, :func:`show_asset` and
:func:`withdraw_asset` back the other ``visdm asset`` commands; ``show`` includes the public
metadata the node attested.

What ``add`` refuses unless told otherwise: a folder with any rejected file or unusable labels
row (``partial=True`` registers the accepted files only), and a folder whose every accepted file
is already in a live asset of the same owner, registered from this data directory
(``again=True`` registers them a second time); some files already registered only earn a
note. A run that fails or is interrupted before its registration is sent unpins what it stored;
one interrupted while registering keeps it, and the next ``add`` finds the registration if it
was mined.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from visdm.accounts import UnlockedAccount
from visdm.chain.client import TxResult
from visdm.chain.contracts import AssetRegistry, AssetStatus, StakeholderRegistry
from visdm.config import Settings
from visdm.errors import (
    ChainError,
    ContractRevertError,
    InvalidInputError,
    NoValidSamplesError,
    TransactionFailedError,
    VisdmError,
)
from visdm.ingest import IngestReport, KeyRecipient, prepare_asset, validate_directory
from visdm.ingest._ledger import AssetLedger, LedgerEntry
from visdm.ingest._prepare import release_blobs
from visdm.jsonsafe import load_untrusted_object, one_line, read_untrusted_file
from visdm.manifest import AssetManifest, Licence, manifest_hash, sign_manifest
from visdm.manifest._model import checked_address
from visdm.session import Connection, connect_deployed, open_store
from visdm.types import Address, AssetId, Cid

__all__ = [
    "LEDGER_FILE",
    "AddedAsset",
    "AssetCheck",
    "AssetView",
    "active_nodes",
    "add_asset",
    "check_asset",
    "check_licence",
    "list_assets",
    "load_licence",
    "show_asset",
    "withdraw_asset",
]

#: stages reported to the progress callback of :func:`add_asset`
STAGES = ("validate", "encrypt and store", "sign manifest", "register on chain")
#: the record of added assets, under ``Settings.provider_dir``
LEDGER_FILE = "assets.sqlite3"
#: a licence purpose, as the manifest schema (asset-manifest.xsd) allows it
_PURPOSE = re.compile(r"[a-z][a-z0-9\-]{0,31}")


@dataclass(frozen=True, slots=True)
class AddedAsset:
    """What ``visdm asset add`` did. ``rejected`` and ``label_problems`` are left out (only
    with ``partial``); ``already_registered`` names live assets holding some of the files."""

    asset_id: AssetId
    manifest_cid: Cid
    sample_count: int
    rejected: list[dict[str, str]]
    label_problems: list[dict[str, Any]]
    already_registered: list[dict[str, Any]]
    nodes: list[str]
    regions: list[str]
    gas_used: int
    #: the ``registerAsset`` transaction
    tx_hash: str = ""
    block_number: int = 0


@dataclass(frozen=True, slots=True)
class AssetCheck:
    """What ``visdm asset add --check`` finds: everything ``add`` would refuse or go ahead
    with, found without storing, signing or sending anything. ``problems`` are the reasons
    ``add`` would refuse (empty: it would register ``accepted`` samples); ``not_checked``
    says what could not be looked at and why."""

    directory: str
    ready: bool
    problems: list[str]
    accepted: int
    labels: list[str]
    rejected: list[dict[str, str]]
    label_problems: list[dict[str, Any]]
    already_registered: list[dict[str, Any]]
    regions: list[str]
    nodes: list[str]
    not_checked: list[str]


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
            one_line(
                f"licence file {path} has unknown keys: {', '.join(sorted(unknown))}; the keys "
                f"are {', '.join(sorted(known))}"
            )
        )

    def strings(key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInputError(f"licence file {path}: {key} must be a list of strings")
        return tuple(value)

    def unique(key: str, items: Sequence[str]) -> None:
        # the signed manifest refuses what follows too, but only after every image is stored
        twice = next((item for i, item in enumerate(items) if item in items[:i]), None)
        if twice is not None:
            raise InvalidInputError(one_line(f"licence file {path}: {key} lists {twice} twice"))

    def addresses(key: str) -> tuple[Address, ...]:
        try:
            found = tuple(checked_address(a, f"{key}[{i}]") for i, a in enumerate(strings(key)))
        except InvalidInputError as exc:
            raise InvalidInputError(
                one_line(f"licence file {path}: {exc}: give 0x and 40 hex digits")
            ) from None
        unique(key, found)
        return found

    purposes = strings("purposes") or ("training",)
    unique("purposes", purposes)
    allowed, denied = addresses("allowed_consumers"), addresses("denied_consumers")
    both = sorted(set(allowed) & set(denied))
    if both:
        raise InvalidInputError(
            f"licence file {path}: consumer {both[0]} is both allowed and denied"
        )
    when = _licence_expiry(data.get("expires"), path)
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
        purposes=purposes,
        allowed_consumers=allowed,
        denied_consumers=denied,
        expires=when,
        **terms,
    )


def _licence_expiry(expires: Any, path: Path | None) -> datetime | None:
    """A licence file's ``expires``, as the manifest will write it: UTC (no zone means UTC),
    whole seconds, in the future."""
    if expires is None:
        return None
    try:
        when = datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
        # out of range near year 1 or 9999 once moved to UTC
        when = (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInputError(
            one_line(f"licence file {path}: expires {expires!r} is not an ISO 8601 time")
        ) from None
    if when.microsecond or when <= datetime.now(UTC):
        raise InvalidInputError(
            f"licence file {path}: expires {expires!r} must be a whole second in the future"
        )
    return when


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
    partial: bool = False,
    again: bool = False,
    on_stage: Callable[[str, IngestReport | None], None] | None = None,
    on_sample: Callable[[int], None] | None = None,
) -> AddedAsset:
    """Validate, encrypt, store, sign and register the images in ``directory``.

    ``nodes``: the compute nodes allowed to decrypt (default: every active node in
    ``regions``). ``partial``: register the accepted files even though others were rejected
    or labels rows are unusable. ``again``: register files that are all already in a live
    asset of ``owner``. A refusal raises :class:`~visdm.errors.InvalidInputError` with the
    validation report as ``.report`` (when there is one). Nothing is written on chain unless
    every step before it succeeded, and what a failed run stored is unpinned (see the module
    docstring).
    """
    terms = _checked_terms(licence, regions)
    conn = connect_deployed(settings)
    recipients = _recipients(conn, regions, nodes)

    def stage(name: str, report: IngestReport | None = None) -> None:
        if on_stage is not None:
            on_stage(name, report)

    stage("validate")
    report = validate_directory(directory, labels_file=labels_file)
    refusal = _incomplete(directory, report, partial=partial)
    if refusal is not None:
        raise _refusal(refusal, report)
    assets = conn.deployment.asset_registry(conn.client)
    ledger = AssetLedger(settings.provider_dir / LEDGER_FILE)
    try:
        live = _registered_before(assets, ledger, owner.address, report, writable=True)
        refusal = _repeated(directory, report, ledger, live, again=again)
        if refusal is not None:
            raise _refusal(refusal, report)
        stage("encrypt and store", report)
        store = open_store(settings)
        prepared = prepare_asset(
            report,
            store=store,
            owner=KeyRecipient(owner.address, owner.x25519_public),
            nodes=recipients,
            on_sample=on_sample,
        )
        stored: list[str] = [s.cid for s in prepared.samples]
        try:  # until the registration is sent, a failure leaves nothing pinned
            stage("sign manifest", report)
            manifest = AssetManifest.from_prepared(prepared, regions=regions, licence=terms)
            signed = sign_manifest(
                manifest,
                bytes(owner.local_account.key),
                chain_id=conn.client.chain_id,
                registry=assets.address,
            )
            manifest_cid = store.put(signed, pin=True)
            stored.append(manifest_cid)
            entry = ledger.begin(
                chain_id=conn.client.chain_id,
                registry=assets.address,
                owner=owner.address,
                manifest_hash=manifest_hash(manifest),
                directory=str(Path(directory).resolve()),
                digests=[s.sha256 for s in report.accepted],
            )
            stage("register on chain", report)
            conn.client.fund_from_dev_faucet(owner.address)
        except BaseException:
            release_blobs(store, stored)
            raise
        try:
            asset_id, tx = assets.register_asset(
                owner.local_account,
                manifest_hash=manifest_hash(manifest),
                samples_root=prepared.samples_root,
                sample_count=prepared.sample_count,
                allowed_regions=list(regions),
                key_nodes=[r.address for r in recipients],
                manifest_cid=manifest_cid,
            )
        except (ContractRevertError, TransactionFailedError):
            # refused before it was sent, or reverted when mined: nothing was registered
            ledger.forget(entry)
            release_blobs(store, stored)
            raise
        # anything else (Ctrl-C, a timeout) leaves the outcome open: the blobs stay pinned and
        # the unsettled entry lets the next add find the registration if it was mined
        ledger.settle(entry, asset_id)
    finally:
        ledger.close()
    return AddedAsset(
        asset_id=asset_id,
        manifest_cid=manifest_cid,
        sample_count=prepared.sample_count,
        rejected=_rejected(report),
        label_problems=_label_problems(report),
        already_registered=_already(live),
        nodes=[to_checksum_address(r.address) for r in recipients],
        regions=list(regions),
        gas_used=tx.gas_used,
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
    )


def check_asset(
    settings: Settings,
    directory: Path,
    *,
    owner: str | None,
    labels_file: Path | None = None,
    regions: Sequence[str] = ("local",),
    nodes: Sequence[str] | None = None,
    licence: Licence | None = None,
    partial: bool = False,
    again: bool = False,
) -> AssetCheck:
    """What :func:`add_asset` with the same arguments would find, without storing, signing,
    sending or recording anything. ``owner`` (an address; ``None`` when there is no account)
    is whose earlier registrations are looked for. The chain is consulted when it answers;
    when it does not, ``not_checked`` says so."""
    problems: list[str] = []
    not_checked: list[str] = []
    try:
        _checked_terms(licence, regions)
    except InvalidInputError as exc:
        problems.append(str(exc))
    try:
        report = validate_directory(directory, labels_file=labels_file)
    except NoValidSamplesError as exc:
        report = exc.report  # type: ignore[attr-defined]
        problems.append(str(exc))
    else:
        refusal = _incomplete(directory, report, partial=partial)
        if refusal is not None:
            problems.append(refusal)
    live: list[tuple[int, LedgerEntry]] = []
    node_addresses: list[str] = []
    try:
        conn = connect_deployed(settings)
    except ChainError as exc:
        not_checked.append(f"regions, nodes and earlier registrations: {exc}")
    else:
        try:
            node_addresses = [r.address for r in _recipients(conn, regions, nodes)]
        except InvalidInputError as exc:
            problems.append(str(exc))
        ledger = AssetLedger.existing(settings.provider_dir / LEDGER_FILE)
        if owner is None:
            not_checked.append("earlier registrations: no account chosen (--account)")
        elif ledger is not None and report.accepted:
            try:
                assets = conn.deployment.asset_registry(conn.client)
                live = _registered_before(assets, ledger, owner, report, writable=False)
                refusal = _repeated(directory, report, ledger, live, again=again)
                if refusal is not None:
                    problems.append(refusal)
            finally:
                ledger.close()
    return AssetCheck(
        directory=str(directory),
        ready=not problems,
        problems=problems,
        accepted=len(report.accepted),
        labels=list(report.labels),
        rejected=_rejected(report),
        label_problems=_label_problems(report),
        already_registered=_already(live),
        regions=list(regions),
        nodes=[to_checksum_address(a) for a in node_addresses],
        not_checked=not_checked,
    )


def _checked_terms(licence: Licence | None, regions: Sequence[str]) -> Licence:
    if not regions:
        raise InvalidInputError("allow at least one region (--regions)")
    return check_licence(licence)


def check_licence(licence: Licence | None) -> Licence:
    """The licence to sign (default: training only), refused now if the manifest could not
    carry it — before a password is asked for or any image is encrypted or stored."""
    terms = licence or Licence(("training",))
    for purpose in terms.purposes:
        if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
            raise InvalidInputError(
                f"licence purpose {purpose!r} is not allowed: use 1-32 lower-case letters, "
                "digits and '-', starting with a letter (training, research)"
            )
    return terms


def _recipients(
    conn: Connection, regions: Sequence[str], nodes: Sequence[str] | None
) -> list[KeyRecipient]:
    """The compute nodes to wrap the data key for, checked against the chain."""
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
    return recipients


def _incomplete(directory: Path, report: IngestReport, *, partial: bool) -> str | None:
    if report.complete or partial:
        return None
    return (
        f"{directory}: {report.counts()} (first: {report.first_problem()}): fix them and add "
        f"again, or pass --partial to register only the {len(report.accepted)} accepted "
        "file(s)"
    )


def _registered_before(
    assets: AssetRegistry,
    ledger: AssetLedger,
    owner: str,
    report: IngestReport,
    *,
    writable: bool,
) -> list[tuple[int, LedgerEntry]]:
    """Live assets of ``owner`` (pending or active on chain) that this data directory
    registered from any of the accepted files, with their ledger entries. Entries of assets
    gone since (withdrawn, a fresh chain) or never registered are forgotten when ``writable``."""
    registry = assets.address
    chain_id = assets.client.chain_id
    live = []
    for entry in ledger.overlapping(
        chain_id=chain_id,
        registry=registry,
        owner=owner,
        digests=[s.sha256 for s in report.accepted],
    ):
        asset_id = entry.asset_id
        if asset_id is None:  # an add interrupted while registering: was it mined?
            asset_id = _registration_of(assets, owner, entry.manifest_hash)
            if asset_id is not None and writable:
                ledger.settle(entry.entry, asset_id)
        record = assets.asset(asset_id) if asset_id is not None else None
        if (
            asset_id is None
            or record is None
            or record.status in (AssetStatus.NONE, AssetStatus.WITHDRAWN)
            or str(record.owner) != str(owner)
        ):
            if writable:
                ledger.forget(entry.entry)
            continue
        live.append((asset_id, entry))
    return live


def _registration_of(assets: AssetRegistry, owner: str, wanted: bytes) -> int | None:
    for log in assets.logs("AssetRegistered", where={"owner": owner}):
        if bytes(log["args"]["manifestHash"]) == wanted:
            return int(log["args"]["assetId"])
    return None


def _repeated(
    directory: Path,
    report: IngestReport,
    ledger: AssetLedger,
    live: list[tuple[int, LedgerEntry]],
    *,
    again: bool,
) -> str | None:
    """The refusal when every accepted file is already in a live asset (and not ``again``)."""
    if again or not live:
        return None
    digests = {s.sha256 for s in report.accepted}
    held = ledger.holding([entry.entry for _, entry in live], digests)
    if held != digests:
        return None  # some files are new: the overlap is reported, not refused
    ids = ", ".join(str(asset_id) for asset_id, _ in live)
    first_id, first = live[0]
    return (
        f"every accepted file of {directory} is already registered, in asset(s) {ids} "
        f"(asset {first_id} was added from {first.directory}): withdraw it first, or pass "
        "--again to register the same images a second time"
    )


def _already(live: list[tuple[int, LedgerEntry]]) -> list[dict[str, Any]]:
    return [
        {"asset_id": asset_id, "files": entry.shared, "directory": entry.directory}
        for asset_id, entry in live
    ]


def _rejected(report: IngestReport) -> list[dict[str, str]]:
    return [{"file": r.name, "reason": r.reason} for r in report.rejected]


def _label_problems(report: IngestReport) -> list[dict[str, Any]]:
    return [
        {"file": report.labels_file.name, "line": p.line, "reason": p.reason}
        for p in report.label_problems
    ]


def _refusal(message: str, report: IngestReport) -> VisdmError:
    error = InvalidInputError(message)
    error.report = report  # type: ignore[attr-defined]
    return error


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
                "sample_count": record.sample_count,
                "accepted_count": record.accepted_count,
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


def withdraw_asset(
    settings: Settings, owner: UnlockedAccount, asset_id: int
) -> tuple[str, TxResult]:
    """Withdraw ``asset_id`` (only its owner); returns its new status and the transaction."""
    conn = connect_deployed(settings)
    assets = conn.deployment.asset_registry(conn.client)
    conn.client.fund_from_dev_faucet(owner.address)
    tx = assets.withdraw_asset(owner.local_account, asset_id)
    return assets.asset(asset_id).status.name.lower(), tx
