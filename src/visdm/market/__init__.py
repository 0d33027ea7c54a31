"""The marketplace's negotiation and training transactions, off chain (paper Algorithms 3–4)."""

from .payouts import PAYOUT_LEAF, SELECTION_ASSET_LEAF, build_payout_tree, claim_for, selection_tree
from .quotes import market_domain, recover_quote_signer, sign_quote
from .tally import (
    DEFAULT_BATCH_SIZE,
    AssetVote,
    TallyOutcome,
    compute_outcome,
    resolve_ask,
    submit_tally,
    weighted_lower_median,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "PAYOUT_LEAF",
    "SELECTION_ASSET_LEAF",
    "AssetVote",
    "TallyOutcome",
    "build_payout_tree",
    "claim_for",
    "compute_outcome",
    "market_domain",
    "recover_quote_signer",
    "resolve_ask",
    "selection_tree",
    "sign_quote",
    "submit_tally",
    "weighted_lower_median",
]
