"""Encrypt validated samples, store them, wrap the data key, and commit to the sample ids.

Design section 3.2 steps 2–3 and the ``samplesRoot`` of step 5:

1. one fresh random 256-bit data key per asset (:func:`~visdm.crypto.generate_data_key`);
2. each image file's bytes, unchanged, encrypted with XChaCha20-Poly1305 under that key with
   :func:`sample_aad` of its index as associated data — a blob moved to another index does not
   decrypt — and put into the content store (pinned), giving one CID per sample;
3. sample id = the 32-byte sha2-256 digest inside that CID (:func:`~visdm.storage.cid_digest`);
   the ids are unique because every blob has a fresh random nonce;
4. the data key sealed (libsodium sealed box) to the X25519 key of every allowed compute node
   and of the owner, who can thus always recover it from the public manifest;
5. ``samples_root``: an OpenZeppelin ``StandardMerkleTree`` root over ``[bytes32 sample_id]``
   leaves in index order — a contract verifies membership with ``MerkleProof.verify`` and
   ``keccak256(bytes.concat(keccak256(abi.encode(sampleId))))``.

Files are re-read and their SHA-256 compared with the validation report, so a file changed
between validation and upload is refused instead of uploaded unchecked. The data key is never
returned or written anywhere; only wrapped copies leave this function.

A run that fails or is interrupted (Ctrl-C) part way unpins every blob it stored before the
exception goes on: nothing can ever refer to them (the data key dies with the run), so they are
left to the store's garbage collection instead of staying pinned forever.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from eth_utils.address import is_address, to_checksum_address

from visdm.crypto import decrypt_blob, encrypt_blob, generate_data_key, wrap_key
from visdm.errors import InvalidInputError, StorageError
from visdm.merkle import StandardMerkleTree
from visdm.storage import ContentStore, cid_digest
from visdm.types import Address, Cid, SampleId

from ._validate import AcceptedSample, IngestReport

__all__ = [
    "SAMPLE_AAD_PREFIX",
    "SAMPLE_LEAF_ENCODING",
    "KeyRecipient",
    "PreparedAsset",
    "PreparedSample",
    "WrappedKey",
    "decrypt_sample",
    "prepare_asset",
    "release_blobs",
    "sample_aad",
]

#: prefix of every sample's associated data; the 8-byte big-endian index follows
SAMPLE_AAD_PREFIX = b"visdm/sample/v1:"
#: ABI leaf encoding of the samples tree
SAMPLE_LEAF_ENCODING: tuple[str, ...] = ("bytes32",)
_MAX_SAMPLES = 2**32 - 1  # sampleCount is a uint32 on chain


def sample_aad(index: int) -> bytes:
    """The AEAD associated data of sample ``index``: prefix + 8-byte big-endian index."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= _MAX_SAMPLES:
        raise InvalidInputError(f"sample index must be an integer in 0..{_MAX_SAMPLES}")
    return SAMPLE_AAD_PREFIX + index.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class KeyRecipient:
    """Someone the data key is wrapped for: an account and its X25519 public key."""

    address: Address
    x25519_public: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not is_address(self.address):
            raise InvalidInputError(f"recipient address {self.address!r} is not an address")
        object.__setattr__(self, "address", Address(to_checksum_address(self.address)))
        key = self.x25519_public
        if not isinstance(key, bytes) or len(key) != 32:
            raise InvalidInputError(
                f"X25519 public key of {self.address} must be 32 bytes, got "
                f"{len(key) if isinstance(key, bytes) else type(key).__name__}"
            )


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """The data key sealed to one recipient; ``role`` is ``"owner"`` or ``"node"``."""

    role: str
    address: Address
    x25519_public: bytes
    wrapped: bytes


@dataclass(frozen=True, slots=True)
class PreparedSample:
    """One stored, encrypted sample. ``name`` and ``sha256`` stay with the provider."""

    index: int
    cid: Cid
    sample_id: SampleId
    label: str
    name: str
    sha256: bytes


@dataclass(frozen=True, slots=True)
class PreparedAsset:
    """Everything the manifest and ``registerAsset`` need, and nothing secret."""

    owner: Address
    samples: tuple[PreparedSample, ...]
    wrapped_keys: tuple[WrappedKey, ...]
    tree: StandardMerkleTree

    @property
    def samples_root(self) -> bytes:
        """``samplesRoot`` for ``registerAsset``."""
        return self.tree.root

    @property
    def sample_count(self) -> int:
        return len(self.samples)

    def sample_proof(self, index: int) -> list[bytes]:
        """The Merkle proof that ``samples[index].sample_id`` is in :attr:`samples_root`."""
        return self.tree.proof(index)


def prepare_asset(
    samples: IngestReport | Sequence[AcceptedSample],
    *,
    store: ContentStore,
    owner: KeyRecipient,
    nodes: Sequence[KeyRecipient],
    pin: bool = True,
    on_sample: Callable[[int], None] | None = None,
) -> PreparedAsset:
    """Encrypt and store every accepted sample, wrap the data key for ``owner`` and ``nodes``.

    ``on_sample(done)`` is called after each sample is stored (for progress bars).

    Raises :class:`~visdm.errors.InvalidInputError` when there is no sample, no node, a
    recipient twice, or a file changed since it was validated. Whatever it raises — a
    ``KeyboardInterrupt`` included — the blobs this call pinned are unpinned first.
    """
    accepted = list(samples.accepted if isinstance(samples, IngestReport) else samples)
    if not accepted:
        raise InvalidInputError("no accepted samples to prepare: validate the directory first")
    if len(accepted) > _MAX_SAMPLES:
        raise InvalidInputError(f"an asset holds at most {_MAX_SAMPLES} samples")
    if [s.index for s in accepted] != list(range(len(accepted))):
        raise InvalidInputError(
            "accepted samples must be numbered 0..n-1 in order, as validate_directory does"
        )
    if not nodes:
        raise InvalidInputError(
            "no compute node to wrap the data key for: no node could ever decrypt the samples"
        )
    recipients = [("owner", owner), *(("node", n) for n in nodes)]
    seen: set[str] = set()
    for _, recipient in recipients:
        if recipient.address in seen:
            raise InvalidInputError(f"recipient {recipient.address} is listed twice")
        seen.add(recipient.address)
    data_key = generate_data_key()
    wrapped = tuple(
        WrappedKey(role, r.address, r.x25519_public, wrap_key(data_key, r.x25519_public))
        for role, r in recipients
    )
    prepared: list[PreparedSample] = []
    try:
        for sample in accepted:
            data = _read_unchanged(sample)
            cid = store.put(encrypt_blob(data_key, data, aad=sample_aad(sample.index)), pin=pin)
            prepared.append(
                PreparedSample(
                    index=sample.index,
                    cid=cid,
                    sample_id=SampleId(cid_digest(cid)),
                    label=sample.label,
                    name=sample.name,
                    sha256=sample.sha256,
                )
            )
            if on_sample is not None:
                on_sample(len(prepared))
    except BaseException:
        if pin:
            release_blobs(store, [s.cid for s in prepared])
        raise
    tree = StandardMerkleTree.of([(s.sample_id,) for s in prepared], SAMPLE_LEAF_ENCODING)
    return PreparedAsset(owner.address, tuple(prepared), wrapped, tree)


def _read_unchanged(sample: AcceptedSample) -> bytes:
    try:
        data = sample.path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            f"{sample.name} cannot be read any more ({exc.strerror or exc}): validate the "
            "directory again"
        ) from None
    if hashlib.sha256(data).digest() != sample.sha256:
        raise InvalidInputError(
            f"{sample.name} changed since it was validated: validate the directory again"
        )
    return data


def release_blobs(store: ContentStore, cids: Iterable[str]) -> int:
    """Unpin ``cids`` (blobs a failed run stored and nothing refers to); returns how many were
    unpinned. Never raises a storage error: this runs while another exception is on its way."""
    released = 0
    for cid in cids:
        with contextlib.suppress(StorageError):
            store.unpin(cid)
            released += 1
    return released


def decrypt_sample(store: ContentStore, cid: str, *, index: int, data_key: bytes) -> bytes:
    """Fetch sample ``index``'s blob (verified against ``cid`` by the store) and decrypt it.

    Raises the store's errors, or :class:`~visdm.errors.DecryptionError` when the key is wrong,
    the blob was made for another index, or it was altered.
    """
    return decrypt_blob(data_key, store.get(cid), aad=sample_aad(index))
