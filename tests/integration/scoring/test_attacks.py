"""Known attacks on scoring rounds and the scoring fee, performed against the real contracts,
the SDK and the index on anvil; each must fail (SECURITY.md lists them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from tests.integration.compute.roundkit import NO_DP_LICENCE, Round, write_folder
from tests.integration.scoring.conftest import RATE
from tests.integration.scoring.test_pool import holders, refused
from visdm import scoring
from visdm.assets import add_asset
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ClaimRequest, ResultCommitment
from visdm.chain.deployment import Deployment
from visdm.errors import ContractRevertError
from visdm.index import open_database, sync_index
from visdm.index._api import default_index_url
from visdm.scoring import BatchScore, PoolTerms, ScoreCommitment, build_scores_document
from visdm.types import Role
from visdm.valuation import payout_tree

pytestmark = [pytest.mark.integration, pytest.mark.attack]


@pytest.fixture
def two_nodes(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
    governance: LocalAccount,
) -> Round:
    """Two nodes holding every key: ``node`` and ``stranger``, admitted before the assets; the
    third asset is ``stranger``'s own, registered as a provider."""
    r = Round(chain, deployment, tmp_path / "home", dict(funded_roles))
    second = r.accounts["stranger"]
    r.registry.admit_node(
        governance,
        second.address,
        signer=second.address,
        region="local",
        encryption_key=second.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    r.add_assets(tmp_path, per_provider=10)
    r.registry.register(second.local_account, Role.PROVIDER, second.x25519_public)
    folder = write_folder(tmp_path / "own", list(range(200, 210)))
    # its own key is wrapped for it as the owner; as a node it is listed by the chain only
    added = add_asset(
        r.as_("stranger"), second, folder, licence=NO_DP_LICENCE, nodes=[r.accounts["node"].address]
    )
    r.asset_ids.append(added.asset_id)
    r.attest()
    scoring.pool(chain, deployment).set_reference(governance, keccak(b"ref"), "bafyref")
    scoring.fund(chain, deployment, r.accounts["consumer"].local_account, 10**18)
    return r


def test_a_node_cannot_score_its_own_assets(two_nodes: Round) -> None:
    r = two_nodes
    pool = scoring.pool(r.chain, r.deployment)
    own = r.asset_ids[2]
    crook = r.accounts["stranger"]
    refused("ScoringPoolOwnAsset", lambda: pool.claim_batch(crook.local_account, [own],
                                                            [holders(r, own)]))  # fmt: skip
    # the node's own choice never includes it; the other node may score it
    chosen = scoring.choose_batch(r.chain, r.deployment, r.store, crook.address)
    assert own not in {c.asset_id for c in chosen}
    honest = scoring.choose_batch(r.chain, r.deployment, r.store, r.accounts["node"].address)
    assert own in {c.asset_id for c in honest}


def test_a_node_that_claims_and_never_scores_is_not_paid_and_loses_the_batch(
    two_nodes: Round,
) -> None:
    r = two_nodes
    pool = scoring.pool(r.chain, r.deployment)
    squatter, other = r.accounts["node"], r.accounts["stranger"]
    a = r.asset_ids[0]
    got = scoring.claim(r.chain, r.deployment, r.store, squatter.local_account, asset_ids=[a])
    assert got is not None
    # while it runs, nobody else can take the asset ...
    refused("ScoringPoolAssetLocked", lambda: pool.claim_batch(other.local_account, [a],
                                                               [holders(r, a)]))  # fmt: skip
    # ... but only until the deadline: then it is free, the squatter is paid nothing, cannot
    # take it back at once, and its reserve returns to the pool
    r.chain.advance_time(pool.terms().claim_period + 1)
    taken = scoring.claim(r.chain, r.deployment, r.store, other.local_account, asset_ids=[a])
    assert taken is not None and pool.batch(got.batch_id).status == scoring.BatchStatus.LAPSED
    assert pool.credit_of(squatter.address) == 0
    assert pool.balances().reserved == taken.reserved_wei
    r.chain.advance_time(pool.terms().claim_period + 1)  # the other node lets it lapse too
    refused("ScoringPoolLapsed", lambda: pool.claim_batch(other.local_account, [a],
                                                          [holders(r, a)]))  # fmt: skip
    again = scoring.claim(r.chain, r.deployment, r.store, squatter.local_account, asset_ids=[a])
    assert again is not None  # the first squatter's wait is over by now


def _scores(
    r: Round, batch_id: int, node: str, rows: list[BatchScore], scored: int | None = None
) -> tuple[bytes, ScoreCommitment]:
    pool = scoring.pool(r.chain, r.deployment)
    outcome = {
        "seed_hash": "0x" + keccak(b"seed").hex(),
        "spec_hash": "0x" + keccak(b"spec").hex(),
        "model_hash": "0x" + keccak(b"model").hex(),
        "players": 600,
        "scale": 0.002,
        "accuracy_bps": 8000,
    }
    raw = build_scores_document(
        batch_id=batch_id,
        node=node,
        reference_hash=pool.batch(batch_id).reference_hash,
        outcome=outcome,
        rows=rows,
        details={},
    )
    commit = ScoreCommitment(
        len(rows) if scored is None else scored, keccak(raw), keccak(b"seed"), r.store.put(raw)
    )
    return raw, commit


def test_scores_for_samples_outside_the_batch_are_refused_by_every_reader(
    rnd: Round, funded: int
) -> None:
    r = rnd
    pool = scoring.pool(r.chain, r.deployment)
    node = r.accounts["node"]
    a, b = r.asset_ids
    sync_index(r.settings)
    with open_database(default_index_url(r.settings)) as db:
        ids = {(int(x), int(i)): str(s) for x, i, s in db.query(
            "SELECT asset_id, sample_index, sample_id FROM samples")}  # fmt: skip
    got = scoring.claim(r.chain, r.deployment, r.store, node.local_account, asset_ids=[a])
    assert got is not None
    own = [BatchScore(a, i, ids[(a, i)], 0.001, 0.0005, ()) for i in range(3)]
    # a row of asset b, which the batch does not hold, to raise b's standing
    smuggled = BatchScore(b, 0, ids[(b, 0)], 0.5, 0.0001, ())
    raw, commit = _scores(r, got.batch_id, node.address, [*own, smuggled])
    # the chain cannot see rows: it pays for the count, at most the batch's samples
    pool.publish_scores(node.local_account, got.batch_id, [a], commit)
    sync_index(r.settings)
    with open_database(default_index_url(r.settings)) as db:
        status, detail = db.query(
            "SELECT document_status, document_detail FROM scoring_batches WHERE batch_id = ?",
            (got.batch_id,),
        )[0]
        assert status == "rejected" and "not in the batch" in detail
        assert db.scalar("SELECT COUNT(*) FROM scoring_scores") == 0
    check = {
        "scores_hash": commit.scores_hash,
        "batch_id": got.batch_id,
        "node": node.address,
        "reference_hash": pool.batch(got.batch_id).reference_hash,
        "seed_hash": commit.seed_hash,
        "scored": commit.scored,
    }
    with pytest.raises(scoring.InvalidScoresError, match="not in the batch"):
        scoring.parse_scores(raw, batch_assets=[a], **check)
    # the defence is the batch's asset list: without it the smuggled row would pass
    assert len(scoring.parse_scores(raw, batch_assets=[a, b], **check).rows) == 4


def _index_status(r: Round, batch_id: int) -> tuple[str, str]:
    sync_index(r.settings)
    with open_database(default_index_url(r.settings)) as db:
        status, detail = db.query(
            "SELECT document_status, document_detail FROM scoring_batches WHERE batch_id = ?",
            (batch_id,),
        )[0]
    return str(status), str(detail)


def test_a_count_that_lies_a_row_that_names_another_sample_and_a_second_pay_are_refused(
    rnd: Round, funded: int, governance: LocalAccount
) -> None:
    r = rnd
    pool = scoring.pool(r.chain, r.deployment)
    node = r.accounts["node"]
    a, b = r.asset_ids
    sync_index(r.settings)
    with open_database(default_index_url(r.settings)) as db:
        ids = {(int(x), int(i)): str(s) for x, i, s in db.query(
            "SELECT asset_id, sample_index, sample_id FROM samples")}  # fmt: skip
    got = scoring.claim(r.chain, r.deployment, r.store, node.local_account, asset_ids=[a])
    assert got is not None
    row = BatchScore(a, 0, ids[(a, 0)], 0.1, None, ())
    # paid per sample: a count above the batch's samples is refused on chain ...
    _, inflated = _scores(r, got.batch_id, node.address, [row], 31)
    refused("ScoringPoolTooManyScored", lambda: pool.publish_scores(
        node.local_account, got.batch_id, [a], inflated))  # fmt: skip
    # ... one within it but above the rows published is refused by every reader
    _, lie = _scores(r, got.batch_id, node.address, [row], 30)
    pool.publish_scores(node.local_account, got.batch_id, [a], lie)
    status, detail = _index_status(r, got.batch_id)
    assert status == "rejected" and "paid for 30" in detail
    # paid once: the same batch cannot be published twice
    refused("ScoringPoolWrongStatus", lambda: pool.publish_scores(
        node.local_account, got.batch_id, [a], lie))  # fmt: skip
    assert pool.credit_of(node.address) == 30 * RATE
    # a row that gives one sample's score to another of the batch's samples
    batch_b = scoring.claim(r.chain, r.deployment, r.store, node.local_account, asset_ids=[b])
    assert batch_b is not None
    swapped = BatchScore(b, 0, ids[(b, 1)], 0.9, None, ())
    _, commit = _scores(r, batch_b.batch_id, node.address, [swapped])
    pool.publish_scores(node.local_account, batch_b.batch_id, [b], commit)
    status, detail = _index_status(r, batch_b.batch_id)
    assert status == "rejected" and "not that asset's attested sample" in detail
    # the pool pays a capped number of rounds per asset: no endless re-scoring of one asset
    scoring.set_terms(r.chain, r.deployment, governance, PoolTerms(RATE, 2048, 3600, 1))
    refused("ScoringPoolRoundsDone", lambda: pool.claim_batch(
        node.local_account, [a], [holders(r, a)]))  # fmt: skip
    assert scoring.choose_batch(r.chain, r.deployment, r.store, node.address) == []


def test_a_payout_tree_that_ignores_the_fee_cannot_pay_it_out(
    rnd: Round, governance: LocalAccount
) -> None:
    """The node commits leaves that add up to the whole price, as if no fee were taken: claims
    stop at the price less the fee, and the pool keeps its fee. With a fee of zero the same
    tree pays out in full, so the fee is what the market holds back."""
    price = 10**18

    def settle(fee_bps: int) -> tuple[int, int]:
        scoring.set_fee(rnd.chain, rnd.deployment, governance, fee_bps)
        pid = rnd.propose(wtp_bps=0, offer=price)
        rnd.approve(pid)
        rnd.start(pid)
        half = price // 2
        positions = {a: i for i, a in enumerate(rnd.asset_ids)}
        tree = payout_tree({a: half for a in rnd.asset_ids}, positions)
        node = rnd.accounts["node"].local_account
        rnd.market.submit_result(
            node,
            pid,
            ResultCommitment(9000, "bafyresult", payout_root=tree.root, seed_hash=keccak(b"seed")),
        )
        paid = 0
        for index, (position, asset_id, amount) in enumerate(tree.values):
            request = ClaimRequest(pid, int(position), int(asset_id), int(amount),
                                   tuple(tree.proof(index)))  # fmt: skip
            try:
                rnd.market.claim(rnd.accounts["stranger"].local_account, request)
                paid += int(amount)
            except ContractRevertError as exc:
                assert exc.error_name == "TrainingMarketOverClaim", exc
        return paid, scoring.fee_contract(rnd.chain, rnd.deployment).scoring_fee(pid).amount

    paid, fee = settle(500)
    assert fee == price // 20 and paid + fee <= price and paid == price // 2
    assert scoring.pool(rnd.chain, rnd.deployment).balances().uncollected == fee
    paid_without, fee_without = settle(0)
    assert (paid_without, fee_without) == (price, 0)
