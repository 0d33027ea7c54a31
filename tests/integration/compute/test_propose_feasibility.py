"""A proposal its node could never run is refused before any money moves: the node's design
limits (published at ``GET /limits``, or the defaults), its key coverage, the voting window
measured from the next block, a dry run of ``propose``; and a validation folder never shrinks
without a word."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from PIL import Image

from tests.integration.compute.roundkit import MLP_SPEC, NAMES, VAL_X, VAL_Y, Round
from visdm.cli._json import scheme_problems
from visdm.compute._serve import ApiServer
from visdm.compute.api import create_app
from visdm.errors import (
    ContractRevertError,
    DesignLimitError,
    InvalidInputError,
    InvalidProposalError,
)
from visdm.market import workflow
from visdm.proposals import CreatedProposal, _consumer

pytestmark = pytest.mark.integration


@pytest.fixture
def images_per_provider() -> int:
    return 20


def nonce(rnd: Round) -> int:
    return int(rnd.chain.w3.eth.get_transaction_count(rnd.accounts["consumer"].address))


def propose(rnd: Round, **changes: object) -> CreatedProposal:
    kwargs: dict[str, object] = {
        "selection": rnd.asset_ids,
        "model_spec": MLP_SPEC,
        "validation": (VAL_X, VAL_Y),
        "classes": NAMES,
        "offer": 10**18,
        "wtp_bps": 1000,
        "node": rnd.accounts["node"].address,
        "voting_period_s": 120,
    }
    kwargs.update(changes)
    return workflow.propose(rnd.as_("consumer"), rnd.accounts["consumer"], **kwargs)  # type: ignore[arg-type]


@contextmanager
def serving_node(rnd: Round, governance: LocalAccount, **config: object) -> Iterator[httpx.Client]:
    """The node's API on a free port, registered on chain as the node's endpoint."""
    quotes = rnd.quotes(**config)
    rnd.settings.node_dir.mkdir(parents=True, exist_ok=True)
    server = ApiServer(
        create_app(quotes, rnd.settings.node_dir / "jobs.sqlite3"),
        "127.0.0.1",
        0,
        rnd.settings.node_dir / "api.json",
    )
    url = server.start()
    node = rnd.accounts["node"]
    rnd.registry.admit_node(
        governance,
        node.address,
        signer=node.address,
        region="local",
        encryption_key=node.x25519_public,
        endpoint=url,
    )
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({**MLP_SPEC, "epochs": 1000}, "spec epochs=1000 exceeds this node's max_epochs=50"),
        (
            {**MLP_SPEC, "hidden": [4096, 4096, 4096]},
            "spec's mlp has 36,818,954 parameters, over this node's max_params=5,000,000",
        ),
    ],
)
def test_a_spec_over_the_node_limits_is_refused_before_any_transaction(
    rnd: Round, spec: dict[str, object], says: str
) -> None:
    before = nonce(rnd)
    with pytest.raises(DesignLimitError) as info:
        propose(rnd, model_spec=spec)
    message = str(info.value)
    assert message.startswith(
        f"compute node {rnd.accounts['node'].address} would refuse to train this proposal: "
    )
    assert says in message and message.endswith("and propose again; nothing was escrowed")
    assert "start the node (`visdm node serve`) if its own limits are larger" in message
    assert nonce(rnd) == before and rnd.market.proposal_count() == 0


def test_the_limits_a_running_node_publishes_are_the_ones_checked(
    rnd: Round, funded_roles: dict[str, LocalAccount]
) -> None:
    with serving_node(rnd, funded_roles["governance"], limits={"max_epochs": 2}) as api:
        published = api.get("/limits").json()
        assert scheme_problems(published) == []  # the CLI's JSON language
        assert published["node"] == rnd.accounts["node"].address
        assert published["limits"]["maxEpochs"] == 2
        assert published["limits"]["minBatchSize"] == rnd.market.parameters().min_batch_size
        assert int(published["pricePerGflopWei"]) > 0 and published["maxDuration"] == 3600
        with pytest.raises(DesignLimitError, match="epochs=3 exceeds this node's max_epochs=2"):
            propose(rnd)
        assert rnd.market.proposal_count() == 0
        created = propose(rnd, model_spec={**MLP_SPEC, "epochs": 2})
    assert created.notes[0] == (
        f"checked the spec against the limits compute node {rnd.accounts['node'].address} publishes"
    )
    assert created.notes[1].startswith("the node would charge about ")
    assert rnd.market.proposal(created.proposal_id).consumer == rnd.accounts["consumer"].address


def test_a_node_without_keys_for_the_selection_is_refused(
    rnd: Round, funded_roles: dict[str, LocalAccount]
) -> None:
    other = rnd.accounts["stranger"]
    rnd.registry.admit_node(
        funded_roles["governance"],
        other.address,
        signer=other.address,
        region="local",
        encryption_key=other.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    before = nonce(rnd)
    with pytest.raises(InvalidProposalError) as info:
        propose(rnd, node=other.address)
    assert (
        f"asset {rnd.asset_ids[0]}: its data key is wrapped only for "
        f"{rnd.accounts['node'].address}, not for compute node {other.address}, which could not "
        "decrypt it"
    ) in str(info.value)
    assert nonce(rnd) == before and rnd.market.proposal_count() == 0


def test_a_voting_period_outside_the_window_is_refused_with_the_window(rnd: Round) -> None:
    with pytest.raises(InvalidInputError) as info:
        propose(rnd, voting_period_s=30)
    assert str(info.value) == (
        "a voting period of 30 s is outside the market's window: give 60 to 2,591,990 s (30.0 days)"
    )


def test_the_shortest_voting_period_works_after_the_chain_was_idle(rnd: Round) -> None:
    """anvil mines on demand: after an idle spell its latest block is old, and a deadline
    counted from it lands before the window of the block the proposal is mined in."""
    latest = rnd.chain.latest_timestamp()
    rnd.chain.w3.provider.make_request("evm_increaseTime", [900])  # type: ignore[arg-type]
    created = propose(rnd, voting_period_s=60)
    mined = int(rnd.chain.w3.eth.get_block(created.transactions[-1].block_number)["timestamp"])
    assert mined >= latest + 900
    assert created.document.voting_deadline >= mined + 60
    assert latest + _consumer._DEADLINE_SLACK_S + 60 < mined + 60  # the old deadline: refused


def test_a_dry_run_refuses_before_anything_is_sent(
    rnd: Round, funded_roles: dict[str, LocalAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the client's own minimum check switched off, the market's refusal still comes
    before the offer is approved or escrowed, or the documents stored, as its sentence."""
    params = rnd.market.parameters()
    rnd.market.set_parameters(
        funded_roles["governance"], replace(params, min_selection_providers=3)
    )
    monkeypatch.setattr(_consumer, "_check_minimums", lambda *_: None)
    before, pins = nonce(rnd), rnd.store.pins()
    with pytest.raises(ContractRevertError) as info:
        propose(rnd)
    assert info.value.error_name == "TrainingMarketSelectionTooSmall"
    assert rnd.store.pins() == pins  # nothing was stored either
    assert str(info.value).startswith(
        "propose refused: the selection has 40 samples of 2 provider(s); the market trains on "
        "at least 1 samples of at least 3 providers: select more data"
    )
    assert nonce(rnd) == before


def write_validation(folder: Path, *, images: int, labelled: int) -> Path:
    folder.mkdir(parents=True)
    rows = ["filename,label"]
    for i in range(images):
        Image.fromarray(VAL_X[i]).save(folder / f"v{i:04d}.png")
        if i < labelled:
            rows.append(f"v{i:04d}.png,{NAMES[int(VAL_Y[i])]}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_a_validation_folder_that_shrinks_is_reported_or_refused(
    rnd: Round, tmp_path: Path
) -> None:
    before = nonce(rnd)
    few = write_validation(tmp_path / "few", images=60, labelled=2)
    with pytest.raises(InvalidInputError) as info:
        propose(rnd, validation=few, classes=None)
    assert "only 2 of 60 files can score a model (58 skipped (58 no label" in str(info.value)
    assert nonce(rnd) == before and rnd.market.proposal_count() == 0

    some = write_validation(tmp_path / "some", images=60, labelled=40)
    created = propose(rnd, validation=some, classes=NAMES)
    assert created.notes[0].startswith("validation set: 40 of 60 files scored; 20 skipped (")
    assert created.document.validation.samples == 40
    assert np.unique(VAL_Y[:40]).size <= len(NAMES)
