"""The asset manifest as typed values, with every rule the schema cannot express.

The XSD checks shapes (an address is ``0x`` + 40 hex digits, an index is unsigned…); the
constructor of :class:`AssetManifest` checks meaning, so that a manifest built in code and one
parsed from XML are held to the same rules:

* addresses with mixed case must carry a valid EIP-55 checksum; all are stored checksummed;
* every CID parses as a CID ViSDM serves; sample indices are exactly ``0..n-1`` in order;
  no CID twice; ``samples_root`` equals the Merkle root recomputed from the sample ids;
* exactly one ``owner`` key, for the owner; the ``node`` keys are for exactly the allowed
  compute nodes (a node without a key could not decrypt; a key for a node not allowed would
  leak the data to it); no recipient twice; keys and sealed keys have their exact lengths;
* at least one region and one compute node, no duplicates; at least one purpose; no consumer
  both allowed and denied; the expiry, if any, after the creation time; times in UTC whole
  seconds.

:class:`Licence` checks its own privacy terms on construction (a licence with a cap of ε = NaN
must not exist anywhere, not only inside a manifest): ``max_epsilon`` finite in (0, 100],
``max_delta`` finite in (0, 0.01) or ``None``, ``dp_required`` a bool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from eth_utils.address import is_address, is_checksum_address, to_checksum_address

from visdm.errors import InvalidManifestError, VisdmError
from visdm.ingest import SAMPLE_LEAF_ENCODING, PreparedAsset
from visdm.merkle import StandardMerkleTree
from visdm.storage import cid_digest, parse_cid
from visdm.types import Address, Cid, SampleId

__all__ = [
    "FORMAT_VERSION",
    "MAX_LICENCE_DELTA",
    "MAX_LICENCE_EPSILON",
    "AssetManifest",
    "Licence",
    "Location",
    "ManifestKey",
    "ManifestSample",
]

#: the manifest format version this code writes and reads
FORMAT_VERSION = 1
_WRAPPED_KEY_BYTES = 80
_X25519_BYTES = 32


def checked_address(value: object, what: str) -> Address:
    """A checksummed address, refusing malformed ones and wrong EIP-55 checksums."""
    if not isinstance(value, str) or not is_address(value):
        raise InvalidManifestError(f"{what} {value!r} is not an Ethereum address")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise InvalidManifestError(
            f"{what} {value} has a wrong EIP-55 checksum (mistyped?): expected "
            f"{to_checksum_address(value)}"
        )
    return Address(to_checksum_address(value))


def _utc_seconds(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidManifestError(f"{what} must be a timezone-aware datetime, got {value!r}")
    if value.microsecond:
        raise InvalidManifestError(f"{what} must be whole seconds, got {value.isoformat()}")
    return value.astimezone(UTC)


def _unique(items: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise InvalidManifestError(f"{what} {item} is listed twice")
        seen.add(item)


@dataclass(frozen=True, slots=True)
class ManifestSample:
    """One encrypted sample: its index (the AEAD associated data), CID and label."""

    index: int
    cid: Cid
    label: str

    @property
    def sample_id(self) -> SampleId:
        """The sample id: the sha2-256 digest inside the CID."""
        return SampleId(cid_digest(self.cid))


@dataclass(frozen=True, slots=True)
class ManifestKey:
    """The data key sealed to one recipient (``role`` is ``owner`` or ``node``)."""

    role: str
    recipient: Address
    x25519_public: bytes
    wrapped: bytes


@dataclass(frozen=True, slots=True)
class Location:
    """Where the data may be processed: region names and compute-node addresses."""

    regions: tuple[str, ...]
    compute_nodes: tuple[Address, ...]


#: the largest ε a licence may allow; DP-SGD beyond it promises next to nothing (DPSpec agrees)
MAX_LICENCE_EPSILON = 100.0
#: a licence's δ cap must stay below this (DPSpec's bound on ``delta``)
MAX_LICENCE_DELTA = 1e-2


@dataclass(frozen=True, slots=True)
class Licence:
    """What the data may be used for, by whom, until when (``None``: no expiry), and how
    privately it must be trained.

    Privacy terms: ``dp_required`` — training must use DP-SGD (default); ``max_epsilon`` — the
    largest ε a round may spend on the data when DP is used (default 8, also binding when DP
    is not required); ``max_delta`` — the largest δ, or ``None`` for "below 1/N", N the
    round's training samples. :func:`~visdm.manifest.privacy_refusal` applies them.
    """

    purposes: tuple[str, ...]
    allowed_consumers: tuple[Address, ...] = ()
    denied_consumers: tuple[Address, ...] = ()
    expires: datetime | None = None
    dp_required: bool = True
    max_epsilon: float = 8.0
    max_delta: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dp_required, bool):
            raise InvalidManifestError(
                f"licence dp_required must be true or false, got {self.dp_required!r}"
            )
        epsilon = _number(self.max_epsilon, "max_epsilon")
        if not 0.0 < epsilon <= MAX_LICENCE_EPSILON:
            raise InvalidManifestError(
                f"licence max_epsilon must be in (0, {MAX_LICENCE_EPSILON:g}], got {epsilon!r}: "
                "a smaller ε is more private; 1 to 10 is usual"
            )
        object.__setattr__(self, "max_epsilon", epsilon)
        if self.max_delta is not None:
            delta = _number(self.max_delta, "max_delta")
            if not 0.0 < delta < MAX_LICENCE_DELTA:
                raise InvalidManifestError(
                    f"licence max_delta must be in (0, {MAX_LICENCE_DELTA:g}), got {delta!r}: "
                    "leave it unset for the usual bound, below 1/N"
                )
            object.__setattr__(self, "max_delta", delta)


def _number(value: object, what: str) -> float:
    # bool is an int to Python, but `true` is no privacy budget
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidManifestError(f"licence {what} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int past the float range; too long to echo back
        raise InvalidManifestError(f"licence {what} must be finite, got a huge integer") from None
    if not math.isfinite(number):
        raise InvalidManifestError(f"licence {what} must be finite, got {number!r}")
    return number


@dataclass(frozen=True, slots=True)
class AssetManifest:
    """An asset manifest (format :data:`FORMAT_VERSION`); see the module docstring for the
    rules every instance satisfies."""

    owner: Address
    created_at: datetime
    samples: tuple[ManifestSample, ...]
    samples_root: bytes
    keys: tuple[ManifestKey, ...]
    location: Location
    licence: Licence
    version: int = field(default=FORMAT_VERSION)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.version != FORMAT_VERSION:
            raise InvalidManifestError(
                f"manifest format version {self.version} is not supported (this ViSDM reads "
                f"version {FORMAT_VERSION})"
            )
        set_(self, "owner", checked_address(self.owner, "owner"))
        set_(self, "created_at", _utc_seconds(self.created_at, "createdAt"))
        set_(self, "samples", tuple(self.samples))
        set_(self, "keys", tuple(self.keys))
        self._check_samples()
        self._check_keys_and_location()
        self._check_licence()

    # --- rules --------------------------------------------------------------------------------
    def _check_samples(self) -> None:
        if not self.samples:
            raise InvalidManifestError("manifest has no samples")
        canonical = []
        for position, sample in enumerate(self.samples):
            if sample.index != position:
                raise InvalidManifestError(
                    f"sample at position {position} has index {sample.index}: indices must be "
                    f"0..{len(self.samples) - 1} in order"
                )
            try:
                cid = parse_cid(sample.cid)
            except VisdmError as exc:
                raise InvalidManifestError(f"sample {sample.index}: {exc}") from None
            if cid != sample.cid:
                raise InvalidManifestError(
                    f"sample {sample.index}: CID {sample.cid!r} is not in canonical form ({cid})"
                )
            if not isinstance(sample.label, str) or not sample.label.strip():
                raise InvalidManifestError(f"sample {sample.index} has an empty label")
            canonical.append(cid)
        _unique(canonical, "sample CID")
        if not isinstance(self.samples_root, bytes) or len(self.samples_root) != 32:
            raise InvalidManifestError("samples root must be 32 bytes")
        tree = StandardMerkleTree.of([(s.sample_id,) for s in self.samples], SAMPLE_LEAF_ENCODING)
        if tree.root != self.samples_root:
            raise InvalidManifestError(
                f"samples root 0x{self.samples_root.hex()} does not match the samples (their "
                f"ids give 0x{tree.root.hex()})"
            )

    def _check_keys_and_location(self) -> None:
        keys = []
        for key in self.keys:
            recipient = checked_address(key.recipient, "key recipient")
            if key.role not in ("owner", "node"):
                raise InvalidManifestError(f"key for {recipient} has unknown role {key.role!r}")
            if len(key.x25519_public) != _X25519_BYTES:
                raise InvalidManifestError(f"X25519 key of {recipient} is not 32 bytes")
            if len(key.wrapped) != _WRAPPED_KEY_BYTES:
                raise InvalidManifestError(
                    f"wrapped key for {recipient} is {len(key.wrapped)} bytes, not "
                    f"{_WRAPPED_KEY_BYTES}"
                )
            keys.append(ManifestKey(key.role, recipient, key.x25519_public, key.wrapped))
        object.__setattr__(self, "keys", tuple(keys))
        _unique([k.recipient for k in keys], "key recipient")
        owners = [k.recipient for k in keys if k.role == "owner"]
        if owners != [self.owner]:
            raise InvalidManifestError(
                f"manifest needs exactly one owner key, for {self.owner}; found {owners}"
            )
        location = self.location
        if not location.regions:
            raise InvalidManifestError("location lists no region: allow at least one")
        _unique(list(location.regions), "region")
        nodes = tuple(checked_address(n, "compute node") for n in location.compute_nodes)
        if not nodes:
            raise InvalidManifestError("location lists no compute node: allow at least one")
        _unique(list(nodes), "compute node")
        object.__setattr__(self, "location", Location(tuple(location.regions), nodes))
        node_keys = {k.recipient for k in keys if k.role == "node"}
        if node_keys != set(nodes):
            missing = sorted(set(nodes) - node_keys)
            extra = sorted(node_keys - set(nodes))
            raise InvalidManifestError(
                "node keys must match the allowed compute nodes: "
                f"no key for {missing or 'none'}, key for a node not allowed {extra or 'none'}"
            )

    def _check_licence(self) -> None:
        licence = self.licence
        if not licence.purposes:
            raise InvalidManifestError("licence lists no purpose")
        _unique(list(licence.purposes), "purpose")
        allowed = tuple(checked_address(a, "allowed consumer") for a in licence.allowed_consumers)
        denied = tuple(checked_address(a, "denied consumer") for a in licence.denied_consumers)
        _unique(list(allowed), "allowed consumer")
        _unique(list(denied), "denied consumer")
        both = sorted(set(allowed) & set(denied))
        if both:
            raise InvalidManifestError(f"consumer {both[0]} is both allowed and denied")
        expires = None
        if licence.expires is not None:
            expires = _utc_seconds(licence.expires, "licence expiry")
            if expires <= self.created_at:
                raise InvalidManifestError(
                    f"licence expires ({expires:%Y-%m-%dT%H:%M:%SZ}) before it was created "
                    f"({self.created_at:%Y-%m-%dT%H:%M:%SZ})"
                )
        object.__setattr__(
            self,
            "licence",
            replace(
                licence,
                purposes=tuple(licence.purposes),
                allowed_consumers=allowed,
                denied_consumers=denied,
                expires=expires,
            ),
        )

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_prepared(
        cls,
        asset: PreparedAsset,
        *,
        regions: Sequence[str],
        licence: Licence,
        created_at: datetime | None = None,
    ) -> AssetManifest:
        """The manifest of a prepared asset; the allowed nodes are its node-key recipients."""
        when = created_at or datetime.now(UTC).replace(microsecond=0)
        return cls(
            owner=asset.owner,
            created_at=when,
            samples=tuple(ManifestSample(s.index, s.cid, s.label) for s in asset.samples),
            samples_root=asset.samples_root,
            keys=tuple(
                ManifestKey(k.role, k.address, k.x25519_public, k.wrapped)
                for k in asset.wrapped_keys
            ),
            location=Location(
                tuple(regions),
                tuple(k.address for k in asset.wrapped_keys if k.role == "node"),
            ),
            licence=licence,
        )

    def key_for(self, recipient: str) -> ManifestKey:
        """The wrapped key for ``recipient`` (raises if the manifest has none for it)."""
        address = checked_address(recipient, "recipient")
        for key in self.keys:
            if key.recipient == address:
                return key
        raise InvalidManifestError(f"manifest has no wrapped key for {address}")
