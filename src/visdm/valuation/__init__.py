"""Per-sample data value and fair pay (DESIGN section 4).

* :class:`KNNShapley`: exact KNN-Shapley (Jia et al., 2019), the default method.
* :class:`DataOOB`: out-of-bag accuracy (Kwon & Zou, 2023), a validation-free noise screen.
* :class:`CopyRobustValuation`: collapses near-duplicates into one player before valuing, so
  copies and sybils do not pay; negative values earn nothing.
* :class:`NoiseRule` / :func:`noise_evidence`: when a sample is flagged ``noisy`` — only when
  the consumer's validation set, other providers' labels and its provider's other samples all
  bear witness; :class:`NoiseEvidence` is what gets published with the flag.
* :func:`compute_payout` / :func:`largest_remainder`: exact integer amounts per provider,
  split over their assets, and an OpenZeppelin-compatible Merkle commitment (:mod:`visdm.merkle`).
"""

from typing import TYPE_CHECKING

from visdm._lazy import lazy_exports

if TYPE_CHECKING:
    from visdm.valuation._clusters import DuplicateClusters, cosine_links, find_near_duplicates
    from visdm.valuation._data_oob import DataOOB
    from visdm.valuation._evidence import (
        NoiseEvidence,
        NoiseRule,
        binomial_tail,
        noise_evidence,
        peer_agreement,
    )
    from visdm.valuation._knn_shapley import KNNShapley, knn_shapley_moments, knn_shapley_values
    from visdm.valuation._payout import (
        PAYOUT_LEAF_ENCODING,
        Payout,
        PayoutAsset,
        compute_payout,
        find_payout_leaf,
        largest_remainder,
        payout_tree,
    )
    from visdm.valuation._result import ValuationResult
    from visdm.valuation._robust import (
        CopyRobustValuation,
        RobustValuationResult,
        ValidationEstimator,
    )
    from visdm.valuation._tknn_shapley import TKNNCounts, TKNNShapley, tknn_counts

__all__ = [
    "PAYOUT_LEAF_ENCODING",
    "CopyRobustValuation",
    "DataOOB",
    "DuplicateClusters",
    "KNNShapley",
    "NoiseEvidence",
    "NoiseRule",
    "Payout",
    "PayoutAsset",
    "RobustValuationResult",
    "TKNNCounts",
    "TKNNShapley",
    "ValidationEstimator",
    "ValuationResult",
    "binomial_tail",
    "compute_payout",
    "cosine_links",
    "find_near_duplicates",
    "find_payout_leaf",
    "knn_shapley_moments",
    "knn_shapley_values",
    "largest_remainder",
    "noise_evidence",
    "payout_tree",
    "peer_agreement",
    "tknn_counts",
]

_WHERE = {
    "DuplicateClusters": "._clusters",
    "cosine_links": "._clusters",
    "find_near_duplicates": "._clusters",
    "DataOOB": "._data_oob",
    "NoiseEvidence": "._evidence",
    "NoiseRule": "._evidence",
    "binomial_tail": "._evidence",
    "noise_evidence": "._evidence",
    "peer_agreement": "._evidence",
    "KNNShapley": "._knn_shapley",
    "knn_shapley_moments": "._knn_shapley",
    "knn_shapley_values": "._knn_shapley",
    "PAYOUT_LEAF_ENCODING": "._payout",
    "Payout": "._payout",
    "PayoutAsset": "._payout",
    "compute_payout": "._payout",
    "find_payout_leaf": "._payout",
    "largest_remainder": "._payout",
    "payout_tree": "._payout",
    "ValuationResult": "._result",
    "CopyRobustValuation": "._robust",
    "RobustValuationResult": "._robust",
    "ValidationEstimator": "._robust",
    **dict.fromkeys(("TKNNCounts", "TKNNShapley", "tknn_counts"), "._tknn_shapley"),
}

__getattr__ = lazy_exports(__name__, _WHERE)
