"""What the consumer's own client refuses before any money moves, with messages that say why."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.roundkit import (
    MLP_SPEC,
    NAMES,
    NO_DP_LICENCE,
    VAL_X,
    VAL_Y,
    Round,
    write_folder,
)
from visdm.assets import add_asset
from visdm.errors import InvalidInputError, InvalidProposalError
from visdm.market import workflow
from visdm.types import Role

pytestmark = pytest.mark.integration


def _raise_minimums(rnd: Round, governance: LocalAccount, **changes: int) -> None:
    params = rnd.market.parameters()
    rnd.market.set_parameters(governance, replace(params, **changes))


def test_a_selection_under_the_market_minimums_is_refused_before_escrow(
    rnd: Round, funded_roles: dict[str, LocalAccount]
) -> None:
    balance = rnd.token.balance_of(rnd.accounts["consumer"].address)
    _raise_minimums(rnd, funded_roles["governance"], min_selection_providers=3)
    with pytest.raises(InvalidProposalError, match=r"120 samples of 2 provider\(s\).*at least 3"):
        rnd.propose(wtp_bps=1000)
    _raise_minimums(rnd, funded_roles["governance"], min_selection_samples=121)
    with pytest.raises(InvalidProposalError, match="at least 121 samples"):
        rnd.propose(wtp_bps=1000)
    assert rnd.token.balance_of(rnd.accounts["consumer"].address) == balance
    assert rnd.market.proposal_count() == 0


def test_a_batch_under_the_market_minimum_is_refused(
    rnd: Round, funded_roles: dict[str, LocalAccount]
) -> None:
    _raise_minimums(rnd, funded_roles["governance"], min_batch_size=64)
    with pytest.raises(InvalidInputError, match="batch_size=32 is below the market's minimum"):
        rnd.propose(wtp_bps=1000)
    pid = rnd.propose(wtp_bps=1000, spec={**MLP_SPEC, "batch_size": 64})
    assert rnd.market.proposal(pid).consumer == rnd.accounts["consumer"].address


@pytest.mark.attack
def test_the_client_refuses_the_consumers_own_data_and_itself_as_the_node(
    rnd: Round, tmp_path: Path, funded_roles: dict[str, LocalAccount]
) -> None:
    consumer = rnd.accounts["consumer"]
    rnd.registry.add_roles(consumer.local_account, Role.PROVIDER)
    mine = add_asset(
        rnd.as_("consumer"),
        consumer,
        write_folder(tmp_path / "mine", list(range(300, 320))),
        licence=NO_DP_LICENCE,
    )
    rnd.attest()
    with pytest.raises(InvalidProposalError, match=f"asset {mine.asset_id}: it is your own asset"):
        rnd.propose(wtp_bps=1000, selection=[*rnd.asset_ids, mine.asset_id])
    rnd.registry.admit_node(
        funded_roles["governance"],
        consumer.address,
        signer=consumer.address,
        region="local",
        encryption_key=consumer.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    with pytest.raises(InvalidInputError, match="cannot name yourself as the compute node"):
        workflow.propose(
            rnd.as_("consumer"),
            consumer,
            selection=rnd.asset_ids,
            model_spec=MLP_SPEC,
            validation=(VAL_X, VAL_Y),
            classes=NAMES,
            offer=10**18,
            wtp_bps=1000,
            node=consumer.address,
            voting_period_s=120,
        )
