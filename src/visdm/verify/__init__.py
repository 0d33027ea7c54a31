"""Verifiable results (DESIGN §7): what a result commits to and how another node checks it.

* :func:`settle` / :func:`settle_output` / :class:`ResultCommitments`: the scores document,
  payout tree and hashes of a training job's output, computed the one way the publishing node
  and every verifier compute them;
* :func:`determinism_envelope`: the library versions, thread count and CPU kernel family
  inside which a re-execution matches the original bit for bit;
* :func:`seal_job_secrets` / :func:`open_job_secrets`: the seed and keys a verifier needs,
  sealed to its X25519 key and checked against the committed seed hash;
* :func:`sampled` / :func:`judge`: which results a verifier checks, and whether it confirms,
  challenges or abstains; :class:`ResultVerifier`: those moves on chain through the court;
* :func:`publish_job_secrets` / :func:`secret_recipients`: which nodes a training node seals a
  job's secrets to, indexed in its result document;
* :class:`VerifyWorker` (``visdm node serve --verify``): a node that follows results, samples,
  re-executes, confirms, challenges, votes and settles by itself; :class:`Reexecutor` re-runs
  another node's job. Both load the compute node on first use.
* :class:`ZkCircuit` / :class:`ZkProof`: an ezkl proof that the committed model classifies k
  validation samples as claimed; :func:`deploy_zk_check` / :class:`ZkAccuracyCheckClient`: the
  on-chain check of it on samples drawn after the claim; :func:`min_correct`: its threshold;
  :func:`prove_result`: a training node committing and proving its result's claim, which the
  court waits for when it names a check (:func:`prove_claim` with a :class:`ClaimProver`:
  the chain's steps apart from those that need the model and validation set in the clear);
  :func:`expected_sample_root`: the root a claim should
  commit for a validation set.

Importing this package does not import torch.
"""

from typing import TYPE_CHECKING, Any

from visdm.verify._envelope import (
    ENVELOPE_KEYS,
    TRAINING_THREADS,
    cpu_capability,
    determinism_envelope,
)
from visdm.verify._publish import SecretRecipients, publish_job_secrets, secret_recipients
from visdm.verify._secrets import SECRETS_KIND, JobSecrets, open_job_secrets, seal_job_secrets
from visdm.verify._settle import (
    ResultCommitments,
    SettledAsset,
    Settlement,
    settle,
    settle_output,
)
from visdm.verify._verdict import Finding, Verdict, judge, sampled
from visdm.verify._verifier import PostedResult, ResultVerifier
from visdm.verify._zk import ZkCircuit, ZkProof, ZkSettings
from visdm.verify._zk_chain import ZkAccuracyCheckClient, ZkClaim, deploy_zk_check
from visdm.verify._zk_rule import draw_indices, false_accept, min_correct, sample_tree

if TYPE_CHECKING:
    from visdm.verify._reexecute import Reexecutor
    from visdm.verify._watch import VerifyConfig, VerifyJournal, VerifyWorker
    from visdm.verify._zk_prove import (
        ClaimProver,
        InProcessProver,
        ZkProofRun,
        expected_sample_root,
        prove_claim,
        prove_result,
    )

# these import the compute node, which imports this package: loaded on first use
_LAZY = {
    "Reexecutor": "visdm.verify._reexecute",
    "VerifyConfig": "visdm.verify._watch",
    "VerifyJournal": "visdm.verify._watch",
    "VerifyWorker": "visdm.verify._watch",
    "ClaimProver": "visdm.verify._zk_prove",
    "InProcessProver": "visdm.verify._zk_prove",
    "ZkProofRun": "visdm.verify._zk_prove",
    "prove_claim": "visdm.verify._zk_prove",
    "expected_sample_root": "visdm.verify._zk_prove",
    "prove_result": "visdm.verify._zk_prove",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENVELOPE_KEYS",
    "SECRETS_KIND",
    "TRAINING_THREADS",
    "ClaimProver",
    "Finding",
    "InProcessProver",
    "JobSecrets",
    "PostedResult",
    "Reexecutor",
    "ResultCommitments",
    "ResultVerifier",
    "SecretRecipients",
    "SettledAsset",
    "Settlement",
    "Verdict",
    "VerifyConfig",
    "VerifyJournal",
    "VerifyWorker",
    "ZkAccuracyCheckClient",
    "ZkCircuit",
    "ZkClaim",
    "ZkProof",
    "ZkProofRun",
    "ZkSettings",
    "cpu_capability",
    "deploy_zk_check",
    "determinism_envelope",
    "draw_indices",
    "expected_sample_root",
    "false_accept",
    "judge",
    "min_correct",
    "open_job_secrets",
    "prove_claim",
    "prove_result",
    "publish_job_secrets",
    "sample_tree",
    "sampled",
    "seal_job_secrets",
    "secret_recipients",
    "settle",
    "settle_output",
]
