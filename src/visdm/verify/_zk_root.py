"""A verifier holding the consumer's validation key checks what an accuracy claim is about.

Nothing on chain ties a claim's sample root to the consumer's validation set: the proposal
commits the keccak256 of the encrypted archive, the claim a Merkle root over the quantised
pixels (or their Poseidon hashes) of decoded images. A node could commit, and prove, a claim
over inputs of its own choosing (easy images, or labels its model agrees with). A verifier to
which the node sealed the job's secrets holds the validation key: :func:`claim_root_finding`
decrypts the archive into a private RAM directory, and in its sandbox
(``visdm.verify._zk_job:validation_sample_root``) recomputes the root the claim must commit
under the claim's stored circuit settings (:func:`visdm.verify.expected_sample_root`). A
different root is a wrong result: the verifier challenges it through the court, and committee
members, which hold the same secrets, vote the same finding.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from visdm.chain.contracts import ResultCourt
from visdm.compute._private import private_dir
from visdm.compute.sandbox import SandboxJob, run_in_sandbox
from visdm.errors import ZkBackendError
from visdm.verify._secrets import JobSecrets
from visdm.verify._verdict import Finding, Verdict
from visdm.verify._zk_chain import ZkAccuracyCheckClient

if TYPE_CHECKING:
    from visdm.verify._reexecute import Reexecutor

__all__ = ["SAMPLE_ROOT", "claim_root_finding"]

#: the difference a challenge over the sample root names
SAMPLE_ROOT = "sampleRoot"
_ENTRY = "visdm.verify._zk_job:validation_sample_root"
#: a circuit's settings file is a few KiB
_MAX_SETTINGS_BYTES = 1 << 20


def claim_root_finding(
    reexecutor: Reexecutor, court: ResultCourt, proposal_id: int, secrets: JobSecrets
) -> Finding | None:
    """Whether ``proposal_id``'s committed claim is over the consumer's validation set:
    ``None`` while the job needs no proof or its claim is not committed yet; a confirmation
    when the roots agree; a challenge naming ``sampleRoot`` when they differ; an abstention
    when the claim's circuit settings cannot be read or the sandbox fails."""
    proof = court.proof_of(proposal_id)
    if proof.check is None or proof.status == "none":
        return None
    check = ZkAccuracyCheckClient(reexecutor.client, proof.check)
    claim = check.claim(proposal_id)
    cid = check.circuit_cid(proposal_id)
    if not cid:
        return Finding(
            Verdict.ABSTAIN, (), "the claim names no circuit settings file: its root is unchecked"
        )
    settings = reexecutor.store.get(cid, max_bytes=_MAX_SETTINGS_BYTES)
    spec, archive = reexecutor.validation_input(proposal_id, secrets)
    out_dir = reexecutor.config.workdir / "roots" / str(proposal_id)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, mode=0o700)
    try:
        with private_dir(f"{reexecutor._shm_prefix}root{proposal_id}-") as input_dir:
            (input_dir / "validation.npz").write_bytes(archive)
            (input_dir / "settings.json").write_bytes(settings)
            result = run_in_sandbox(
                SandboxJob(
                    job_id=f"root-{proposal_id}",
                    entry_point=_ENTRY,
                    input_dir=input_dir,
                    output_dir=out_dir,
                    limits=reexecutor.config.sandbox,
                    params={"spec": spec},
                ),
                allowed_entry_points={_ENTRY},
                python=reexecutor.config.python,
                bwrap=reexecutor.config.bwrap,
                allow_unsandboxed=reexecutor.config.allow_unsandboxed,
            )
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    if not result.ok or result.return_value is None:
        why = (result.error or "no result").replace("\n", " ")[:200]
        return Finding(Verdict.ABSTAIN, (), f"the sample root could not be computed: {why}")
    raw = str(result.return_value.get("root", ""))
    try:
        expected = bytes.fromhex(raw.removeprefix("0x"))
    except ValueError:
        expected = b""
    if len(expected) != 32:
        raise ZkBackendError(f"the sandboxed sample root is not 32 bytes: {raw[:80]!r}")
    if expected == claim.sample_root:
        return Finding(
            Verdict.CONFIRM, (), "the claim's sample root is the consumer's validation set's"
        )
    return Finding(
        Verdict.CHALLENGE,
        (SAMPLE_ROOT,),
        f"the accuracy claim commits sample root 0x{claim.sample_root.hex()}, the consumer's "
        f"validation set gives 0x{expected.hex()} under the claim's circuit settings: the "
        "proof is about other inputs",
    )
