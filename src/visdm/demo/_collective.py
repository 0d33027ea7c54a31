"""The demo's collective: owners who price proposals together from a standing policy.

``ada``, ``ben``, ``cy``, ``dee`` and ``eli`` (:data:`~._cast.MEMBERS`) create ``tailors`` and
join it with their floor votes (:func:`~._cast.member_floor`), which delegates their market votes
to it. Votes count after the collective's policy delay — a day, the default, its defence against
flash-joining — so the demo moves the chain's clock a day on before the first proposal and
settles them. From then on none of them votes: on every proposal anyone makes the collective
vote from the policy (here the market's admin), with the members' pooled weight, and at the end
the collective's statistics are read back from its events, as ``visdm collective show`` does.
"""

from __future__ import annotations

from typing import Any

from visdm import collectives, session

from ._cast import COLLECTIVE, MEMBERS, member_floor
from ._report import collective_line
from ._settle import tokens
from ._stage import Stage

__all__ = ["DemoCollective", "cast_text"]


def cast_text(cast: dict[str, Any]) -> str:
    """One recorded cast in words: what the policy compared and what it voted."""
    need = cast["floorWei"] * cast["selectedSamples"]
    compared = (
        f"floor {tokens(cast['floorWei'])} × {cast['selectedSamples']} samples = "
        f"{tokens(need)} tokens {'≤' if cast['accepted'] else '>'} offer "
        f"{tokens(cast['offerWei'])}"
    )
    verdict = "accept" if cast["accepted"] else f"ask {tokens(cast['askWei'])} tokens"
    return f"{COLLECTIVE} votes {verdict} on proposal {cast['proposalId']} ({compared})"


class DemoCollective:
    """Forms the collective, casts its votes and reports them (``report.collective``)."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    @property
    def members(self) -> list[str]:
        return [m for m in MEMBERS if m in self.stage.config.cast]

    def form(self) -> None:
        """Create the collective, join its members, wait out the policy delay and settle."""
        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        client, deployment = conn.client, conn.deployment
        steward, *_ = self.members
        with stage.step("collective") as info:
            made = collectives.create(
                client, deployment, stage.people[steward].local_account, name=COLLECTIVE
            )
            sent = list(made.transactions)
            joined: list[dict[str, Any]] = []
            for who in self.members:
                floor = member_floor(stage.config, who)
                receipt = collectives.join(
                    client, deployment, stage.people[who].local_account, COLLECTIVE, floor=floor
                )
                sent += receipt.transactions
                joined.append(
                    {
                        "name": who,
                        "address": receipt.member,
                        "weight": receipt.weight,
                        "floorWei": floor,
                    }
                )
            client.advance_time(made.policy_delay)
            settled = collectives.settle(
                client, deployment, stage.people["admin"].local_account, COLLECTIVE
            )
            sent += settled.transactions
            info["gas"] = sum(t.gas_used for t in sent)
            weight = sum(m["weight"] for m in joined)
            floors = sorted(m["floorWei"] for m in joined)
            info["detail"] = (
                f"{COLLECTIVE}: {', '.join(self.members)} join with {weight} samples, floor "
                f"votes {tokens(floors[0])}–{tokens(floors[-1])} tokens per sample ({steward} "
                "is the steward, no fee)"
            )
            info["notes"] += [
                f"their votes count after the collective's policy delay of "
                f"{made.policy_delay // 3600} h (no flash-joining): the demo moves the chain's "
                f"clock on and settles them: policy floor {tokens(settled.policy_floor_wei or 0)} "
                f"tokens per sample, the weighted median, over {settled.policy_weight} samples",
                "joining delegated their market votes to the collective: from now on it votes "
                "for them on every proposal, from its policy",
            ]
        stage.report.collective = {
            "name": COLLECTIVE,
            "address": made.address,
            "steward": steward,
            "feeBps": made.fee_bps,
            "policyDelay": made.policy_delay,
            "members": joined,
            "policyFloorWei": settled.policy_floor_wei,
            "policyWeight": settled.policy_weight,
            "casts": [],
        }

    def cast(self, pid: int, info: dict[str, Any]) -> str:
        """Make the collective vote on proposal ``pid`` from its policy, inside a step whose gas
        it adds to; returns what it voted, in words."""
        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        receipt = collectives.cast_vote(
            conn.client,
            conn.deployment,
            stage.people["admin"].local_account,  # anyone may; the market's admin does it here
            COLLECTIVE,
            pid,
        )
        gas = sum(t.gas_used for t in receipt.transactions)
        cast = {
            "proposalId": pid,
            "floorWei": receipt.floor_wei,
            "offerWei": receipt.offer_wei,
            "selectedSamples": receipt.selected_samples,
            "askWei": receipt.ask_wei,
            "accepted": receipt.accepted,
            "gasUsed": gas,
        }
        stage.report.collective["casts"].append(cast)
        info["gas"] = info["gas"] + gas
        return cast_text(cast)

    def summarize(self) -> None:
        """Read the collective's statistics back from the chain's events."""
        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        with stage.step("collective stats") as info:
            collective = collectives.resolve(conn.client, conn.deployment, COLLECTIVE)
            stats = collectives.collective_stats(
                conn.client,
                conn.deployment,
                collective,
                selected_samples=self._selected_samples,
            )
            stage.report.collective["stats"] = {
                "proposalsVoted": stats.proposals_voted,
                "accepted": stats.accepted,
                "acceptanceRate": stats.acceptance_rate,
                "outcomes": stats.outcomes,
                "earningsWei": stats.earnings_wei,
                "pricedSamples": stats.priced_samples,
                "earningsPerSampleWei": stats.earnings_per_sample_wei,
                "feesChargedWei": stats.fees_charged_wei,
            }
            info["detail"] = collective_line(stage.report)

    def _selected_samples(self, pid: int) -> dict[int, int]:
        """Samples selected per asset by proposal ``pid``, from the document the demo made."""
        document = self.stage.proposals[pid].document
        return dict(zip(document.asset_ids, document.sample_counts, strict=True))
