"""The compute node's training pipeline (DESIGN §3.4 step 3, §5).

* :func:`parse_model_spec` / :class:`ModelSpec` / :func:`spec_hash`: the declarative model spec
  (architecture from a fixed zoo: ``mlp``, ``small_cnn``, ``resnet``, and ``scatter_linear`` /
  ``scatter_cnn`` behind a fixed scattering transform) and its on-chain hash;
  :func:`recommended_spec`: the tuned spec a consumer starts from.
* :func:`check_design` / :class:`NodeLimits` / :func:`training_cost`: parameter and FLOP
  limits, and the integer quote.
* :func:`train`: CPU training, deterministic given the job's secret seed, DP-SGD via Opacus when
  the spec asks (Abadi et al., 2016), validation accuracy, penultimate-layer embeddings for
  :mod:`visdm.valuation`.
* :func:`new_job_seed` / :func:`seed_commitment`: the node's per-job 32-byte seed from the OS
  CSPRNG, and the keccak256 commitment to it that the result carries.
* :func:`save_model` / :func:`load_model` / :func:`model_hash`: safetensors model files.
* :func:`loss_threshold_mia`: the loss-threshold membership-inference attack (Yeom et al.,
  2018) as a privacy check.

Importing this package is cheap: torch loads with the first name that needs it, and changes no
global torch setting.
"""

from typing import TYPE_CHECKING

from visdm._lazy import lazy_exports

if TYPE_CHECKING:
    from visdm.training._design import (
        TRAIN_FLOPS_FACTOR,
        DesignReport,
        NodeLimits,
        check_design,
        training_cost,
    )
    from visdm.training._job import (
        EMBEDDINGS_FILE,
        MODEL_FILE,
        TRAIN_FILE,
        VALIDATION_FILE,
        run_job,
    )
    from visdm.training._mia import loss_threshold_mia, mia_auc, per_sample_losses
    from visdm.training._model_file import load_model, model_bytes, model_hash, save_model
    from visdm.training._rng import new_job_seed, seed_commitment
    from visdm.training._spec import (
        DPSpec,
        ModelSpec,
        canonical_spec_json,
        parse_model_spec,
        recommended_spec,
        spec_hash,
    )
    from visdm.training._train import (
        ProgressCallback,
        Timings,
        TrainingResult,
        prepare_images,
        train,
    )
    from visdm.training._zoo import ZooNet, build_model

__all__ = [
    "EMBEDDINGS_FILE",
    "MODEL_FILE",
    "TRAIN_FILE",
    "TRAIN_FLOPS_FACTOR",
    "VALIDATION_FILE",
    "DPSpec",
    "DesignReport",
    "ModelSpec",
    "NodeLimits",
    "ProgressCallback",
    "Timings",
    "TrainingResult",
    "ZooNet",
    "build_model",
    "canonical_spec_json",
    "check_design",
    "load_model",
    "loss_threshold_mia",
    "mia_auc",
    "model_bytes",
    "model_hash",
    "new_job_seed",
    "parse_model_spec",
    "per_sample_losses",
    "prepare_images",
    "recommended_spec",
    "run_job",
    "save_model",
    "seed_commitment",
    "spec_hash",
    "train",
    "training_cost",
]

_WHERE = {
    "TRAIN_FLOPS_FACTOR": "._design",
    "DesignReport": "._design",
    "NodeLimits": "._design",
    "check_design": "._design",
    "training_cost": "._design",
    "EMBEDDINGS_FILE": "._job",
    "MODEL_FILE": "._job",
    "TRAIN_FILE": "._job",
    "VALIDATION_FILE": "._job",
    "run_job": "._job",
    "loss_threshold_mia": "._mia",
    "mia_auc": "._mia",
    "per_sample_losses": "._mia",
    "load_model": "._model_file",
    "model_bytes": "._model_file",
    "model_hash": "._model_file",
    "save_model": "._model_file",
    "new_job_seed": "._rng",
    "seed_commitment": "._rng",
    "DPSpec": "._spec",
    "ModelSpec": "._spec",
    "canonical_spec_json": "._spec",
    "parse_model_spec": "._spec",
    "recommended_spec": "._spec",
    "spec_hash": "._spec",
    "ProgressCallback": "._train",
    "Timings": "._train",
    "TrainingResult": "._train",
    "prepare_images": "._train",
    "train": "._train",
    "ZooNet": "._zoo",
    "build_model": "._zoo",
}

__getattr__ = lazy_exports(__name__, _WHERE)
