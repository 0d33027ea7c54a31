"""``ScoringPool`` and the market's fee on anvil: every refusal, batches that lapse and are
taken by another node, a node without keys, rounds, releases and pay (no sandbox needed: the
scores are committed by hand here; ``test_scoring_round`` runs the node)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from tests.integration.compute.roundkit import Round
from tests.integration.scoring.conftest import RATE
from visdm import scoring
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.errors import ContractRevertError, InvalidInputError
from visdm.scoring import BatchStatus, PoolTerms, ScoreCommitment

pytestmark = pytest.mark.integration

COMMIT = ScoreCommitment(1, keccak(b"scores"), keccak(b"seed"), "bafyscores")


def refused(name: str, call: Callable[[], Any]) -> ContractRevertError:
    with pytest.raises(ContractRevertError) as caught:
        call()
    assert caught.value.error_name == name, caught.value
    return caught.value


def raw(chain: ChainClient, account: LocalAccount, fn: Any) -> Any:
    """Send a call the SDK would refuse first, to show the contract refuses it too."""
    return chain.transact(account, fn, action="raw")


def test_governance_terms_reference_fee_and_funding_are_checked(
    chain: ChainClient,
    deployment: Deployment,
    governance: LocalAccount,
    stranger: LocalAccount,
    node: LocalAccount,
) -> None:
    pool = scoring.pool(chain, deployment)
    fees = scoring.fee_contract(chain, deployment)
    assert pool.terms() == PoolTerms(RATE, 2048, 3600, 3)
    assert fees.scoring_fee(0).pool == pool.address and fees.scoring_fee(0).current_bps == 0
    refused("ScoringPoolNotGovernance", lambda: pool.set_terms(stranger, PoolTerms(1, 1, 60, 1)))
    refused("ScoringPoolNotGovernance", lambda: pool.set_reference(stranger, b"\1" * 32, "x"))
    refused("TrainingMarketNotGovernance", lambda: fees.set_scoring_fee(stranger, pool.address, 1))
    with pytest.raises(InvalidInputError, match="GOVERNANCE_ROLE"):
        scoring.set_fee(chain, deployment, stranger, 100)
    # out of range: the SDK says so before sending, and the contract refuses it anyway
    for bad in ((0, 1, 60, 1), (1, 0, 60, 1), (1, 1, 60, 0)):
        with pytest.raises(InvalidInputError, match="must be in 1"):
            scoring.set_terms(chain, deployment, governance, PoolTerms(*bad))
        refused("ScoringPoolInvalidTerms", lambda b=bad: raw(  # type: ignore[misc]
            chain, governance, pool._contract.functions.setTerms(b)))  # fmt: skip
    for period in (59, 30 * 86400 + 1):
        with pytest.raises(InvalidInputError, match="claim period"):
            scoring.set_terms(chain, deployment, governance, PoolTerms(1, 1, period, 1))
        refused("ScoringPoolInvalidTerms", lambda p=period: raw(  # type: ignore[misc]
            chain, governance, pool._contract.functions.setTerms((1, 1, p, 1))))  # fmt: skip
    refused("ScoringPoolNoReference", lambda: pool.set_reference(governance, bytes(32), "x"))
    for bps in (-1, 1001, True):
        with pytest.raises(InvalidInputError, match="scoring fee"):
            scoring.set_fee(chain, deployment, governance, bps)  # type: ignore[arg-type]
    refused("TrainingMarketInvalidParameters", lambda: fees.set_scoring_fee(
        governance, pool.address, 1001))  # fmt: skip
    zero = "0x" + "00" * 20
    refused("TrainingMarketInvalidParameters", lambda: fees.set_scoring_fee(governance, zero, 5))
    # no reference yet: nothing can be claimed
    refused("ScoringPoolNoReference", lambda: pool.claim_batch(node, [1], [[node.address]]))
    # money
    for amount in (0, -5, 2**256):
        with pytest.raises(InvalidInputError, match="positive amount"):
            scoring.fund(chain, deployment, stranger, amount)
    refused("ScoringPoolInvalidTerms", lambda: pool.fund(stranger, 0))
    with pytest.raises(InvalidInputError, match="holds 0 wei"):
        scoring.fund(chain, deployment, stranger, 10)
    refused("ScoringPoolNothingToWithdraw", lambda: pool.withdraw(node))
    with pytest.raises(InvalidInputError, match="no scoring pay"):
        scoring.withdraw(chain, deployment, node)
    assert scoring.collect_fees(chain, deployment, stranger).transactions == ()
    # batches that do not exist
    refused("ScoringPoolUnknownBatch", lambda: pool.lapse_batch(stranger, 9))
    refused("ScoringPoolUnknownBatch", lambda: pool.publish_scores(node, 9, [1], COMMIT))
    refused("ScoringPoolUnknownBatch", lambda: pool.release_batch(node, 9, [1]))
    for bad_id in (0, -1, True):
        with pytest.raises(InvalidInputError, match="batch id"):
            scoring.batch_view(chain, deployment, bad_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no batch 3"):
        scoring.batch_view(chain, deployment, 3)


@pytest.fixture
def market(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Any,
    funded_roles: dict[str, LocalAccount],
    governance: LocalAccount,
) -> Round:
    """Two providers' assets whose keys are wrapped for two nodes, ``node`` and ``stranger``
    (admitted before the assets), a reference and a funded pool."""
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
    r.add_assets(tmp_path, per_provider=12)
    pool = scoring.pool(chain, deployment)
    pool.set_reference(governance, keccak(b"reference"), "bafyreference")
    scoring.fund(chain, deployment, r.accounts["consumer"].local_account, 100 * RATE)
    return r


def holders(r: Round, asset_id: int) -> list[str]:
    return r.deployment.asset_registry(r.chain).key_nodes(asset_id)


def test_claims_publications_lapses_and_releases(market: Round, governance: LocalAccount) -> None:
    r, chain = market, market.chain
    pool = scoring.pool(chain, r.deployment)
    node, other = r.accounts["node"].local_account, r.accounts["stranger"].local_account
    a, b = r.asset_ids
    keys = {a: holders(r, a), b: holders(r, b)}
    both = [keys[a], keys[b]]
    assert set(keys[a]) == {node.address, other.address}

    refused("ScoringPoolNotNode", lambda: pool.claim_batch(r.accounts["provider"].local_account,
                                                           [a], [keys[a]]))  # fmt: skip
    refused("ScoringPoolEmptyBatch", lambda: pool.claim_batch(node, [], []))
    refused("ScoringPoolEmptyBatch", lambda: pool.claim_batch(node, [a, b], [keys[a]]))
    refused("ScoringPoolAssetsNotIncreasing", lambda: pool.claim_batch(node, [b, a], both))
    refused("ScoringPoolAssetsNotIncreasing", lambda: pool.claim_batch(node, [a, a], both))
    refused("ScoringPoolNoKey", lambda: pool.claim_batch(node, [a], [[node.address]]))
    refused("ScoringPoolAssetNotScorable", lambda: pool.claim_batch(node, [99], [[]]))
    scoring.set_terms(chain, r.deployment, governance, PoolTerms(RATE, 20, 3600, 1))
    refused("ScoringPoolBatchTooLarge", lambda: pool.claim_batch(node, [a, b], both))
    scoring.set_terms(chain, r.deployment, governance, PoolTerms(10 * RATE, 2048, 3600, 1))
    refused("ScoringPoolInsufficientFunds", lambda: pool.claim_batch(node, [a], [keys[a]]))
    scoring.set_terms(chain, r.deployment, governance, PoolTerms(RATE, 2048, 3600, 1))

    # a claim reserves its pay and holds the asset; one open batch per node
    first, _ = pool.claim_batch(node, [a], [keys[a]])
    batch = pool.batch(first)
    assert (batch.status, batch.samples, batch.reserved) == (BatchStatus.CLAIMED, 12, 12 * RATE)
    assert pool.balances().reserved == 12 * RATE and pool.open_batch_of(node.address) == first
    refused("ScoringPoolOpenBatch", lambda: pool.claim_batch(node, [b], [keys[b]]))
    held = refused("ScoringPoolAssetLocked", lambda: pool.claim_batch(other, [a], [keys[a]]))
    assert held.error_args["batchId"] == first
    with pytest.raises(InvalidInputError, match="still holds batch"):
        scoring.claim(chain, r.deployment, r.store, node)

    # publishing: only its node, its assets, a sane count; paid once
    one = ScoreCommitment(12, keccak(b"s"), keccak(b"seed"), "bafy")
    refused("ScoringPoolNotBatchNode", lambda: pool.publish_scores(other, first, [a], one))
    refused("ScoringPoolAssetsMismatch", lambda: pool.publish_scores(node, first, [b], one))
    for bad in (
        ScoreCommitment(0, keccak(b"s"), keccak(b"seed"), "bafy"),
        ScoreCommitment(3, bytes(32), keccak(b"seed"), "bafy"),
        ScoreCommitment(3, keccak(b"s"), bytes(32), "bafy"),
    ):
        refused("ScoringPoolInvalidResult", lambda c=bad: pool.publish_scores(node, first, [a], c))  # type: ignore[misc]
    too_many = ScoreCommitment(13, keccak(b"s"), keccak(b"seed"), "bafy")
    refused("ScoringPoolTooManyScored", lambda: pool.publish_scores(node, first, [a], too_many))
    pool.publish_scores(node, first, [a], one)
    assert pool.credit_of(node.address) == 12 * RATE
    assert pool.asset_scoring(a)[:2] == (1, 0) and pool.open_batch_of(node.address) is None
    assert pool.balances().reserved == 0 and pool.balances().owed == 12 * RATE
    refused("ScoringPoolWrongStatus", lambda: pool.publish_scores(node, first, [a], one))
    refused("ScoringPoolRoundsDone", lambda: pool.claim_batch(other, [a], [keys[a]]))

    # a batch left to lapse: unpaid, free for others, its node waits one more claim period
    second, _ = pool.claim_batch(node, [b], [keys[b]])
    refused("ScoringPoolDeadlineNotPassed", lambda: pool.lapse_batch(other, second))
    chain.advance_time(3601)
    refused("ScoringPoolDeadlinePassed", lambda: pool.publish_scores(node, second, [b], one))
    pool.lapse_batch(other, second)
    assert pool.batch(second).status == BatchStatus.LAPSED and pool.balances().reserved == 0
    refused("ScoringPoolWrongStatus", lambda: pool.lapse_batch(other, second))
    refused("ScoringPoolLapsed", lambda: pool.claim_batch(node, [b], [keys[b]]))
    assert scoring.choose_batch(chain, r.deployment, r.store, node.address) == []
    third, _ = pool.claim_batch(other, [b], [keys[b]])  # another node takes it at once
    # ... and gives it up: assets and reserve are free at once, without the lapse rule
    refused("ScoringPoolAssetsMismatch", lambda: pool.release_batch(other, third, [a]))
    refused("ScoringPoolNotBatchNode", lambda: pool.release_batch(node, third, [b]))
    released = scoring.release(chain, r.deployment, other, third)
    assert released.amount_wei == 12 * RATE and pool.batch(third).status == BatchStatus.RELEASED
    with pytest.raises(InvalidInputError, match="nothing to release"):
        scoring.release(chain, r.deployment, other, third)
    fourth, _ = pool.claim_batch(other, [b], [keys[b]])
    assert pool.batch(fourth).status == BatchStatus.CLAIMED
    chain.advance_time(3601)
    # claiming again ends the node's lapsed open batch by itself
    assert pool.open_batch_of(other.address) == fourth
    scoring.set_terms(chain, r.deployment, governance, PoolTerms(RATE, 2048, 3600, 3))
    fifth, _ = pool.claim_batch(other, [a], [keys[a]])
    assert pool.batch(fourth).status == BatchStatus.LAPSED
    assert pool.open_batch_of(other.address) == fifth
    token = r.deployment.payment_token(chain)
    before = token.balance_of(node.address)
    paid = scoring.withdraw(chain, r.deployment, node)
    assert paid.amount_wei == 12 * RATE and token.balance_of(node.address) - before == 12 * RATE
    assert pool.balances().owed == 0


def test_a_node_without_keys_cannot_claim(market: Round, governance: LocalAccount) -> None:
    """``provider`` is admitted as a node after the assets were registered: no key was
    wrapped for it, so the pool refuses it and the node's choice is empty."""
    r = market
    late = r.accounts["provider2"]
    r.registry.admit_node(
        governance,
        late.address,
        signer=late.address,
        region="local",
        encryption_key=late.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    a = r.asset_ids[0]
    pool = scoring.pool(r.chain, r.deployment)
    refused("ScoringPoolNoKey", lambda: pool.claim_batch(late.local_account, [a], [holders(r, a)]))
    b = r.asset_ids[1]
    choice = scoring.choose_batch(r.chain, r.deployment, r.store, late.address)
    assert choice == []
    assert scoring.claim(r.chain, r.deployment, r.store, late.local_account) is None
    for bad in (0, -1, True):
        with pytest.raises(InvalidInputError, match="--max-samples"):
            scoring.claim(r.chain, r.deployment, r.store, late.local_account, max_samples=bad)
    with pytest.raises(InvalidInputError, match="cannot be scored"):
        scoring.claim(r.chain, r.deployment, r.store, late.local_account, asset_ids=[a, b])
