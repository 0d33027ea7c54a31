"""Which nodes a training node seals a job's secrets to, and where each finds its copy.

After a job, the node seals its :class:`~visdm.verify.JobSecrets` (:func:`seal_job_secrets`) to
every other node that could be asked to check the result: each node bonded with the court
(:meth:`~visdm.chain.contracts.ResultCourt.bonded_nodes`, the pool challengers and committees
come from), active, with a registered X25519 key, and **allowed by every asset the job used**:
its region is in each asset's region mask (the same test the market applies to the training
node, :func:`visdm.proposals.coverage_refusal`), and it is neither the consumer nor the owner of
a used asset (it could judge its own pay). A node any asset refuses gets nothing: without that
asset's data it could not re-execute, and the asset's owner did not allow its region to see it.

Each sealed document is put in the store and its CID listed under ``verifierSecrets`` (node
address → CID) in the result document, whose CID ``submitResult`` commits: a verifier finds its
copy from the ``ResultSubmitted`` event it follows, with no contract change and no other index.
The refused nodes are listed under ``verifiersLeftOut`` (address → why), so anyone can see who
was not given the means to check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from visdm.chain.contracts import ComputeNodeRecord, ResultCourt, StakeholderRegistry
from visdm.proposals import PublicAsset
from visdm.storage import ContentStore
from visdm.verify._secrets import JobSecrets, seal_job_secrets

__all__ = ["SecretRecipients", "publish_job_secrets", "secret_recipients"]

log = logging.getLogger("visdm.node.verify")

_ZERO_KEY = bytes(32)


@dataclass(frozen=True, slots=True)
class SecretRecipients:
    """The nodes a job's secrets are sealed to, and why each other candidate is not."""

    allowed: tuple[ComputeNodeRecord, ...]
    refused: dict[str, str] = field(default_factory=dict)


def secret_recipients(
    candidates: Iterable[ComputeNodeRecord],
    used: Sequence[PublicAsset],
    *,
    node: str,
    consumer: str,
) -> SecretRecipients:
    """Split ``candidates`` into the nodes that may re-execute a job of ``node`` for
    ``consumer`` on the ``used`` assets, and the others with the reason."""
    allowed: list[ComputeNodeRecord] = []
    refused: dict[str, str] = {}
    owners = {str(a.record.owner).lower(): int(a.record.asset_id) for a in used}
    for candidate in candidates:
        who = str(candidate.address)
        if who.lower() == str(node).lower():
            continue  # the node does not check itself
        why = _refusal(candidate, used, owners, consumer)
        if why is None:
            allowed.append(candidate)
        else:
            refused[who] = why
    return SecretRecipients(tuple(allowed), refused)


def _refusal(
    candidate: ComputeNodeRecord,
    used: Sequence[PublicAsset],
    owners: dict[str, int],
    consumer: str,
) -> str | None:
    who = str(candidate.address).lower()
    if not candidate.active:
        return "it is not an active admitted node"
    if len(candidate.encryption_key) != len(_ZERO_KEY) or candidate.encryption_key == _ZERO_KEY:
        return "it registered no X25519 key to seal to"
    if who == str(consumer).lower():
        return "it is the consumer of the round"
    if who in owners:
        return f"it owns asset {owners[who]} of the round and would judge its own pay"
    for asset in used:
        if asset.record.region_mask & (1 << candidate.region) == 0:
            return f"asset {int(asset.record.asset_id)} does not allow its region"
    return None


def publish_job_secrets(
    secrets: JobSecrets,
    *,
    proposal_id: int,
    node: str,
    consumer: str,
    used: Sequence[PublicAsset],
    court: ResultCourt,
    registry: StakeholderRegistry,
    store: ContentStore,
) -> dict[str, dict[str, str]]:
    """Seal ``secrets`` to every allowed bonded node and store each copy; returns the result
    document's ``verifierSecrets`` (address → CID) and ``verifiersLeftOut`` (address → why)."""
    candidates = [registry.compute_node(a) for a in court.bonded_nodes()]
    recipients = secret_recipients(candidates, used, node=node, consumer=consumer)
    index: dict[str, str] = {}
    for verifier in recipients.allowed:
        sealed = seal_job_secrets(
            secrets,
            proposal_id=proposal_id,
            verifier=str(verifier.address),
            verifier_key=verifier.encryption_key,
        )
        index[str(verifier.address)] = store.put(sealed, pin=True)
    for who, why in recipients.refused.items():
        log.info("proposal %d: no secrets for %s: %s", proposal_id, who, why)
    return {"verifierSecrets": index, "verifiersLeftOut": dict(recipients.refused)}
