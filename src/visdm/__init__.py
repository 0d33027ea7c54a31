"""ViSDM: a marketplace where crowds sell computer-vision training data without handing it over.

The supported public API is what ``__all__`` lists here and in each subpackage; modules whose
names start with ``_`` are private.
"""

import visdm._deferred_imports  # noqa: F401  (first: before anything imports eth-account)
from visdm.config import Settings
from visdm.errors import VisdmError
from visdm.types import Address, AssetId, Cid, PHash, Role, SampleId, Wei

__all__ = [
    "Address",
    "AssetId",
    "Cid",
    "PHash",
    "Role",
    "SampleId",
    "Settings",
    "VisdmError",
    "Wei",
    "__version__",
]

__version__ = "0.1.0"
