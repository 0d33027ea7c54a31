"""Public metadata a compute node publishes for every sample it decrypts (design 3.2 step 7).

Consumers choose data by this metadata alone — they never see an image — so it must be both
informative and exactly reproducible:

* :func:`describe_images` — size, channels, format, byte size, 16-bin colour histograms, luma
  brightness and contrast, Laplacian-variance blur, and a 64-bit pHash, for a batch of decoded
  images (definitions in :class:`ImageMetadata`'s module);
* :func:`phash` / :func:`phash_batch` — pHashes equal to ``imagehash.phash`` bit for bit,
  computed for a whole batch at once (Pillow's LANCZOS resize ported exactly to NumPy, the DCT
  and median over the stack);
* :func:`find_duplicate_pairs` and :class:`HammingIndex` — exact near-duplicate search within
  a Hamming radius (default :data:`DEFAULT_DUPLICATE_RADIUS` = 8 bits) by multi-index hashing,
  identical to a linear scan;
* :func:`screen_validation_set` — a consumer's validation set without duplicates and without
  near-copies (under flips and 90° rotations) of the selected samples, before it may score
  anyone (design section 7);
* :class:`AssetMetadata` — the document a node stores and attests (canonical JSON, keccak256
  ``metadata_hash``), with :class:`SampleMetadata` per accepted sample and
  :class:`DuplicateLink` per near-duplicate pair.
"""

from ._describe import (
    HISTOGRAM_BINS,
    METADATA_FORMAT,
    AssetMetadata,
    DuplicateLink,
    ImageMetadata,
    SampleMetadata,
    describe_images,
    laplacian_variance,
)
from ._hamming import (
    DEFAULT_DUPLICATE_RADIUS,
    DuplicatePairs,
    HammingIndex,
    Neighbour,
    find_duplicate_pairs,
    hamming_distance,
    popcount64,
)
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
    array_phashes,
    dihedral_phashes,
    minimum_validation_samples,
    screen_validation_set,
)

__all__ = [
    "DEFAULT_DUPLICATE_RADIUS",
    "DIHEDRAL_TRANSFORMS",
    "HISTOGRAM_BINS",
    "METADATA_FORMAT",
    "PHASH_BITS",
    "VALIDATION_SCREEN_RADIUS",
    "AssetMetadata",
    "DuplicateLink",
    "DuplicatePairs",
    "HammingIndex",
    "ImageMetadata",
    "Neighbour",
    "SampleMetadata",
    "ValidationScreen",
    "array_phashes",
    "describe_images",
    "dihedral_phashes",
    "find_duplicate_pairs",
    "gray_array",
    "hamming_distance",
    "laplacian_variance",
    "minimum_validation_samples",
    "phash",
    "phash_batch",
    "phash_from_grids",
    "phash_from_hex",
    "phash_grids",
    "phash_to_hex",
    "popcount64",
    "resize_grays",
    "screen_validation_set",
]
