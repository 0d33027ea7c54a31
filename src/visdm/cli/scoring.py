"""``visdm scoring``: the scoring pool that pays nodes to score samples nobody has scored yet.

Governance: ``reference|terms|fee``; anyone: ``fund|collect|status|show``; a compute node:
``claim|release|withdraw`` (``visdm node serve --score`` claims and scores by itself when idle).
Each command is one call of :mod:`visdm.scoring` (or of the index, for ``show --asset``);
amounts are in tokens (``0.5``) or wei (``1000wei``).
"""

from __future__ import annotations

from typing import Any

import typer

from visdm import scoring, session
from visdm.errors import InvalidInputError

from ._common import JsonOption, console, emit, settings, unlock_account
from ._json import transactions
from .rounds import parse_amount

__all__ = ["app"]

app = typer.Typer(help="Scoring rounds: pay nodes to score samples that have few or no scores.")


def _receipt(receipt: scoring.Receipt, **extra: Any) -> dict[str, Any]:
    return {
        "action": receipt.action,
        "amountWei": str(receipt.amount_wei),
        **extra,
        **transactions(*receipt.transactions),
    }


def _terms(terms: scoring.PoolTerms) -> dict[str, Any]:
    return {
        "ratePerSampleWei": str(terms.rate_per_sample),
        "maxBatchSamples": terms.max_batch_samples,
        "claimPeriod": terms.claim_period,
        "maxRounds": terms.max_rounds,
    }


@app.command("reference")
def reference(
    ctx: typer.Context,
    classes: str | None = typer.Option(
        None,
        "--classes",
        help="The 10 label names in class order, comma-separated (default: Fashion-MNIST's, as "
        "`data export` writes them).",
    ),
    validation: int = typer.Option(500, "--validation", help="Test-split images that score."),
    anchors: int = typer.Option(500, "--anchors", help="Test-split images valued beside a batch."),
    as_json: bool = JsonOption,
) -> None:
    """Governance: publish the public reference batches are scored against (Fashion-MNIST)."""
    names = None if classes is None else [c.strip() for c in classes.split(",")]
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    done = scoring.publish_reference(
        conn.client,
        conn.deployment,
        session.open_store(cfg),
        account.local_account,
        classes=names,
        validation_samples=validation,
        anchor_samples=anchors,
    )
    view = {**done.reference.to_json(), **transactions(*done.transactions)}
    emit(view, as_json=as_json, title="reference published")


@app.command("terms")
def terms(
    ctx: typer.Context,
    rate: str | None = typer.Option(None, "--rate", help="Pay per scored sample (tokens)."),
    max_batch: int | None = typer.Option(None, "--max-batch", help="Most samples per batch."),
    claim_period: int | None = typer.Option(
        None, "--claim-period", help="Seconds a node has to publish a batch."
    ),
    max_rounds: int | None = typer.Option(
        None, "--max-rounds", help="Scoring rounds the pool pays per asset."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Governance: change the pool's terms (options left out keep their value)."""
    pay = None if rate is None else parse_amount(rate, "--rate")
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    now = scoring.pool(conn.client, conn.deployment).terms()
    wanted = scoring.PoolTerms(
        now.rate_per_sample if pay is None else pay,
        now.max_batch_samples if max_batch is None else max_batch,
        now.claim_period if claim_period is None else claim_period,
        now.max_rounds if max_rounds is None else max_rounds,
    )
    done = scoring.set_terms(conn.client, conn.deployment, account.local_account, wanted)
    emit(_receipt(done, terms=_terms(wanted)), as_json=as_json, title="terms set")


@app.command("fee")
def fee(
    ctx: typer.Context,
    fee_bps: int = typer.Argument(..., help="Basis points of a completed proposal's price."),
    as_json: bool = JsonOption,
) -> None:
    """Governance: set the scoring fee on proposals made from now on (at most 1000 bps)."""
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    done = scoring.set_fee(conn.client, conn.deployment, account.local_account, fee_bps)
    emit(_receipt(done, feeBps=fee_bps), as_json=as_json, title="scoring fee set")


@app.command("fund")
def fund(
    ctx: typer.Context,
    amount: str = typer.Argument(..., help="Tokens to pay into the pool (or NNNwei)."),
    as_json: bool = JsonOption,
) -> None:
    """Pay tokens into the scoring pool."""
    value = parse_amount(amount, "amount")
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    done = scoring.fund(conn.client, conn.deployment, account.local_account, value)
    emit(_receipt(done), as_json=as_json, title="pool funded")


@app.command("collect")
def collect(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Pull the scoring fees the market holds for the pool into it (anyone may)."""
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    done = scoring.collect_fees(conn.client, conn.deployment, account.local_account)
    emit(_receipt(done), as_json=as_json, title="fees collected")


@app.command("claim")
def claim(
    ctx: typer.Context,
    asset: list[int] = typer.Option(
        [], "--asset", help="Claim these assets (default: the pool's choice for this node)."
    ),
    max_samples: int | None = typer.Option(
        None, "--max-samples", help="Most samples to take (the pool's limit applies too)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """A compute node: claim a batch of unscored assets (score it with `node serve --score`)."""
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    got = scoring.claim(
        conn.client,
        conn.deployment,
        session.open_store(cfg),
        account.local_account,
        max_samples=max_samples,
        asset_ids=asset or None,
    )
    if got is None:
        emit({"batchId": None, **transactions()}, as_json=as_json, title="nothing to score now")
        return
    view = {
        "batchId": got.batch_id,
        "node": got.node,
        "assetIds": list(got.asset_ids),
        "samples": got.samples,
        "deadline": got.deadline,
        "reservedWei": str(got.reserved_wei),
        **transactions(*got.transactions),
    }
    emit(view, as_json=as_json, title="batch claimed")


@app.command("release")
def release(
    ctx: typer.Context,
    batch: int = typer.Argument(..., help="The batch to give up."),
    as_json: bool = JsonOption,
) -> None:
    """A compute node: give up a batch it cannot score (its assets are free at once)."""
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    done = scoring.release(conn.client, conn.deployment, account.local_account, batch)
    emit(_receipt(done, batchId=batch), as_json=as_json, title="batch released")


@app.command("withdraw")
def withdraw(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """A compute node: withdraw its scoring pay."""
    cfg = settings(ctx)
    account = unlock_account(cfg)
    conn = session.connect_deployed(cfg)
    done = scoring.withdraw(conn.client, conn.deployment, account.local_account)
    emit(_receipt(done), as_json=as_json, title="pay withdrawn")


@app.command("status")
def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """The pool: terms, balances, the market's fee, the reference and open batches."""
    conn = session.connect_deployed(settings(ctx))
    got = scoring.pool_status(conn.client, conn.deployment)
    view = {
        "pool": got.pool,
        "terms": _terms(got.terms),
        "availableWei": str(got.balances.available),
        "reservedWei": str(got.balances.reserved),
        "owedWei": str(got.balances.owed),
        "uncollectedWei": str(got.balances.uncollected),
        "feeBps": got.fee.current_bps,
        "referenceHash": got.reference_hash,
        "referenceCid": got.reference_cid,
        "batches": got.batches,
        "openBatches": list(got.open_batches),
    }
    emit(view, as_json=as_json, title="scoring pool")


@app.command("show")
def show(
    ctx: typer.Context,
    batch: int | None = typer.Argument(None, help="A batch: its assets, state and scores."),
    asset: int | None = typer.Option(
        None, "--asset", help="Instead: an asset's samples, rounds and confidence (the index)."
    ),
    index_url: str | None = typer.Option(
        None, "--index-url", envvar="VISDM_INDEX_URL", help="Index database (with --asset)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """A batch from the chain, or (``--asset``) how well each sample of an asset is scored."""
    if (batch is None) == (asset is None):
        raise InvalidInputError("give a batch id, or --asset ID: one of the two")
    cfg = settings(ctx)
    if asset is not None:
        from visdm.index._scoring import scores_of_asset

        found = scores_of_asset(cfg, asset, url=index_url)
        emit(found, as_json=as_json, title=f"asset {asset}")
        if not as_json:
            console.print("values are relative: an average sample is worth about the accuracy gain")
        return
    conn = session.connect_deployed(cfg)
    got = scoring.batch_view(conn.client, conn.deployment, int(batch or 0))
    r = got.record
    view = {
        "batchId": r.batch_id,
        "node": r.node,
        "status": r.status,
        "assetIds": list(got.asset_ids),
        "samples": r.samples,
        "scored": r.scored,
        "deadline": r.deadline,
        "reservedWei": str(r.reserved),
        "paidWei": None if got.paid_wei is None else str(got.paid_wei),
        "referenceHash": r.reference_hash,
        "scoresCid": got.scores_cid,
        "scoresHash": got.scores_hash,
        "seedHash": got.seed_hash,
    }
    emit(view, as_json=as_json, title=f"batch {batch}")
