"""The index's tables: a read model of the chain plus the public documents the chain points to.

Every row is derived from chain events, content-addressed documents and one piece of chain
state that is fixed once its event is emitted (the positions a tally took out of the round) —
never from the wall clock or the order of retries — so indexing the same blocks twice, or from
scratch on another backend, gives identical tables. Keys are natural (asset id and sample
index, proposal id and selection position, block and log index), which is what makes every
write an idempotent upsert.

Payouts name assets, never accounts: a payout row is one leaf ``(position, assetId, amount)`` of
a result's payout tree with the asset's owner beside it (asset owners never change), and a
claim row is one ``Claimed`` event, which credits the owner. Whether a leaf can still be paid
is derived when it is read (:mod:`._payouts`), from the claims, the tally's exclusions, the
selection the proposal document commits to and a sweep.

Kinds of column: addresses are EIP-55 checksummed ``TEXT``; hashes and sample ids are
``0x``-prefixed lower-case hex ``TEXT``; uint256 amounts and asks are decimal ``TEXT``;
booleans are ``0``/``1``. Document states (``*_status``) are ``pending`` (not fetched yet),
``indexed``, ``missing`` (not in the store or the store unreachable: retried on every sync) and
``rejected`` (hash mismatch or malformed: kept, with the reason in ``*_detail``, never retried).
"""

from __future__ import annotations

from ._db import Database
from ._scoring import SCORING_TABLES

__all__ = ["SCHEMA_VERSION", "TABLES", "create_schema", "drop_schema"]

#: bump when a table changes; an index with another version must be rebuilt
SCHEMA_VERSION = 7

_TABLES: dict[str, str] = {
    # key/value facts about the index itself: schema version, chain, contracts, cursor
    "index_meta": "key TEXT PRIMARY KEY, value TEXT NOT NULL",
    # every decoded event of the marketplace contracts, args as canonical JSON
    "chain_events": """
        block_number BIGINT NOT NULL, log_index BIGINT NOT NULL, tx_hash TEXT NOT NULL,
        contract TEXT NOT NULL, name TEXT NOT NULL, args TEXT NOT NULL,
        PRIMARY KEY (block_number, log_index)""",
    "stakeholders": """
        address TEXT PRIMARY KEY, roles INTEGER NOT NULL, encryption_key TEXT NOT NULL,
        registered_block BIGINT NOT NULL, updated_block BIGINT NOT NULL""",
    "regions": "region INTEGER PRIMARY KEY, name TEXT NOT NULL",
    "compute_nodes": """
        address TEXT PRIMARY KEY, signer TEXT NOT NULL, region INTEGER NOT NULL,
        encryption_key TEXT NOT NULL, endpoint TEXT NOT NULL, suspended INTEGER NOT NULL,
        admitted_block BIGINT NOT NULL""",
    "assets": """
        asset_id BIGINT PRIMARY KEY, owner TEXT NOT NULL,
        status TEXT NOT NULL,                       -- pending | active | withdrawn
        manifest_hash TEXT NOT NULL, samples_root TEXT NOT NULL, sample_count BIGINT NOT NULL,
        region_mask TEXT NOT NULL, manifest_cid TEXT NOT NULL, registered_block BIGINT NOT NULL,
        manifest_status TEXT NOT NULL, manifest_detail TEXT NOT NULL,
        licence_expires BIGINT,                     -- unix seconds; NULL: none or unknown
        attested_by TEXT, metadata_hash TEXT, metadata_cid TEXT, accepted_count BIGINT,
        attested_block BIGINT, metadata_status TEXT NOT NULL, metadata_detail TEXT NOT NULL,
        duplicate_radius INTEGER, withdrawn_block BIGINT""",
    "asset_regions": "asset_id BIGINT NOT NULL, region INTEGER NOT NULL, "
    "PRIMARY KEY (asset_id, region)",
    # the compute nodes the manifest wraps the data key for (only they may attest the asset)
    "asset_key_nodes": "asset_id BIGINT NOT NULL, node TEXT NOT NULL, PRIMARY KEY (asset_id, node)",
    "asset_purposes": "asset_id BIGINT NOT NULL, purpose TEXT NOT NULL, "
    "PRIMARY KEY (asset_id, purpose)",
    "asset_consumers": """
        asset_id BIGINT NOT NULL, consumer TEXT NOT NULL, allowed INTEGER NOT NULL,
        PRIMARY KEY (asset_id, consumer)""",
    "samples": """
        asset_id BIGINT NOT NULL, sample_index BIGINT NOT NULL, sample_id TEXT NOT NULL,
        label TEXT NOT NULL, width BIGINT NOT NULL, height BIGINT NOT NULL,
        channels INTEGER NOT NULL, mode TEXT NOT NULL, format TEXT, byte_size BIGINT,
        phash TEXT NOT NULL, brightness DOUBLE PRECISION NOT NULL,
        contrast DOUBLE PRECISION NOT NULL, blur DOUBLE PRECISION NOT NULL,
        cluster_size BIGINT NOT NULL,               -- near-duplicate component, active samples
        cluster_root TEXT,                          -- the component's id; NULL: a sample alone
        link_count BIGINT NOT NULL DEFAULT 0,       -- links to samples still in the market
        link_distances BIGINT,                      -- their distances packed (._clusters)
        PRIMARY KEY (asset_id, sample_index)""",
    # samples a node could not describe (failed to decrypt or decode), from the metadata
    "rejected_samples": """
        asset_id BIGINT NOT NULL, sample_index BIGINT NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (asset_id, sample_index)""",
    # near-duplicate links, stored in both directions; asset_id: the metadata that reported it
    "sample_links": """
        sample_id TEXT NOT NULL, other_id TEXT NOT NULL, distance INTEGER NOT NULL,
        asset_id BIGINT NOT NULL, PRIMARY KEY (sample_id, other_id)""",
    "proposals": """
        proposal_id BIGINT PRIMARY KEY, consumer TEXT NOT NULL, node TEXT NOT NULL,
        status TEXT NOT NULL, offer TEXT NOT NULL, price TEXT NOT NULL, wtp_bps INTEGER NOT NULL,
        min_share_bps INTEGER NOT NULL, voting_deadline BIGINT NOT NULL,
        total_weight BIGINT NOT NULL, assets_hash TEXT NOT NULL, assets_root TEXT NOT NULL,
        selection_root TEXT NOT NULL, model_spec_hash TEXT NOT NULL,
        validation_set_hash TEXT NOT NULL, proposal_cid TEXT NOT NULL,
        created_block BIGINT NOT NULL,
        document_status TEXT NOT NULL, document_detail TEXT NOT NULL,  -- the proposal document
        clearing_price TEXT, participating_weight BIGINT,
        remaining_weight BIGINT,                    -- weight left after assets left the round
        tallier TEXT, tallied_block BIGINT, training_cost TEXT, training_deadline BIGINT,
        accuracy_bps INTEGER, wtp_met INTEGER, consumer_fault INTEGER, model_hash TEXT,
        payout_root TEXT, scores_hash TEXT, seed_hash TEXT, result_cid TEXT,
        result_block BIGINT, reclaimed TEXT, abandoned_reason TEXT,
        swept TEXT, treasury TEXT,                  -- unclaimed remainder and who received it
        settlement TEXT                             -- a result: held | released | overturned""",
    # the selection the verified proposal document commits to (assetsHash and assetsRoot)
    "proposal_assets": """
        proposal_id BIGINT NOT NULL, position BIGINT NOT NULL, asset_id BIGINT NOT NULL,
        sample_count BIGINT NOT NULL, PRIMARY KEY (proposal_id, position)""",
    # selection positions the tally took out of the round (withdrawn, or their owner rejected)
    "proposal_exclusions": """
        proposal_id BIGINT NOT NULL, position BIGINT NOT NULL,
        PRIMARY KEY (proposal_id, position)""",
    "votes": """
        proposal_id BIGINT NOT NULL, voter TEXT NOT NULL, ask TEXT NOT NULL,
        block_number BIGINT NOT NULL, PRIMARY KEY (proposal_id, voter)""",
    "claims": """
        proposal_id BIGINT NOT NULL, position BIGINT NOT NULL, asset_id BIGINT NOT NULL,
        owner TEXT NOT NULL, amount TEXT NOT NULL, block_number BIGINT NOT NULL,
        PRIMARY KEY (proposal_id, position)""",
    "delegations": "delegator TEXT PRIMARY KEY, delegate TEXT, block_number BIGINT NOT NULL",
    "delegation_changes": """
        block_number BIGINT NOT NULL, log_index BIGINT NOT NULL, delegator TEXT NOT NULL,
        previous_delegate TEXT, delegate TEXT, PRIMARY KEY (block_number, log_index)""",
    # the result document a node published with ResultSubmitted, and its scores blob
    "results": """
        proposal_id BIGINT PRIMARY KEY, document_cid TEXT NOT NULL, status TEXT NOT NULL,
        detail TEXT NOT NULL, epsilon_spent DOUBLE PRECISION, model_cid TEXT, scores_cid TEXT,
        scores_status TEXT NOT NULL, scores_detail TEXT NOT NULL, scored_samples BIGINT,
        fault_reason TEXT                           -- why the consumer's input was unusable""",
    # the leaves of a result's payout tree; owner: the asset's owner, whom a claim credits
    "payouts": """
        proposal_id BIGINT NOT NULL, position BIGINT NOT NULL, asset_id BIGINT NOT NULL,
        owner TEXT NOT NULL, amount TEXT NOT NULL, PRIMARY KEY (proposal_id, position)""",
    "sample_scores": """
        proposal_id BIGINT NOT NULL, asset_id BIGINT NOT NULL, sample_index BIGINT NOT NULL,
        sample_id TEXT NOT NULL, provider TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
        cluster_founder TEXT, cluster_size BIGINT, flags TEXT NOT NULL,
        flag_noisy INTEGER NOT NULL,                -- flagged noisy with evidence (._evidence)
        flag_copied INTEGER NOT NULL, flag_duplicate INTEGER NOT NULL,
        evidence TEXT,                              -- the noisy flag's witnesses, as JSON
        PRIMARY KEY (proposal_id, asset_id, sample_index)""",
    # scoring rounds: batches, their verified scores and the market's fees (._scoring)
    **SCORING_TABLES,
}

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS samples_by_sample_id ON samples (sample_id)",
    # label first, then the stored duplicate count: "a label, no duplicates" reads only its
    # matches (a count of 10k at 1M samples: 0.37 s scanning in order, 0.03 s through this)
    "CREATE INDEX IF NOT EXISTS samples_by_label_links ON samples (label, link_count)",
    "CREATE INDEX IF NOT EXISTS samples_by_cluster ON samples (cluster_root)",
    "CREATE INDEX IF NOT EXISTS links_by_other ON sample_links (other_id)",
    "CREATE INDEX IF NOT EXISTS assets_by_owner ON assets (owner)",
    "CREATE INDEX IF NOT EXISTS scores_by_sample ON sample_scores (asset_id, sample_index)",
    "CREATE INDEX IF NOT EXISTS payouts_by_owner ON payouts (owner)",
    "CREATE INDEX IF NOT EXISTS claims_by_owner ON claims (owner)",
    "CREATE INDEX IF NOT EXISTS scoring_by_sample ON scoring_scores (asset_id, sample_index)",
)

#: every table of the index, in creation order
TABLES: tuple[str, ...] = tuple(_TABLES)


def create_schema(db: Database) -> None:
    """Create whatever tables and indexes are missing (call inside a write transaction)."""
    for name, columns in _TABLES.items():
        db.execute(f"CREATE TABLE IF NOT EXISTS {name} ({_strip_comments(columns)})")
    for statement in _INDEXES:
        db.execute(statement)


def drop_schema(db: Database) -> None:
    """Drop every index table (call inside a write transaction)."""
    for name in reversed(TABLES):
        db.execute(f"DROP TABLE IF EXISTS {name}")


def _strip_comments(columns: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in columns.splitlines())
