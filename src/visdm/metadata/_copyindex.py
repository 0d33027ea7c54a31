"""Copy links: which stored samples an image is a flipped, rotated, cropped or re-toned copy of.

A link is made in two stages (copy hashes and probes: :mod:`._copyhash`):

1. **Key search.** Every stored hash is expanded to its 8 dihedral transforms; of the new
   image, the 63-bit key is taken for its content box and for 16 boxes with one side moved by
   4 or 8 % (crop hypotheses). A *candidate* is a (new image, stored sample, transform) whose keys
   lie within :data:`DEFAULT_COPY_KEY_RADIUS` bits for some hypothesis. The search is
   :func:`._hamming.find_cross_pairs` — exact multi-index hashing, or a linear scan when the
   cost model says it is cheaper — so the candidates are those a linear scan would give.
2. **Verification.** For each candidate, the new image's content box is refined
   (:func:`._copyhash.match_probe`) to bring its full 168-bit hash as close as it gets to the
   transformed stored hash; the link is made when that distance is at most
   :data:`DEFAULT_COPY_RADIUS` bits. The 105 higher-frequency bits tell apart the many
   distinct images whose 8×8 low-frequency signs agree (two plain ankle boots), which a key
   alone cannot.

Measured on Fashion-MNIST's training split (3,000 originals, 1,400 planted copies; the
radii were chosen there, ``benchmarks/metadata.py`` reports the test split): the pHash at
radius 8 linked 0 % of the flips and rotations and about half of the crops, at precision 0.1;
these two stages link 96–100 % of every kind at precision 0.93. Key radius 8 instead of 9
missed 5 % of the crops that were resized back (their key never came near); a verification
radius of 20 or 22 instead of 21 traded about 2.5 points of precision for 1–2 of recall.

A link records the transform (``0..7``, :data:`._copyhash.DIHEDRAL_NAMES`) that maps the stored
sample onto the new one, and the verified distance (rounded to whole bits).

:class:`CopyIndex` holds the active samples' copy hashes (and, for samples described before
copy hashes existed, their pHashes: those are linked as before, by pHash radius). Its
:meth:`CopyIndex.link` links a batch of new samples to everything active and to each other
(a later sample of the batch to an earlier one), then adds them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from visdm.errors import InvalidInputError

from ._copyhash import (
    COPY_HASH_BITS,
    COPY_HASH_WORDS,
    CopyProbe,
    copy_hash_words,
    dihedral_copy_hashes,
    hypothesis_keys,
    match_probe,
    words_to_bits,
)
from ._hamming import (
    DEFAULT_DUPLICATE_RADIUS,
    HashesLike,
    _as_hashes,
    find_cross_pairs,
)
from ._linkindex import HammingIndex

__all__ = [
    "DEFAULT_COPY_KEY_RADIUS",
    "DEFAULT_COPY_RADIUS",
    "CopyIndex",
    "CopyLink",
    "CopyMatch",
    "find_copy_candidates",
    "find_copy_links",
]

#: Hamming radius (of 63 key bits) within which a key hypothesis makes a candidate
DEFAULT_COPY_KEY_RADIUS = 9
#: distance (of 168 bits, after box refinement) within which a candidate is a copy
DEFAULT_COPY_RADIUS = 21
_KEY_BITS_MAX = 63

IdT = TypeVar("IdT", bound=Hashable)


@dataclass(frozen=True, slots=True)
class CopyMatch:
    """Probe ``probe`` is a copy of stored hash ``stored`` under ``transform`` (which maps the
    stored image onto the probe's), ``distance`` bits apart after refinement."""

    probe: int
    stored: int
    distance: float
    transform: int


@dataclass(frozen=True, slots=True)
class CopyLink(Generic[IdT]):
    """A new sample and the active (or earlier) sample it copies.

    ``transform`` maps ``other_id``'s image onto ``sample_id``'s (``None`` for a link made by
    pHash radius to a sample that has no copy hash); ``distance`` is in bits: of the copy hash
    after refinement, or of the pHash for such a link.
    """

    sample_id: IdT
    other_id: IdT
    distance: int
    transform: int | None


class _Described(Protocol):
    """What :meth:`CopyIndex.link` reads of a described image (an ``ImageMetadata``)."""

    @property
    def phash(self) -> int: ...

    @property
    def probe(self) -> CopyProbe | None: ...


def _check_radius(radius: int, bits: int, what: str) -> int:
    if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= bits:
        raise InvalidInputError(f"{what} must be an integer in 0..{bits}, got {radius!r}")
    return radius


def find_copy_candidates(
    keys: HashesLike, *, radius: int = DEFAULT_COPY_KEY_RADIUS, method: str = "auto"
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]]:
    """All pairs ``i < j`` of 63-bit keys (the first word of copy hashes) whose keys lie within
    ``radius`` under some dihedral transform: ``(i, j, transform, distance)`` arrays, one row
    per pair and transform, sorted by ``(i, j, transform)``.

    ``transform`` maps ``j``'s image onto ``i``'s. This is the all-pairs search at marketplace
    scale; it gives exactly the pairs a linear scan over every pair and transform gives.
    """
    values = _as_hashes(keys)
    radius = _check_radius(radius, _KEY_BITS_MAX, "the key radius")
    if values.size and int(values.max()) >> _KEY_BITS_MAX:
        raise InvalidInputError("copy keys have 63 bits: bit 63 of a key is never set")
    words = np.zeros((values.size, COPY_HASH_WORDS), dtype=np.uint64)
    words[:, 0] = values
    table = np.ascontiguousarray(dihedral_copy_hashes(words)[:, :, 0]).reshape(-1)
    # each pair once: key i against the transforms of the keys after it only
    after = 8 * np.arange(1, values.size + 1, dtype=np.int64)
    pairs = find_cross_pairs(values, table, radius=radius, method=method, from_position=after)
    return pairs.first, pairs.second // 8, pairs.second % 8, pairs.distance


def find_copy_links(
    probes: Sequence[CopyProbe],
    stored: NDArray[np.uint64] | Sequence[int],
    *,
    key_radius: int = DEFAULT_COPY_KEY_RADIUS,
    radius: int = DEFAULT_COPY_RADIUS,
    earlier_only: bool = False,
    stored_keys: NDArray[np.uint64] | None = None,
) -> list[CopyMatch]:
    """Every (probe, stored hash) pair that is a copy (both stages of the module docstring).

    ``stored`` are copy hashes (ints or ``(M, 3)`` words). With ``earlier_only`` the stored
    hashes are the probes' own, in order, and a probe is matched only against earlier ones.
    ``stored_keys`` may hold the stored hashes' keys under the 8 transforms (``(M, 8)``, as
    ``dihedral_copy_hashes(words)[:, :, 0]``), when the caller keeps them. One match per
    pair: the transform with the smallest distance (then the lowest number). Sorted by probe,
    distance, then stored position.
    """
    key_radius = _check_radius(key_radius, _KEY_BITS_MAX, "the key radius")
    radius = _check_radius(radius, COPY_HASH_BITS, "the copy radius")
    words = copy_hash_words(stored if isinstance(stored, np.ndarray) else list(stored))
    if earlier_only and words.shape[0] != len(probes):
        raise InvalidInputError(
            f"{len(probes)} probes but {words.shape[0]} stored hashes: with earlier_only "
            "the stored hashes are the probes' own"
        )
    if not probes or words.shape[0] == 0:
        return []
    hypotheses = [hypothesis_keys(p) for p in probes]
    per_probe = len(hypotheses[0][0])
    queries = np.concatenate([keys for _, keys in hypotheses])
    if stored_keys is None:
        stored_keys = dihedral_copy_hashes(words)[:, :, 0]
    elif stored_keys.shape != (words.shape[0], 8):
        raise InvalidInputError(
            f"stored_keys must be ({words.shape[0]}, 8), one key per transform, "
            f"got {stored_keys.shape}"
        )
    table = np.ascontiguousarray(stored_keys, dtype=np.uint64).reshape(-1)
    pairs = find_cross_pairs(queries, table, radius=key_radius)
    probe_of = pairs.first // per_probe
    hypothesis = pairs.first % per_probe
    stored_of = pairs.second // 8
    transform = pairs.second % 8
    keep = stored_of < probe_of if earlier_only else np.ones(probe_of.size, dtype=bool)
    # one refinement per (probe, stored, transform), from its closest hypothesis
    start: dict[tuple[int, int, int], tuple[int, int]] = {}
    for p, s, t, h, d in zip(
        probe_of[keep].tolist(),
        stored_of[keep].tolist(),
        transform[keep].tolist(),
        hypothesis[keep].tolist(),
        pairs.distance[keep].tolist(),
        strict=True,
    ):
        known = start.get((p, s, t))
        if known is None or (d, h) < known:
            start[(p, s, t)] = (d, h)
    # the full transformed hashes, only of the stored samples some candidate names
    named = sorted({s for _, s, _ in start})
    dihedral = dict(zip(named, dihedral_copy_hashes(words[named]), strict=True))
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for (p, s, t), (_, h) in sorted(start.items()):
        target = words_to_bits(dihedral[s][t])
        distance = match_probe(probes[p], target, start=hypotheses[p][0][h])
        if distance <= radius and ((p, s) not in best or (distance, t) < best[(p, s)]):
            best[(p, s)] = (distance, t)
    matches = [CopyMatch(p, s, d, t) for (p, s), (d, t) in best.items()]
    matches.sort(key=lambda m: (m.probe, m.distance, m.stored))
    return matches


class CopyIndex(Generic[IdT]):
    """The copy hashes of the active samples, to link new samples to what they copy.

    Samples described before copy hashes existed are held by their pHash
    (:meth:`add_legacy`) and linked by pHash radius, as before. An id is held at most once.
    """

    def __init__(
        self,
        *,
        key_radius: int = DEFAULT_COPY_KEY_RADIUS,
        radius: int = DEFAULT_COPY_RADIUS,
        legacy_radius: int = DEFAULT_DUPLICATE_RADIUS,
    ) -> None:
        self._key_radius = _check_radius(key_radius, _KEY_BITS_MAX, "the key radius")
        self._radius = _check_radius(radius, COPY_HASH_BITS, "the copy radius")
        self._legacy: HammingIndex[IdT] = HammingIndex(radius=legacy_radius)
        self._ids: list[IdT | None] = []
        self._row: dict[IdT, int] = {}
        self._words = np.zeros((64, COPY_HASH_WORDS), dtype=np.uint64)
        # each hash's key under the 8 transforms, kept so that a link does not recompute them
        self._keys = np.zeros((64, 8), dtype=np.uint64)
        self._active = np.zeros(64, dtype=bool)

    @property
    def key_radius(self) -> int:
        return self._key_radius

    @property
    def radius(self) -> int:
        return self._radius

    @property
    def legacy_radius(self) -> int:
        return self._legacy.radius

    def __len__(self) -> int:
        return len(self._row) + len(self._legacy)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._row or sample_id in self._legacy

    def _check_new(self, ids: Sequence[IdT]) -> None:
        seen: set[IdT] = set()
        for sample_id in ids:
            if sample_id in self or sample_id in seen:
                raise InvalidInputError(
                    f"sample {_show(sample_id)} is already in the copy index: remove it first"
                )
            seen.add(sample_id)

    def add(
        self, sample_ids: Sequence[IdT], copy_hashes: Sequence[int] | NDArray[np.uint64]
    ) -> None:
        """Add samples by their copy hashes (attested elsewhere, or restored after a restart)."""
        ids = list(sample_ids)
        words = copy_hash_words(
            copy_hashes if isinstance(copy_hashes, np.ndarray) else list(copy_hashes)
        )
        if len(ids) != words.shape[0]:
            raise InvalidInputError(f"{len(ids)} sample ids but {words.shape[0]} copy hashes")
        self._check_new(ids)
        start = len(self._ids)
        self._grow(start + len(ids))
        self._words[start : start + len(ids)] = words
        self._keys[start : start + len(ids)] = dihedral_copy_hashes(words)[:, :, 0]
        self._active[start : start + len(ids)] = True
        for offset, sample_id in enumerate(ids):
            self._ids.append(sample_id)
            self._row[sample_id] = start + offset

    def add_legacy(self, sample_ids: Sequence[IdT], phashes: HashesLike) -> None:
        """Add samples known only by their pHash (a metadata document without copy hashes)."""
        ids = list(sample_ids)
        self._check_new(ids)
        self._legacy.add(ids, phashes)

    def remove(self, sample_ids: Sequence[IdT]) -> None:
        """Deactivate samples (a withdrawn asset); refuses ids the index does not hold."""
        missing = [s for s in sample_ids if s not in self]
        if missing:
            raise InvalidInputError(
                f"{len(missing)} sample(s) are not in the copy index, e.g. {_show(missing[0])}"
            )
        legacy = [s for s in sample_ids if s in self._legacy]
        if legacy:
            self._legacy.remove(legacy)
        for sample_id in sample_ids:
            if sample_id in self._row:
                row = self._row.pop(sample_id)
                self._active[row] = False
                self._ids[row] = None

    def link(self, sample_ids: Sequence[IdT], images: Sequence[_Described]) -> list[CopyLink[IdT]]:
        """Link new samples (each described with its probe) to every active sample and to
        earlier samples of the batch, then add them.

        Returns the links ordered by the new sample's position, then distance, then the other
        sample's age (active samples first).
        """
        ids = list(sample_ids)
        if len(ids) != len(images):
            raise InvalidInputError(f"{len(ids)} sample ids but {len(images)} described images")
        probes: list[CopyProbe] = []
        for sample_id, image in zip(ids, images, strict=True):
            if image.probe is None:
                raise InvalidInputError(
                    f"sample {_show(sample_id)} has no copy probe: describe it with "
                    "describe_images on this node before linking"
                )
            probes.append(image.probe)
        self._check_new(ids)
        rows = np.flatnonzero(self._active[: len(self._ids)])
        found: list[tuple[int, int, int, int | None]] = []  # (new pos, other rank, dist, t)
        for m in find_copy_links(
            probes,
            self._words[rows],
            key_radius=self._key_radius,
            radius=self._radius,
            stored_keys=self._keys[rows],
        ):
            found.append((m.probe, m.stored, round(m.distance), m.transform))
        own = copy_hash_words([p.copy_hash for p in probes])
        n_old = rows.size
        for m in find_copy_links(
            probes, own, key_radius=self._key_radius, radius=self._radius, earlier_only=True
        ):
            found.append((m.probe, n_old + m.stored, round(m.distance), m.transform))
        # samples known only by pHash: linked by pHash radius, as before copy hashes
        legacy_ids: list[IdT] = []
        for new_pos, image in enumerate(images if len(self._legacy) else ()):
            for neighbour in self._legacy.query(int(image.phash)):
                found.append(
                    (new_pos, n_old + len(ids) + len(legacy_ids), neighbour.distance, None)
                )
                legacy_ids.append(neighbour.sample_id)
        self.add(ids, own)
        found.sort(key=lambda f: (f[0], f[2], f[1]))
        out: list[CopyLink[IdT]] = []
        legacy_at = n_old + len(ids)
        for new_pos, rank, distance, transform in found:
            if rank < n_old:
                other = self._id(int(rows[rank]))
            elif rank < legacy_at:
                other = ids[rank - n_old]
            else:
                other = legacy_ids[rank - legacy_at]
            out.append(CopyLink(ids[new_pos], other, distance, transform))
        return out

    def _id(self, row: int) -> IdT:
        sample_id = self._ids[row]
        if sample_id is None:  # pragma: no cover - rows are filtered by the active mask
            raise InvalidInputError(f"row {row} of the copy index is not active")
        return sample_id

    def _grow(self, needed: int) -> None:
        capacity = self._words.shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        words = np.zeros((capacity, COPY_HASH_WORDS), dtype=np.uint64)
        keys = np.zeros((capacity, 8), dtype=np.uint64)
        active = np.zeros(capacity, dtype=bool)
        words[: len(self._ids)] = self._words[: len(self._ids)]
        keys[: len(self._ids)] = self._keys[: len(self._ids)]
        active[: len(self._ids)] = self._active[: len(self._ids)]
        self._words, self._keys, self._active = words, keys, active


def _show(sample_id: object) -> str:
    if isinstance(sample_id, bytes):
        return "0x" + sample_id.hex()
    return repr(sample_id)
