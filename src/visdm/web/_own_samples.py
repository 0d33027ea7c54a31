"""A provider's own images, read on its own machine for its own eyes: nothing here is public.

The store holds only encrypted samples and the chain only hashes, so there is exactly one way
to see what an asset really holds: open it as its owner. The manifest (whose hash is on chain)
lists every sample's CID and carries the data key sealed to the owner's X25519 key, which is
derived from the owner's account secret; the unlocked account opens it, the store checks each
blob against its CID, and the AEAD binds each blob to its sample index. The bytes that come out
are byte for byte the file that ``asset add`` registered, so:

* every image shown is **decrypted from the owner's encrypted sample** with the owner's key —
  what the market holds, not what the folder holds now;
* the **original file** is looked for in the folder this data directory recorded for the asset
  (``asset add`` keeps it in the record of added assets): the file there with the same SHA-256
  is the original, unchanged, and gives the sample its file name. The record keeps file digests
  but no names, so a file edited since shows as *changed since added* without a name.

These are bytes the owner's own ``asset add`` decoded on this machine already, and their
digest proves it, so they are decoded here (with the same bounded decoder) rather than in a
sandbox. Only the owner's unlocked account is ever asked: a session without one, a browser
wallet (which never holds the encryption key), or another account is refused before any
sample is read.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from visdm.accounts import UnlockedAccount
from visdm.assets import LEDGER_FILE
from visdm.chain.contracts import AssetStatus
from visdm.config import Settings
from visdm.errors import CryptoError, InvalidInputError, StorageError
from visdm.ingest import decode_image, decrypt_sample
from visdm.ingest._ledger import AssetLedger
from visdm.jsonsafe import one_line
from visdm.manifest import AssetManifest
from visdm.proposals import PublicAsset, load_public_asset
from visdm.session import connect_deployed, open_store
from visdm.storage import ContentStore

from ._auth import SessionError

__all__ = [
    "MAX_PER_PAGE",
    "PER_PAGE",
    "THUMBNAIL_PX",
    "OwnAsset",
    "OwnImages",
    "OwnSample",
    "find_originals",
    "open_own_asset",
    "own_images",
    "own_thumbnail",
    "thumbnail_jpeg",
]

#: samples per page by default, and at most
PER_PAGE = 100
MAX_PER_PAGE = 200
#: the longest side of a thumbnail, in pixels
THUMBNAIL_PX = 160
#: file digests remembered between pages, by path, size, inode and change times
_MAX_REMEMBERED = 200_000
# the decoder sets process-wide warning filters: one decode at a time (see decode_image)
_decode_lock = threading.Lock()
_digests: OrderedDict[tuple[str, int, int, int, int], bytes] = OrderedDict()
_digests_lock = threading.Lock()


class _NotFoundError(InvalidInputError):
    """An asset, sample or page that does not exist: the page answers 404."""

    status_code = 404


@dataclass(frozen=True, slots=True)
class OwnSample:
    """One sample as its owner sees it. ``state``: ``on disk`` (the original, unchanged),
    ``changed since added``, ``folder gone``, ``no record`` (this data directory did not add
    the asset) or ``unreadable`` (the encrypted sample cannot be opened: ``note`` says why)."""

    index: int
    sample_id: str
    label: str
    name: str | None
    state: str
    note: str
    #: the node's public metadata row (``None`` before attestation or for a refused sample)
    public: dict[str, Any] | None = None
    #: near-duplicate links that name this sample, in words
    links: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OwnImages:
    """One page of an asset's samples, for its owner."""

    asset_id: int
    owner: str
    status: str
    sample_count: int
    attested: bool
    page: int
    pages: int
    per_page: int
    #: the folder this data directory recorded the asset was added from (``None``: no record)
    directory: str | None
    samples: list[OwnSample]


@dataclass(frozen=True, slots=True)
class OwnAsset:
    """An asset checked to belong to the account, with what it takes to open its samples."""

    asset_id: int
    public: PublicAsset
    store: ContentStore
    data_key: bytes = field(repr=False)
    chain_id: int
    registry: str

    @property
    def manifest(self) -> AssetManifest:
        return self.public.manifest


def _check_owner(asset_id: int, owner: str, account: UnlockedAccount) -> None:
    if owner.lower() != str(account.address).lower():
        raise SessionError(
            f"asset {asset_id} belongs to {owner}, not to {account.name} "
            f"({account.address}), the account unlocked in this session: only its owner sees "
            "its images; nothing was read"
        )


def open_own_asset(settings: Settings, account: UnlockedAccount, asset_id: int) -> OwnAsset:
    """``asset_id`` when the chain says ``account`` owns it, with its verified manifest and
    the data key opened with the account's own key; refused otherwise, before any sample is
    read."""
    conn = connect_deployed(settings)
    assets = conn.deployment.asset_registry(conn.client)
    record = assets.asset(asset_id)
    if record.status == AssetStatus.NONE:
        raise _NotFoundError(
            f"asset {asset_id} does not exist (the newest is {assets.asset_count()}): check "
            "the number on the Provider page"
        )
    _check_owner(asset_id, str(record.owner), account)
    store = open_store(settings)
    public = load_public_asset(assets, store, asset_id, chain_id=conn.client.chain_id)
    wrapped = public.manifest.key_for(account.address)  # refuses an account without a key
    data_key = account.unwrap_key(wrapped.wrapped)
    return OwnAsset(asset_id, public, store, data_key, conn.client.chain_id, str(assets.address))


def _sample_bytes(own: OwnAsset, index: int) -> bytes:
    samples = own.manifest.samples
    if not 0 <= index < len(samples):
        raise _NotFoundError(
            f"asset {own.asset_id} has no sample {index}: its samples are numbered 0 to "
            f"{len(samples) - 1}"
        )
    entry = samples[index]
    return decrypt_sample(own.store, entry.cid, index=entry.index, data_key=own.data_key)


def thumbnail_jpeg(data: bytes, *, name: str = "<bytes>", size: int = THUMBNAIL_PX) -> bytes:
    """A JPEG at most ``size`` pixels on its longer side (never enlarged) of the image in
    ``data``, upright as its EXIF says, decoded with the samples' bounded decoder."""
    with _decode_lock:
        image = decode_image(data, name=name).image
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    if image.mode not in ("RGB", "L"):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def own_thumbnail(settings: Settings, account: UnlockedAccount, asset_id: int, index: int) -> bytes:
    """The thumbnail of sample ``index`` of ``asset_id``, decrypted for ``account``, its owner."""
    own = open_own_asset(settings, account, asset_id)
    data = _sample_bytes(own, index)
    return thumbnail_jpeg(data, name=f"sample {index} of asset {asset_id}")


def find_originals(directory: Path, wanted: dict[int, tuple[bytes, int]]) -> dict[int, str]:
    """For each sample (index → its SHA-256 and size in bytes), the file under ``directory``
    (relative, ``/`` separated) that holds exactly those bytes now; samples without one are
    left out.

    Only files of a wanted size are read; hidden files and folders and symbolic links are
    skipped, as ``asset add`` refuses them."""
    by_digest: dict[bytes, list[int]] = {}
    for index, (digest, _size) in wanted.items():
        by_digest.setdefault(digest, []).append(index)
    sizes = {size for _digest, size in wanted.values()}
    found: dict[int, str] = {}
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(f for f in files if not f.startswith(".")):
            path = Path(root) / file
            try:
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode) or info.st_size not in sizes:
                    continue
                digest = _file_digest(path, info)
            except OSError:
                continue  # unreadable now: it cannot be shown as the original
            for index in by_digest.pop(digest, []):
                found[index] = path.relative_to(directory).as_posix()
            if not by_digest:
                return found
    return found


def _file_digest(path: Path, info: os.stat_result) -> bytes:
    """The SHA-256 of ``path``, remembered while its size, inode and change times stay the
    same, so the next page (or the same page again) of a large folder reads no file twice."""
    key = (str(path), info.st_size, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
    with _digests_lock:
        known = _digests.get(key)
        if known is not None:
            _digests.move_to_end(key)
            return known
    digest = hashlib.sha256(path.read_bytes()).digest()
    with _digests_lock:
        _digests[key] = digest
        while len(_digests) > _MAX_REMEMBERED:
            _digests.popitem(last=False)
    return digest


def _recorded_folder(
    settings: Settings, account: UnlockedAccount, own: OwnAsset, digests: list[bytes]
) -> str | None:
    """The folder this data directory recorded ``own`` was added from, found through the
    samples' digests (the record keys files by digest, and an add interrupted while
    registering is matched by its manifest hash)."""
    ledger = AssetLedger.existing(settings.provider_dir / LEDGER_FILE)
    if ledger is None or not digests:
        return None
    try:
        entries = ledger.overlapping(
            chain_id=own.chain_id, registry=own.registry, owner=account.address, digests=digests
        )
    finally:
        ledger.close()
    for entry in entries:
        if entry.asset_id == own.asset_id or (
            entry.asset_id is None and entry.manifest_hash == own.public.record.manifest_hash
        ):
            return entry.directory
    return None


def own_images(
    settings: Settings,
    account: UnlockedAccount,
    asset_id: int,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> OwnImages:
    """Page ``page`` (from 1) of ``asset_id``'s samples for ``account``, its owner: each
    decrypted to find its original on disk, with its public metadata row and duplicate links.
    A sample that cannot be opened is reported on its row; it does not fail the page."""
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInputError(
            f"the field 'per_page' must be 1 to {MAX_PER_PAGE}, got {per_page}: a page shows "
            f"{PER_PAGE} samples unless told otherwise"
        )
    own = open_own_asset(settings, account, asset_id)
    entries = own.manifest.samples
    pages = max(1, -(-len(entries) // per_page))
    if not 1 <= page <= pages:
        raise _NotFoundError(
            f"asset {asset_id} has {len(entries)} samples on {pages} page(s) of {per_page}: "
            f"page {page} does not exist"
        )
    shown = entries[(page - 1) * per_page : page * per_page]
    opened: dict[int, tuple[bytes, int]] = {}
    problems: dict[int, str] = {}
    for entry in shown:
        try:
            data = _sample_bytes(own, entry.index)
        except (StorageError, CryptoError) as exc:
            problems[entry.index] = one_line(str(exc))
            continue
        opened[entry.index] = (hashlib.sha256(data).digest(), len(data))
    directory = _recorded_folder(settings, account, own, [d for d, _ in opened.values()])
    folder = Path(directory) if directory is not None else None
    names = find_originals(folder, opened) if folder is not None and folder.is_dir() else {}
    metadata = own.public.metadata or {}
    rows = {int(s["index"]): s for s in metadata.get("samples", [])}
    refused = {int(r["index"]): str(r["reason"]) for r in metadata.get("rejected", [])}
    ids = {"0x" + bytes(s.sample_id).hex(): s.index for s in entries}
    samples = []
    for entry in shown:
        sample_id = "0x" + bytes(entry.sample_id).hex()
        state, note = _state(entry.index, problems, names, folder)
        public = rows.get(entry.index)
        if public is None and entry.index in refused:
            note = f"{note}; the node did not accept it: {refused[entry.index]}"
        samples.append(
            OwnSample(
                index=entry.index,
                sample_id=sample_id,
                label=entry.label,
                name=names.get(entry.index),
                state=state,
                note=note,
                public=_public_row(public) if public is not None else None,
                links=_links(sample_id, metadata.get("duplicateLinks", []), ids),
            )
        )
    return OwnImages(
        asset_id=asset_id,
        owner=str(own.public.record.owner),
        status=own.public.record.status.name.lower(),
        sample_count=len(entries),
        attested=own.public.metadata is not None,
        page=page,
        pages=pages,
        per_page=per_page,
        directory=directory,
        samples=samples,
    )


def _state(
    index: int, problems: dict[int, str], names: dict[int, str], folder: Path | None
) -> tuple[str, str]:
    if index in problems:
        return "unreadable", f"your encrypted sample cannot be opened here: {problems[index]}"
    if index in names:
        return "on disk", "the original file, unchanged since added"
    if folder is None:
        return "no record", (
            "this data directory did not add this asset (or lost its record), so the file's "
            "name is not known; shown from your encrypted sample"
        )
    if not folder.is_dir():
        return "folder gone", f"{folder} is gone; shown from your encrypted sample"
    return "changed since added", (
        f"no file under {folder} holds these bytes any more (edited, moved or deleted); "
        "shown from your encrypted sample, as the market holds it"
    )


#: the public metadata shown per sample, in order: the document's key and the column's name
_COLUMNS = (
    ("format", "format"),
    ("byteSize", "bytes"),
    ("brightness", "brightness"),
    ("contrast", "contrast"),
    ("blur", "sharpness (blur)"),
    ("phash", "pHash"),
)


def _public_row(sample: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"resolution": f"{sample.get('width')}×{sample.get('height')}"}
    for key, column in _COLUMNS:
        value = sample.get(key)
        row[column] = round(value, 1) if isinstance(value, float) else value
    return row


def _links(sample_id: str, links: list[dict[str, Any]], ids: dict[str, int]) -> list[str]:
    def who(other: str) -> str:
        return f"sample {ids[other]} of this asset" if other in ids else f"{other[:10]}…"

    said = []
    for link in links:
        mine, other = str(link.get("sampleId", "")), str(link.get("otherId", ""))
        bits = f"{link.get('distance')} bits apart"
        if mine == sample_id:
            said.append(f"near-duplicate of {who(other)} ({bits})")
        elif other == sample_id:
            said.append(f"{who(mine)} is a near-duplicate of it ({bits})")
    return said
