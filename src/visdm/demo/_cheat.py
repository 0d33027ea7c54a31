"""A compute node that lies in its next result: the demo's cheating round and the tests only.

:class:`CheatingTrainingWorker` trains exactly like :class:`~visdm.compute.TrainingWorker`,
then alters what it will commit before ``submitResult`` — an accuracy above what its model
reached (:data:`OVERSTATE_ACCURACY`) or a payout root that pays the first selected asset's
owner the whole amount (:data:`PAY_ONE_OWNER`). No command line builds it: the demo and the
verification tests construct it by name, to show a ``--verify`` node catching the lie.
"""

from __future__ import annotations

import logging
from typing import Any

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalRecord
from visdm.chain.deployment import Deployment
from visdm.compute import TrainingConfig, TrainingWorker
from visdm.errors import InvalidInputError
from visdm.jsonsafe import load_untrusted_object
from visdm.market import build_payout_tree
from visdm.storage import ContentStore

__all__ = ["LIES", "OVERSTATE_ACCURACY", "PAY_ONE_OWNER", "CheatingTrainingWorker"]

log = logging.getLogger("visdm.demo")

OVERSTATE_ACCURACY = "overstate-accuracy"
PAY_ONE_OWNER = "pay-one-owner"
LIES = (OVERSTATE_ACCURACY, PAY_ONE_OWNER)
#: how far the overstated accuracy lies (basis points, capped at 100 %)
_OVERSTATED_BY_BPS = 1500
_MAX_RESULT_BYTES = 64 << 20


class CheatingTrainingWorker(TrainingWorker):
    """A training node that lies (``lie``, one of :data:`LIES`) in every result it posts."""

    def __init__(  # noqa: PLR0917 - the worker's arguments and the lie
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ContentStore,
        account: UnlockedAccount,
        config: TrainingConfig,
        lie: str,
    ) -> None:
        if lie not in LIES:
            raise InvalidInputError(f"lie {lie!r} is not one of {', '.join(LIES)}")
        super().__init__(client, deployment, store, account, config)
        self.lie = lie

    def _run(self, proposal_id: int, record: ProposalRecord) -> dict[str, Any]:
        honest = super()._run(proposal_id, record)
        lied = dict(honest)
        if self.lie == OVERSTATE_ACCURACY:
            lied["accuracyBps"] = min(int(honest["accuracyBps"]) + _OVERSTATED_BY_BPS, 10_000)
        else:
            lied["payoutRoot"] = "0x" + self._one_owner_root(proposal_id, record, honest).hex()
        log.warning("proposal %d: posting a LYING result (%s)", proposal_id, self.lie)
        return lied

    def _one_owner_root(
        self, proposal_id: int, record: ProposalRecord, honest: dict[str, Any]
    ) -> bytes:
        """A payout root that pays everything the honest tree shares to the first asset."""
        document = load_untrusted_object(
            self.store.get(str(honest["resultCid"])),
            what="the node's own result document",
            max_bytes=_MAX_RESULT_BYTES,
        )
        payouts = document.get("payouts") or {}
        total = sum(int(v) for v in (payouts.get("assets") or {}).values())
        if total == 0:
            raise InvalidInputError(f"proposal {proposal_id} pays nobody: nothing to misdirect")
        ids = [self.market.selected_asset(proposal_id, i) for i in range(record.asset_count)]
        tree = build_payout_tree({ids[0]: total}, {a: i for i, a in enumerate(ids)})
        return bytes(tree.root)
