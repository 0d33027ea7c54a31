"""Verifiable results (DESIGN §7): what a result commits to and how another node checks it.

* :func:`settle` / :func:`settle_output` / :class:`ResultCommitments`: the scores document,
  payout tree and hashes of a training job's output, computed the one way the publishing node
  and every verifier compute them;
* :func:`determinism_envelope`: the library versions, thread count and CPU kernel family
  inside which a re-execution matches the original bit for bit;
* :func:`seal_job_secrets` / :func:`open_job_secrets`: the seed and keys a verifier needs,
  sealed to its X25519 key and checked against the committed seed hash;
* :func:`sampled` / :func:`judge`: which results a verifier checks, and whether it confirms,
  challenges or abstains; :class:`ResultVerifier`: those moves on chain through the court.

Importing this package does not import torch.
"""

from visdm.verify._envelope import (
    ENVELOPE_KEYS,
    TRAINING_THREADS,
    cpu_capability,
    determinism_envelope,
)
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

__all__ = [
    "ENVELOPE_KEYS",
    "SECRETS_KIND",
    "TRAINING_THREADS",
    "Finding",
    "JobSecrets",
    "PostedResult",
    "ResultCommitments",
    "ResultVerifier",
    "SettledAsset",
    "Settlement",
    "Verdict",
    "cpu_capability",
    "determinism_envelope",
    "judge",
    "open_job_secrets",
    "sampled",
    "seal_job_secrets",
    "settle",
    "settle_output",
]
