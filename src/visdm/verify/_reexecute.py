"""Re-execute another node's training job with the secrets it sealed to this node.

:class:`Reexecutor` is the training node's own machinery (:class:`visdm.compute.TrainingWorker`:
the same checked proposal, the same decrypted input written the same way into RAM, the same
sandboxed ``run_job`` and the same :func:`~visdm.verify.settle_output`), with three differences:
the data keys and the validation-set key come from the opened :class:`JobSecrets` (or, for an
asset wrapped for this node, from its own manifest key), the seed is the one the result
committed, and an asset counts as withdrawn only when it is withdrawn now **and** the result
says the node left it out for that reason (a withdrawal after the job must not make an honest
result look wrong). Nothing is posted: :meth:`Reexecutor.reexecute` returns the commitments
and the determinism envelope for :func:`~visdm.verify.judge`.

This module imports the compute node (not torch): :mod:`visdm.verify` loads it on first use.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hexbytes import HexBytes

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.compute import TrainingConfig, TrainingWorker
from visdm.compute._results import selected_assets
from visdm.compute._training import NO_KEY_OPENS, NO_KEY_WRAPPED
from visdm.errors import CryptoError, InvalidInputError, VisdmError
from visdm.jsonsafe import load_untrusted_json
from visdm.proposals import PublicAsset, TrainingProposal, load_checked_proposal
from visdm.scoring import ScoringFee
from visdm.storage import ContentStore
from visdm.training._spec import MAX_SPEC_BYTES
from visdm.verify._envelope import determinism_envelope
from visdm.verify._secrets import JobSecrets
from visdm.verify._settle import ResultCommitments, settle_output

__all__ = [
    "FalseLeftOutError",
    "MissingKeyError",
    "Reexecutor",
    "check_key_claims",
    "licence_time",
]

_WITHDRAWN = "it was withdrawn after the tally"


class MissingKeyError(InvalidInputError):
    """The node sealed no key for an asset its job used: the verifier cannot re-execute."""


class FalseLeftOutError(VisdmError):
    """The node left an asset out for a key it provably had: its result underpays that
    asset's owner, whatever a re-execution without the key would give."""


def licence_time(
    proposal_id: int, voting_deadline: int, result_time: int, expiries: Mapping[int, Any]
) -> int:
    """When to judge the selected assets' licences in a re-execution. The node judged them at
    some moment between the voting deadline (the earliest a job starts) and its result's block,
    so the result's time gives the same answer for every licence that did not expire within
    that span; for one that did, the node's moment decides and is unknown: refuse (the
    verifier abstains rather than challenge an honest result). ``expiries``: each asset's
    licence expiry (a ``datetime``, or ``None`` for none)."""
    for asset_id, expires in sorted(expiries.items()):
        if expires is not None and voting_deadline <= expires.timestamp() < result_time:
            raise InvalidInputError(
                f"asset {asset_id}'s licence expired at {expires.isoformat()}, while proposal "
                f"{proposal_id}'s job may have run: whether the node could use it depends on "
                "when it checked, so a re-execution cannot judge the result"
            )
    return result_time


def check_key_claims(
    left_out: Mapping[str, Any], public: Mapping[int, PublicAsset], node: str, attested: set[int]
) -> None:
    """Refuse the node's ``no-key`` claims that public facts contradict: *no key was wrapped*
    for an asset whose manifest wraps one for the node, or any key claim for an asset the node
    attested itself (it opened the samples to describe them). A wrapped key that does not open
    is otherwise the node's word: a verifier cannot check it without the node's private key."""
    me = node.lower()
    for asset_id, asset in public.items():
        said = left_out.get(str(asset_id))
        if said not in (NO_KEY_WRAPPED, NO_KEY_OPENS):
            continue
        if said == NO_KEY_WRAPPED and any(
            str(k.recipient).lower() == me for k in asset.manifest.keys
        ):
            raise FalseLeftOutError(
                f"node {node} left asset {asset_id} out saying no key was wrapped for it, but the "
                "asset's manifest wraps one for that node"
            )
        if asset_id in attested:
            raise FalseLeftOutError(
                f"node {node} left asset {asset_id} out for its key, but attested that asset's "
                "samples itself, which needed the key"
            )


class Reexecutor(TrainingWorker):
    """A verifier's run of another node's job (its ``workdir`` must not be the node's own)."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ContentStore,
        account: UnlockedAccount,
        config: TrainingConfig,
    ) -> None:
        super().__init__(client, deployment, store, account, config)
        self._secrets = JobSecrets(seed=bytes(32), validation_key=bytes(32))
        self._left_out: Mapping[str, Any] = {}
        self._judged_at = 0

    def reexecute(
        self,
        proposal_id: int,
        secrets: JobSecrets,
        result: Mapping[str, Any],
        *,
        posted_in: bytes,
    ) -> tuple[ResultCommitments, dict[str, Any]]:
        """Re-run ``proposal_id``'s job; returns what it commits and the envelope it ran in.
        ``result`` is the node's result document (only its ``leftOut`` is read), posted in
        the block whose hash is ``posted_in`` (its time judges the licences)."""
        checked = load_checked_proposal(
            self.market, self.deployment, self.client, self.store, proposal_id
        )
        spec = load_untrusted_json(
            checked.document.model_spec_json,
            what="the proposal's model spec",
            max_bytes=MAX_SPEC_BYTES,
        )
        left_out = result.get("leftOut")
        self._secrets, self._left_out = secrets, left_out if isinstance(left_out, dict) else {}
        node = self.market.proposal(proposal_id).node
        attested = {
            int(e["args"]["assetId"])
            for e in self.assets.logs("MetadataAttested", where={"node": node})
            if int(e["args"]["assetId"]) in checked.public
        }
        check_key_claims(self._left_out, checked.public, node, attested)
        self._judged_at = self._job_time(proposal_id, checked.public, posted_in)
        for asset_id, public in checked.public.items():
            # an asset the node used but sealed no key for: say so instead of training without
            if str(asset_id) not in self._left_out:
                self._data_key(asset_id, public)
        out_dir = self.config.workdir / "reexecution" / str(proposal_id)
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True, mode=0o700)
        try:
            outcome, _ = self.execute(
                proposal_id, checked, spec, secrets.seed, self.config.sandbox, out_dir
            )
            record = self.market.proposal(proposal_id)
            fee = ScoringFee(self.client, self.market.address).scoring_fee(proposal_id).amount
            commitments, _ = settle_output(
                out_dir,
                outcome,
                proposal_id=proposal_id,
                amount=max(record.price - fee, 0),
                sample_assets={
                    "0x" + s.sample_id.hex(): (s.asset_id, s.index) for s in checked.samples
                },
                assets=selected_assets(checked),
            )
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        envelope = determinism_envelope(
            {k: str(v) for k, v in (outcome.get("versions") or {}).items()}
        )
        return commitments, envelope

    def validation_input(
        self, proposal_id: int, secrets: JobSecrets
    ) -> tuple[dict[str, Any], bytes]:
        """The job's model spec and the consumer's validation archive, decrypted with the
        sealed validation key and checked against its hash, unparsed (a sandbox reads it)."""
        checked = load_checked_proposal(
            self.market, self.deployment, self.client, self.store, proposal_id
        )
        spec = load_untrusted_json(
            checked.document.model_spec_json,
            what="the proposal's model spec",
            max_bytes=MAX_SPEC_BYTES,
        )
        if not isinstance(spec, dict):
            raise InvalidInputError(f"proposal {proposal_id}'s model spec is not an object")
        self._secrets = secrets
        return spec, self._validation_archive(checked.document)

    def _data_key(self, asset_id: int, public: PublicAsset) -> bytes:
        sealed = self._secrets.asset_keys.get(asset_id)
        if sealed is not None:
            return sealed
        try:
            return super()._data_key(asset_id, public)
        except (VisdmError, CryptoError):
            raise MissingKeyError(
                f"the node sealed no data key for asset {asset_id}, and none is wrapped for "
                f"{self.account.address}: this verifier cannot re-execute the job"
            ) from None

    def _validation_key(self, doc: TrainingProposal) -> bytes:
        return self._secrets.validation_key

    def _job_time(
        self, proposal_id: int, public: Mapping[int, PublicAsset], posted_in: bytes
    ) -> int:
        record = self.market.proposal(proposal_id)
        block = HexBytes(posted_in)
        at = int(self.client.rpc(lambda: self.client.w3.eth.get_block(block))["timestamp"])
        expiries = {a: p.manifest.licence.expires for a, p in public.items()}
        return licence_time(proposal_id, record.voting_deadline, at, expiries)

    def _licence_time(self, proposal_id: int) -> int:
        return self._judged_at

    def _withdrawn(self, proposal_id: int, asset_id: int) -> bool:
        said = self._left_out.get(str(asset_id)) == _WITHDRAWN
        return said and super()._withdrawn(proposal_id, asset_id)

    def _out_dir(self, proposal_id: int) -> Path:
        return self.config.workdir / "reexecution" / str(proposal_id)
