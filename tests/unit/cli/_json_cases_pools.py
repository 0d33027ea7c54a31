"""``--json`` cases of the collective and scoring commands (registered on import)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import visdm.assets
import visdm.demo
import visdm.governance
import visdm.index
import visdm.session
from tests.unit.cli._json_cases import ADDRESS, BIG, TX, case
from visdm import collectives
from visdm.market import workflow


# --- collectives ------------------------------------------------------------------------------
def _connected(mp: pytest.MonkeyPatch) -> None:
    """The collective commands connect first; the SDK calls below are fakes."""
    mp.setattr(
        visdm.session,
        "connect_deployed",
        lambda _cfg: SimpleNamespace(client=None, deployment=None),
    )


def _member_receipt() -> collectives.MemberReceipt:
    return collectives.MemberReceipt(ADDRESS, ADDRESS, 2**60, BIG, 1_700_000_000, (TX,), ("n",))


@case("collective create")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    created = collectives.Created(ADDRESS, "potters", ADDRESS, 250, 86_400, (TX,))
    mp.setattr(collectives, "create", lambda *_a, **_k: created)

    def check(d: Any) -> None:
        assert (d["name"], d["feeBps"], d["transactions"][0]["txHash"]) == (
            "potters",
            250,
            TX.tx_hash,
        )

    return ["collective", "create", "potters", "--fee-bps", "250"], check


@case("collective join")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    seen: dict[str, Any] = {}
    mp.setattr(collectives, "join", lambda *_a, **k: seen.update(k) or _member_receipt())

    def check(d: Any) -> None:
        assert d["floorWei"] == str(BIG) and d["weight"] == str(2**60)
        assert (seen["floor"], seen["asset_ids"], seen["deposit_wei"]) == (10**16, [4], 10**18)

    argv = ["collective", "join", "potters", "--floor", "0.01", "--asset", "4"]
    return [*argv, "--deposit", "1"], check


@case("collective leave")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    mp.setattr(collectives, "leave", lambda *_a: _member_receipt())
    return ["collective", "leave", ADDRESS], lambda d: d["gasUsed"] == TX.gas_used


@case("collective policy")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    settled = collectives.SettleReceipt(ADDRESS, (ADDRESS,), (), BIG, 300, (TX,))
    mp.setattr(collectives, "vote_floor", lambda *_a, **_k: _member_receipt())
    mp.setattr(collectives, "settle", lambda *_a: settled)

    def check(d: Any) -> None:
        assert d["policyFloorWei"] == str(BIG) and d["settled"] == [ADDRESS]
        assert len(d["transactions"]) == 2  # the floor vote, then the settlement

    return ["collective", "policy", "potters", "--floor", "1000wei", "--settle"], check


@case("collective vote")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    receipt = collectives.CastReceipt(ADDRESS, 3, BIG, BIG, 300, BIG, False, (), (), (TX,))
    mp.setattr(collectives, "cast_vote", lambda *_a: receipt)

    def check(d: Any) -> None:
        assert (d["vote"], d["askWei"], d["offerWei"]) == ("ask", str(BIG), str(BIG))

    return ["collective", "vote", "potters", "3"], check


def _stats() -> collectives.CollectiveStats:
    outcomes = [{"outcome": "approved", "proposals": 2}]
    return collectives.CollectiveStats(3, 2, 0.6667, outcomes, BIG, 300, BIG // 300, BIG)


@case("collective show")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    member = {"member": ADDRESS, "weight": 100, "floor_wei": BIG, "deposit_wei": BIG}
    view = collectives.CollectiveView(
        ADDRESS,
        "potters",
        ADDRESS,
        BIG,
        250,
        500,
        1_700_000_000,
        86_400,
        BIG,
        300,
        [{"floor_wei": BIG, "weight": 300}],
        [member],
        _stats(),
    )
    mp.setattr(collectives, "show", lambda *_a, **_k: view)

    def check(d: Any) -> None:
        assert d["members"][0]["floorWei"] == str(BIG)
        assert d["stats"]["earningsPerSampleWei"] == str(BIG // 300)

    return ["collective", "show", "potters"], check


@case("collective list")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    row = collectives.CollectiveSummary(ADDRESS, "potters", ADDRESS, 3, 250, BIG, 300, 3, 0.5)
    mp.setattr(collectives, "list_collectives", lambda *_a: [row])
    return ["collective", "list"], lambda d: d[0]["policyFloorWei"] == str(BIG)


@case("collective fee")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    mp.setattr(collectives, "set_fee", lambda *_a, **_k: _member_receipt())
    return ["collective", "fee", "potters", "500"], lambda d: d["feeBps"] == 500


@case("collective deposit")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    mp.setattr(collectives, "deposit", lambda *_a, **_k: _member_receipt())
    return [
        "collective",
        "deposit",
        "potters",
        "2.5",
    ], lambda d: d["depositedWei"] == str(25 * 10**17)


@case("collective charge")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm.market import build_payout_tree

    _connected(mp)
    tree = build_payout_tree({4: BIG}, {4: 0})
    mp.setattr(workflow, "training_result", lambda *_a: {"payouts": {"tree": tree.dump()}})
    row = collectives.ChargeRow(0, 4, ADDRESS, BIG, BIG // 20, "charged")
    report = collectives.ChargeReport(ADDRESS, 3, 500, BIG // 20, (row,), (TX,))
    mp.setattr(
        collectives, "charge_fees", lambda *_a, **k: report if k["tree"].root == tree.root else None
    )

    def check(d: Any) -> None:
        assert d["rows"][0]["amountWei"] == str(BIG) and d["chargedWei"] == str(BIG // 20)

    return ["collective", "charge", "potters", "3"], check


@case("collective withdraw")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    _connected(mp)
    done = collectives.Withdrawal(ADDRESS, BIG, 0, (TX,))
    mp.setattr(collectives, "withdraw", lambda *_a: done)
    return ["collective", "withdraw", "potters"], lambda d: d["depositWei"] == str(BIG)


# --- scoring rounds -----------------------------------------------------------------------------
def _reference() -> Any:
    from visdm.scoring import BlobRef, ScoringReference

    blob = BlobRef("bafy", bytes(32), 500, "fashion-mnist test 0..499")
    return ScoringReference(("a",) * 10, {"architecture": "mlp"}, {"k": 5}, blob, blob, bytes(32))


def _pool_receipt(action: str) -> Any:
    from visdm import scoring

    return scoring.Receipt(action, BIG, (TX,))


@case("scoring reference")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    mp.setattr(visdm.session, "open_store", lambda _cfg: None)
    done = scoring.ReferenceReceipt(_reference(), (TX,))
    mp.setattr(scoring, "publish_reference", lambda *_a, **_k: done)

    def check(d: Any) -> None:
        assert d["validation"]["samples"] == 500 and d["transactions"][0]["txHash"] == TX.tx_hash

    return ["scoring", "reference", "--validation", "500"], check


@case("scoring terms")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    now = scoring.PoolTerms(10**15, 2048, 3600, 3)
    mp.setattr(scoring, "pool", lambda *_a: SimpleNamespace(terms=lambda: now))
    mp.setattr(scoring, "set_terms", lambda *_a: _pool_receipt("setTerms"))

    def check(d: Any) -> None:
        assert d["terms"]["ratePerSampleWei"] == str(2 * 10**18) and d["terms"]["maxRounds"] == 3

    return ["scoring", "terms", "--rate", "2"], check


@case("scoring fee")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    mp.setattr(scoring, "set_fee", lambda *_a: _pool_receipt("setScoringFee"))
    return ["scoring", "fee", "200"], lambda d: d["feeBps"] == 200


@case("scoring fund")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    mp.setattr(scoring, "fund", lambda *_a: _pool_receipt("fund"))
    return ["scoring", "fund", "1.5"], lambda d: d["amountWei"] == str(BIG)


@case("scoring collect")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    mp.setattr(scoring, "collect_fees", lambda *_a: _pool_receipt("collectFees"))
    return ["scoring", "collect"], lambda d: d["action"] == "collectFees"


@case("scoring claim")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    mp.setattr(visdm.session, "open_store", lambda _cfg: None)
    got = scoring.BatchClaim(4, ADDRESS, (1, 2), 60, 1_700_000_000, BIG, (TX,))
    mp.setattr(scoring, "claim", lambda *_a, **k: got if k["asset_ids"] == [1, 2] else None)

    def check(d: Any) -> None:
        assert (d["batchId"], d["assetIds"], d["reservedWei"]) == (4, [1, 2], str(BIG))

    return ["scoring", "claim", "--asset", "1", "--asset", "2"], check


@case("scoring release")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    mp.setattr(scoring, "release", lambda *_a: _pool_receipt("releaseBatch"))
    return ["scoring", "release", "4"], lambda d: d["batchId"] == 4


@case("scoring withdraw")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    mp.setattr(scoring, "withdraw", lambda *_a: _pool_receipt("withdraw"))
    return ["scoring", "withdraw"], lambda d: d["amountWei"] == str(BIG)


@case("scoring status")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    got = scoring.PoolStatus(
        ADDRESS,
        scoring.PoolTerms(BIG, 2048, 3600, 3),
        scoring.PoolBalances(BIG, BIG, 0, 1),
        scoring.ScoringFeeTerms(ADDRESS, 200, 0, 0),
        "0x" + "00" * 32,
        "bafy",
        5,
        (4,),
    )
    mp.setattr(scoring, "pool_status", lambda *_a: got)

    def check(d: Any) -> None:
        assert d["availableWei"] == str(BIG) and d["terms"]["ratePerSampleWei"] == str(BIG)
        assert d["openBatches"] == [4] and d["feeBps"] == 200

    return ["scoring", "status"], check


@case("scoring show")
def _(mp: pytest.MonkeyPatch, tmp: Path) -> tuple[list[str], Callable[[Any], None]]:
    from visdm import scoring

    _connected(mp)
    record = scoring.BatchRecord(
        4, ADDRESS, 1_700_000_000, scoring.BatchStatus.PUBLISHED, 60, 58, 2, BIG, b"a" * 32,
        bytes(32),
    )  # fmt: skip
    view = scoring.BatchView(record, (1, 2), BIG, "bafy", "0x" + "11" * 32, "0x" + "22" * 32)
    mp.setattr(scoring, "batch_view", lambda *_a: view)

    def check(d: Any) -> None:
        assert (d["status"], d["paidWei"], d["scored"]) == ("published", str(BIG), 58)

    return ["scoring", "show", "4"], check
