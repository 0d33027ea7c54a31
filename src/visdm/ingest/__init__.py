"""Provider-side asset preparation: validate files, then encrypt, store and commit to them.

Design section 3.2 steps 1–3 and the ``samplesRoot`` of step 5, before the manifest
(:mod:`visdm.manifest`) is written and signed:

* :func:`validate_directory` — walk a directory and its ``labels.csv``; every bad file is
  reported with its reason in an :class:`IngestReport`, the good ones go on (rules in the
  function's module docstring); no valid file at all raises ``NoValidSamplesError``;
* :func:`decode_image` — the one decoder both provider and compute node use for untrusted
  bytes: allowed formats only, bounded pixel count, verify and full load;
* :func:`prepare_asset` — a fresh data key, every file encrypted with its index as
  associated data and stored (one CID, hence one sample id, per sample), the key wrapped for
  the owner and each allowed node, and a Merkle root over the sample ids;
* :func:`decrypt_sample` — the inverse, for the node (or the owner) holding the data key.
"""

from ._decode import (
    ALLOWED_FORMATS,
    DEFAULT_LIMITS,
    DecodedImage,
    ImageLimits,
    decode_image,
    sniff_format,
)
from ._prepare import (
    SAMPLE_AAD_PREFIX,
    SAMPLE_LEAF_ENCODING,
    KeyRecipient,
    PreparedAsset,
    PreparedSample,
    WrappedKey,
    decrypt_sample,
    prepare_asset,
    sample_aad,
)
from ._validate import (
    LABELS_FILE,
    MAX_LABEL_CHARS,
    AcceptedSample,
    IngestReport,
    LabelProblem,
    RejectedFile,
    validate_directory,
)

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_LIMITS",
    "LABELS_FILE",
    "MAX_LABEL_CHARS",
    "SAMPLE_AAD_PREFIX",
    "SAMPLE_LEAF_ENCODING",
    "AcceptedSample",
    "DecodedImage",
    "ImageLimits",
    "IngestReport",
    "KeyRecipient",
    "LabelProblem",
    "PreparedAsset",
    "PreparedSample",
    "RejectedFile",
    "WrappedKey",
    "decode_image",
    "decrypt_sample",
    "prepare_asset",
    "sample_aad",
    "sniff_format",
    "validate_directory",
]
