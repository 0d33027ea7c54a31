"""Privacy audit rows (for benchmarks/training.py): LiRA and an informed adversary's reconstruction.

Models: the audited recipe (``visdm.training._lira.audit_spec``), the zoo ``mlp`` [128] with
SGD, trained by the node's own ``train``: a non-DP control trained to overfit, and the same
network under DP-SGD at ε = 3, δ = 1e-5. ``models`` of each are trained on random halves of a
pool of Fashion-MNIST training images (512 images and 8 models with ``--quick``, the size CI
tests; 1,000 and 16 full size); each model in turn is the target and the others its shadows.

Membership inference: LiRA online with a fixed variance (Carlini et al., 2022), beside the
Yeom et al. (2018) loss threshold on the same models (the peer for the control), and beside
the control (the peer for the DP model). TPR at 0.1 % and 1 % FPR over every (model, image)
pair: 2,048 non-member pairs quick (2 false positives allowed at 0.1 %), 8,000 full (8).
Target for the DP model: TPR ≤ e^ε·FPR + δ, the cap (ε, δ)-DP puts on any attack.

Reconstruction (Balle et al., 2022): an adversary that knows every training image of a model
but one, the recipe and the initial weights rebuilds the missing one from the first layer
(``visdm.training._reconstruct``); ``targets`` per model. Similarity: |cos| with the part of
the image the known ones do not span (1: exact), beside a random direction's; identification:
the target is the closest to the reconstruction among it and the images the model did not
train on. Also without the initial weights, which the node's secret seed hides.

Ratios: > 1 means better: for the control rows, LiRA over Yeom (the stronger audit; for the AUC,
their advantages over guessing, AUC − 0.5); for the DP rows, the control's figure over the DP
model's (what DP took away; TPRs floored at the FPR, below which a sample cannot tell them).
"""

from __future__ import annotations

import math
import time

import numpy as np

from _harness import Row, emit, parse_args
from visdm.datasets import load_fashion_mnist
from visdm.training._lira import MembershipAudit, audit_spec, run_membership_audit
from visdm.training._reconstruct import ReconstructionAudit, run_reconstruction_audit

EPSILON, DELTA = 3.0, 1e-5
SEED = bytes(32)  # fixed so that runs compare; a node draws a fresh seed per job
FPRS = (0.001, 0.01)
ATTACK = "lira-online"
CONTROL = "non-DP control"
YEOM = "Yeom loss threshold, same models"


def _cap(fpr: float) -> float:
    return math.exp(EPSILON) * fpr + DELTA


def _lira_rows(control: MembershipAudit, private: MembershipAudit, label: str) -> list[Row]:
    rows = []
    for fpr in FPRS:
        ours = control.tpr_at_fpr(fpr, ATTACK)
        yeom = control.tpr_at_fpr(fpr, "yeom")
        rows.append(
            Row(
                f"LiRA TPR at {fpr:.1%} FPR, {CONTROL}",
                100 * ours,
                "%",
                peer=YEOM,
                peer_value=100 * yeom,
                ratio=ours / max(yeom, fpr),
            )
        )
    for fpr in FPRS:
        ours = private.tpr_at_fpr(fpr, ATTACK)
        peer = control.tpr_at_fpr(fpr, ATTACK)
        rows.append(
            Row(
                f"LiRA TPR at {fpr:.1%} FPR, {label}",
                100 * ours,
                "%",
                peer=CONTROL,
                peer_value=100 * peer,
                ratio=peer / max(ours, fpr),
                target=f"<= {100 * _cap(fpr):.3g} % (e^eps*FPR + delta)",
                meets=ours <= _cap(fpr),
            )
        )
    rows.append(
        Row(
            f"LiRA AUC, {CONTROL}",
            control.auc(ATTACK),
            "AUC",
            peer=YEOM,
            peer_value=control.auc("yeom"),
            ratio=(control.auc(ATTACK) - 0.5) / max(control.auc("yeom") - 0.5, 1e-3),
        )
    )
    rows.append(
        Row(
            f"LiRA AUC, {label}",
            private.auc(ATTACK),
            "AUC",
            peer=CONTROL,
            peer_value=control.auc(ATTACK),
        )
    )
    rows.append(Row(f"Yeom loss-threshold AUC, {label}", private.auc("yeom"), "AUC"))
    for name, audit in ((CONTROL, control), (label, private)):
        rows.append(Row(f"audited model accuracy, {name}", np.mean(audit.accuracy_bps) / 100, "%"))
    return rows


def _reconstruction_rows(
    control: ReconstructionAudit,
    private: ReconstructionAudit,
    blind: ReconstructionAudit,
    label: str,
) -> list[Row]:
    chance = float(np.median(control.chance))
    return [
        Row(
            f"reconstruction similarity (median), {CONTROL}",
            control.median_similarity,
            "|cos|",
            peer="random direction",
            peer_value=chance,
            ratio=control.median_similarity / chance,
        ),
        Row(
            f"reconstruction similarity (median), {label}",
            private.median_similarity,
            "|cos|",
            peer=CONTROL,
            peer_value=control.median_similarity,
            ratio=control.median_similarity / private.median_similarity,
            target=f"<= {2 * chance:.3g} (2x a random direction)",
            meets=private.median_similarity <= 2 * chance,
        ),
        Row(
            f"reconstruction names the target, {CONTROL}",
            100 * control.identification_rate,
            "%",
            peer=f"chance (1 of >= {control.candidates})",
            peer_value=100 / control.candidates,
        ),
        Row(
            f"reconstruction names the target, {label}",
            100 * private.identification_rate,
            "%",
            peer=CONTROL,
            peer_value=100 * control.identification_rate,
            target="<= 10 %",
            meets=private.identification_rate <= 0.1,
        ),
        Row(
            f"reconstruction names the target without the initial weights, {CONTROL}",
            100 * blind.identification_rate,
            "%",
            peer=f"chance (1 of >= {blind.candidates})",
            peer_value=100 / blind.candidates,
        ),
    ]


def audit_rows(quick: bool) -> list[Row]:
    """LiRA and reconstruction rows for the DP model and its non-DP control (module docstring)."""
    pool, models, targets = (512, 8, 4) if quick else (1000, 16, 4)
    x, y = load_fashion_mnist("train", limit=pool)
    xv, yv = load_fashion_mnist("test", limit=256)
    label = f"DP eps={EPSILON:g}"
    control = run_membership_audit(
        audit_spec(epsilon=None), x, y, xv, yv, n_models=models, seed=SEED
    )
    private = run_membership_audit(
        audit_spec(epsilon=EPSILON, delta=DELTA), x, y, xv, yv, n_models=models, seed=SEED
    )
    rows = _lira_rows(control, private, label)
    rebuilt = [
        run_reconstruction_audit(audit, x, targets_per_model=targets, knows_initial_weights=knows)
        for audit, knows in ((control, True), (private, True), (control, False))
    ]
    rows += _reconstruction_rows(*rebuilt, label)
    return rows


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    result = audit_rows(args.quick)
    emit(
        "privacy audit",
        result,
        as_json=args.json,
        packages=("torch", "opacus"),
        notes={"wall_s": round(time.perf_counter() - started, 1)},
    )
