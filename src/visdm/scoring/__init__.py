"""Scoring rounds: samples with few or no scores get them, so that they can be chosen (paper
3.5 (iii): "frequent training rounds on new data samples to update their scores").

A newcomer's samples have no published value, and a consumer who ranks by expected value
passes them over. The market takes a fee (basis points, set by governance, fixed when a
proposal is made) from the price of every completed proposal and credits it to the
``ScoringPool``, which pays admitted compute nodes per sample to score assets with few paid
rounds against a public reference governance chose. A node claims a batch on chain (no two
nodes hold the same asset; a deadline frees it again), values it in its sandbox exactly as a
training round values a selection, publishes a scores document whose keccak256 it commits with
the seed's, and is paid.

* :class:`ScoringPool` / :class:`ScoringFee` — typed wrappers of the pool and of the market's
  fee; :class:`PoolTerms`, :class:`BatchRecord`, :class:`ScoreCommitment`;
* :func:`build_reference` / :func:`load_reference` / :class:`ScoringReference` — the public
  reference (validation set, anchors, model spec);
* :func:`run_scoring_job` (``visdm.scoring._job``) — the sandbox entry point;
* :func:`build_scores_document` / :func:`parse_scores` / :func:`round_scale` /
  :func:`relative_value` — the scores document, its verification, and one scale for the values
  of every round;
* :func:`expected_values` / :func:`market_prior` — a sample's expected value and confidence
  from the scores it has had (empirical Bayes);
* SDK calls, one per ``visdm scoring`` command: :func:`publish_reference`, :func:`set_terms`,
  :func:`set_fee`, :func:`fund`, :func:`collect_fees`, :func:`claim`, :func:`release`,
  :func:`withdraw`, :func:`pool_status`, :func:`batch_view`, :func:`choose_batch`.

Error tree addition (kept here until it moves into :mod:`visdm.errors`)::

    VisdmError
    └── InvalidInputError (ValueError)
        ├── InvalidReferenceError     a reference document or archive the chain does not commit
        └── InvalidScoresError        a scores document that does not match its batch
"""

from typing import TYPE_CHECKING

from visdm._lazy import lazy_exports

if TYPE_CHECKING:
    from visdm.scoring._contracts import (
        MAX_SCORING_FEE_BPS,
        BatchRecord,
        BatchStatus,
        PoolBalances,
        PoolTerms,
        ScoreCommitment,
        ScoringFee,
        ScoringFeeTerms,
        ScoringPool,
    )
    from visdm.scoring._document import (
        SCORES_KIND,
        BatchScore,
        InvalidScoresError,
        ScoresDocument,
        build_scores_document,
        parse_scores,
        relative_value,
        round_scale,
    )
    from visdm.scoring._estimate import (
        MarketPrior,
        Observation,
        ValueEstimate,
        expected_values,
        market_prior,
    )
    from visdm.scoring._job import run_scoring_job
    from visdm.scoring._reference import (
        DEFAULT_SCORING_SPEC,
        REFERENCE_KIND,
        BlobRef,
        InvalidReferenceError,
        ScoringReference,
        build_reference,
        fashion_mnist_classes,
        fetch_blob,
        load_reference,
        parse_reference,
    )
    from visdm.scoring._sdk import (
        BatchClaim,
        BatchView,
        Candidate,
        PoolStatus,
        Receipt,
        ReferenceReceipt,
        batch_view,
        choose_batch,
        claim,
        collect_fees,
        current_reference,
        fee_contract,
        fund,
        pool,
        pool_status,
        publish_reference,
        release,
        set_fee,
        set_terms,
        withdraw,
    )

_WHERE = {
    **dict.fromkeys(
        (
            "MAX_SCORING_FEE_BPS",
            "BatchRecord",
            "BatchStatus",
            "PoolBalances",
            "PoolTerms",
            "ScoreCommitment",
            "ScoringFee",
            "ScoringFeeTerms",
            "ScoringPool",
        ),
        "._contracts",
    ),
    **dict.fromkeys(
        (
            "SCORES_KIND",
            "InvalidScoresError",
            "BatchScore",
            "ScoresDocument",
            "build_scores_document",
            "parse_scores",
            "relative_value",
            "round_scale",
        ),
        "._document",
    ),
    **dict.fromkeys(
        ("MarketPrior", "Observation", "ValueEstimate", "expected_values", "market_prior"),
        "._estimate",
    ),
    **dict.fromkeys(
        (
            "DEFAULT_SCORING_SPEC",
            "REFERENCE_KIND",
            "BlobRef",
            "InvalidReferenceError",
            "ScoringReference",
            "build_reference",
            "fashion_mnist_classes",
            "fetch_blob",
            "load_reference",
            "parse_reference",
        ),
        "._reference",
    ),
    **dict.fromkeys(
        (
            "BatchView",
            "Candidate",
            "BatchClaim",
            "PoolStatus",
            "Receipt",
            "ReferenceReceipt",
            "batch_view",
            "choose_batch",
            "claim",
            "collect_fees",
            "current_reference",
            "fee_contract",
            "fund",
            "pool",
            "pool_status",
            "publish_reference",
            "release",
            "set_fee",
            "set_terms",
            "withdraw",
        ),
        "._sdk",
    ),
    "run_scoring_job": "._job",
}

__all__ = [
    "DEFAULT_SCORING_SPEC",
    "MAX_SCORING_FEE_BPS",
    "REFERENCE_KIND",
    "SCORES_KIND",
    "BatchClaim",
    "BatchRecord",
    "BatchScore",
    "BatchStatus",
    "BatchView",
    "BlobRef",
    "Candidate",
    "InvalidReferenceError",
    "InvalidScoresError",
    "MarketPrior",
    "Observation",
    "PoolBalances",
    "PoolStatus",
    "PoolTerms",
    "Receipt",
    "ReferenceReceipt",
    "ScoreCommitment",
    "ScoresDocument",
    "ScoringFee",
    "ScoringFeeTerms",
    "ScoringPool",
    "ScoringReference",
    "ValueEstimate",
    "batch_view",
    "build_reference",
    "build_scores_document",
    "choose_batch",
    "claim",
    "collect_fees",
    "current_reference",
    "expected_values",
    "fashion_mnist_classes",
    "fee_contract",
    "fetch_blob",
    "fund",
    "load_reference",
    "market_prior",
    "parse_reference",
    "parse_scores",
    "pool",
    "pool_status",
    "publish_reference",
    "relative_value",
    "release",
    "round_scale",
    "run_scoring_job",
    "set_fee",
    "set_terms",
    "withdraw",
]

__getattr__ = lazy_exports(__name__, _WHERE)
