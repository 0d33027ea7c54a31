"""Public metadata a compute node publishes for every sample it decrypts (design 3.2 step 7).

Consumers choose data by this metadata alone — they never see an image — so it must be both
informative and exactly reproducible:

* :func:`describe_images` — size, channels, format, byte size, 16-bin colour histograms, luma
  brightness and contrast, Laplacian-variance blur, and a 64-bit pHash, for a batch of decoded
  images (definitions in :class:`ImageMetadata`'s module);
* :func:`phash` / :func:`phash_batch` — pHashes equal to ``imagehash.phash`` bit for bit,
  computed for a whole batch at once (Pillow's LANCZOS resize ported exactly to NumPy, the DCT
  and median over the stack);
* :func:`find_duplicate_pairs`, :func:`find_cross_pairs` and :class:`HammingIndex` — exact
  near-duplicate search within a Hamming radius (default :data:`DEFAULT_DUPLICATE_RADIUS` = 8
  bits) by multi-index hashing, identical to a linear scan; the index keeps at most
  :data:`DEFAULT_MAX_LINKS` links per new sample and a cluster per sample, and
  :func:`selection_links` turns a selection's documents into the pairs valuation groups;
* the **copy hash** (:class:`CopyProbe`, :func:`dihedral_copy_hashes`) and :class:`CopyIndex`
  — the links a node publishes: a sample is linked to an active sample it is a flipped,
  rotated, cropped (up to 10 %), re-toned or re-encoded copy of (key search under the 8
  dihedral transforms, then a verification that refines the crop); samples described before
  copy hashes keep pHash links;
* :func:`screen_validation_set` — a consumer's validation set without duplicates and without
  near-copies (under flips, 90° rotations, crops and contrast changes) of the selected
  samples, before it may score anyone (design section 7);
* :class:`AssetMetadata` — the document a node stores and attests (canonical JSON, keccak256
  ``metadata_hash``), with :class:`SampleMetadata` per accepted sample and
  :class:`DuplicateLink` per near-duplicate pair; :func:`read_copy_hash`,
  :func:`read_link_transform` and :func:`read_copy_linking` check the copy fields of a parsed
  document.
"""

from ._copyhash import (
    COPY_HASH_BITS,
    COPY_HASH_VERSION,
    COPY_HASH_WORDS,
    COPY_KEY_BITS,
    DIHEDRAL_NAMES,
    CopyHash,
    CopyProbe,
    copy_hash_from_hex,
    copy_hash_to_hex,
    copy_hash_words,
    copy_probes,
    dihedral_copy_hashes,
    match_probe,
    transform_image,
)
from ._copyindex import (
    DEFAULT_COPY_KEY_RADIUS,
    DEFAULT_COPY_RADIUS,
    CopyIndex,
    CopyLink,
    CopyMatch,
    find_copy_candidates,
    find_copy_links,
)
from ._describe import (
    HISTOGRAM_BINS,
    METADATA_FORMAT,
    AssetMetadata,
    CopyLinking,
    DuplicateLink,
    ImageMetadata,
    SampleMetadata,
    describe_images,
    laplacian_variance,
    read_cluster,
    read_copy_hash,
    read_copy_linking,
    read_link_transform,
)
from ._hamming import (
    DEFAULT_DUPLICATE_RADIUS,
    DuplicatePairs,
    find_cross_pairs,
    find_duplicate_pairs,
    hamming_distance,
    popcount64,
)
from ._linkindex import DEFAULT_MAX_LINKS, HammingIndex, Neighbour, selection_links
from ._phash import (
    PHASH_BITS,
    gray_array,
    phash,
    phash_batch,
    phash_from_grids,
    phash_from_hex,
    phash_grids,
    phash_to_hex,
    resize_grays,
)
from ._screen import (
    DIHEDRAL_TRANSFORMS,
    VALIDATION_SCREEN_RADIUS,
    ValidationScreen,
    array_copy_hashes,
    array_phashes,
    dihedral_phashes,
    minimum_validation_samples,
    screen_validation_set,
)

__all__ = [
    "COPY_HASH_BITS",
    "COPY_HASH_VERSION",
    "COPY_HASH_WORDS",
    "COPY_KEY_BITS",
    "DEFAULT_COPY_KEY_RADIUS",
    "DEFAULT_COPY_RADIUS",
    "DEFAULT_DUPLICATE_RADIUS",
    "DEFAULT_MAX_LINKS",
    "DIHEDRAL_NAMES",
    "DIHEDRAL_TRANSFORMS",
    "HISTOGRAM_BINS",
    "METADATA_FORMAT",
    "PHASH_BITS",
    "VALIDATION_SCREEN_RADIUS",
    "AssetMetadata",
    "CopyHash",
    "CopyIndex",
    "CopyLink",
    "CopyLinking",
    "CopyMatch",
    "CopyProbe",
    "DuplicateLink",
    "DuplicatePairs",
    "HammingIndex",
    "ImageMetadata",
    "Neighbour",
    "SampleMetadata",
    "ValidationScreen",
    "array_copy_hashes",
    "array_phashes",
    "copy_hash_from_hex",
    "copy_hash_to_hex",
    "copy_hash_words",
    "copy_probes",
    "describe_images",
    "dihedral_copy_hashes",
    "dihedral_phashes",
    "find_copy_candidates",
    "find_copy_links",
    "find_cross_pairs",
    "find_duplicate_pairs",
    "gray_array",
    "hamming_distance",
    "laplacian_variance",
    "match_probe",
    "minimum_validation_samples",
    "phash",
    "phash_batch",
    "phash_from_grids",
    "phash_from_hex",
    "phash_grids",
    "phash_to_hex",
    "popcount64",
    "read_cluster",
    "read_copy_hash",
    "read_copy_linking",
    "read_link_transform",
    "resize_grays",
    "screen_validation_set",
    "selection_links",
    "transform_image",
]
