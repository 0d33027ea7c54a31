"""Reconstruction of a training sample from the delivered weights by an informed adversary.

Balle, Cherubin & Hayes, "Reconstructing Training Data with Informed Adversaries", IEEE S&P
2022: the adversary knows every training sample but one (D₋), the training recipe and — the
worst case DP must withstand — the initial weights θ₀; given the final weights it rebuilds the
missing sample x*. DP-SGD with (ε, δ) bounds how well any such adversary can do.

The attack here, for the zoo's ``mlp`` trained with SGD (momentum included): the gradient of
sample i's loss with respect to the first layer's weight W (h × d, on the flattened input) is
δᵢ xᵢᵀ, with δᵢ the error back-propagated to the hidden pre-activations. SGD's updates are
linear combinations of gradients, so

    W_T − W_0 = Σᵢ aᵢ xᵢᵀ  for some aᵢ ∈ ℝʰ:

every row of the weight change lies in the span of the training inputs. Projecting the rows on
the orthogonal complement of span(D₋) with P⊥ removes every known sample and leaves
(P⊥x*) a*ᵀ, of rank one: its leading right singular vector is ±P⊥x* / ‖P⊥x*‖ (up to float
rounding), whatever the batch order, however long the training. Without θ₀ the adversary takes W_T
alone; P⊥W_0 then adds a random matrix, and the spike shows only where it stands above that
matrix's spectrum.

DP-SGD clips each δᵢxᵢᵀ (still in the span) but adds isotropic Gaussian noise at every step,
which P⊥ keeps: at small ε the spike drowns in it.

What is measured: the similarity |cos(x̂, P⊥x*)| ∈ [0, 1] between the reconstruction and the
part of the target the other samples do not explain (the sign of a singular vector is
arbitrary; the part of x* inside span(D₋) cannot be told from W alone), beside its chance
level, the expected |cos| of a random direction of the complement; and whether the
reconstruction picks the target out of the samples the model did not train on.

Where this deviates from Balle et al.: they reconstruct convex models in closed form from the
optimality condition, and neural networks with a reconstructor network trained on shadow
models. The span argument needs neither shadow models nor training to convergence, but holds
only for SGD (Adam rescales each coordinate) with a dense first layer, and only while the n − 1
known samples leave a complement (n − 1 < d). Retraining on D₋ and subtracting, the other
classic approach, needs the job seed — whose replay, DP noise included, is a separate attack
(``tests/unit/training/test_reconstruction_attack.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.special import gammaln  # type: ignore[import-untyped]

from visdm.errors import InvalidInputError
from visdm.training._lira import MembershipAudit
from visdm.training._mia import torch_threads
from visdm.training._rng import JobRandomness
from visdm.training._spec import ModelSpec, parse_model_spec
from visdm.training._train import prepare_images
from visdm.training._zoo import build_model

__all__ = [
    "FIRST_LAYER",
    "ReconstructionAudit",
    "chance_similarity",
    "initial_state",
    "input_vectors",
    "reconstruct_missing",
    "reconstruction_similarity",
    "run_reconstruction_audit",
]

#: the zoo ``mlp``'s first dense layer (after ``Flatten``) in its ``state_dict``
FIRST_LAYER = "features.1.weight"
_Float = NDArray[np.float64]


def input_vectors(images: NDArray[np.uint8]) -> _Float:
    """Images as the network sees them (scaled to [-1, 1]), flattened: ``(N, C·H·W)``."""
    x = prepare_images(images)
    return np.asarray(x.reshape(x.shape[0], -1).double().numpy())


def initial_state(spec: ModelSpec | dict[str, Any], seed: bytes) -> dict[str, torch.Tensor]:
    """The weights a job with ``seed`` starts from: what the informed adversary is given."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(JobRandomness.from_seed(seed).init_seed)
        model = build_model(parse_model_spec(spec))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Complement:
    """Orthogonal projection onto the complement of the span of the rows of ``known``."""

    def __init__(self, known: torch.Tensor) -> None:
        _, s, vt = torch.linalg.svd(known, full_matrices=False)
        eps = torch.finfo(torch.float64).eps
        tol = (float(s.max()) if s.numel() else 0.0) * max(known.shape) * eps
        self.basis = vt[s > tol]
        self.dim = known.shape[1] - self.basis.shape[0]

    def project(self, v: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = v - (v @ self.basis.T) @ self.basis
        return out


def _matrix(value: NDArray[Any] | torch.Tensor, what: str) -> torch.Tensor:
    arr = value.detach().double() if isinstance(value, torch.Tensor) else None
    if arr is None:
        arr = torch.from_numpy(np.array(value, dtype=np.float64))
    if arr.ndim != 2 or not bool(torch.isfinite(arr).all()):
        raise InvalidInputError(f"{what} must be a finite 2-D array, got shape {tuple(arr.shape)}")
    return arr


def _leading_direction(
    weight: torch.Tensor, initial: torch.Tensor | None, complement: _Complement
) -> torch.Tensor:
    change = weight if initial is None else weight - initial
    _, _, vt = torch.linalg.svd(complement.project(change), full_matrices=False)
    first: torch.Tensor = vt[0]
    return first


def reconstruct_missing(
    final_weight: NDArray[Any] | torch.Tensor,
    known_inputs: NDArray[Any],
    *,
    initial_weight: NDArray[Any] | torch.Tensor | None = None,
) -> _Float:
    """The unit vector of input space the first layer learned from the one unknown sample.

    ``final_weight`` (h × d) is the delivered first-layer weight, ``initial_weight`` the one
    training started from if the adversary knows it, ``known_inputs`` (n − 1 × d) the known
    samples as :func:`input_vectors` gives them. Returns the leading right singular vector of
    the weight change projected off their span (sign arbitrary). Raises
    :class:`~visdm.errors.InvalidInputError` on mismatched shapes or when the known samples
    span the whole input space.
    """
    weight = _matrix(final_weight, "final_weight")
    start = None if initial_weight is None else _matrix(initial_weight, "initial_weight")
    if start is not None and start.shape != weight.shape:
        raise InvalidInputError(
            f"initial_weight is {tuple(start.shape)} but final_weight {tuple(weight.shape)}: "
            "pass the same layer of the same spec"
        )
    known = _matrix(known_inputs, "known_inputs")
    if known.shape[1] != weight.shape[1]:
        raise InvalidInputError(
            f"known inputs have {known.shape[1]} values but the layer takes {weight.shape[1]}: "
            "flatten the images with input_vectors"
        )
    with torch_threads(1):
        complement = _Complement(known)
        if complement.dim == 0:
            raise InvalidInputError(
                f"the {known.shape[0]} known samples span all {known.shape[1]} input "
                "dimensions: the first layer keeps nothing of the missing one that they do "
                "not explain"
            )
        return np.asarray(_leading_direction(weight, start, complement).numpy())


def reconstruction_similarity(
    reconstruction: NDArray[Any], target_input: NDArray[Any], known_inputs: NDArray[Any]
) -> float:
    """|cos| between the reconstruction and the part of the target off the known span."""
    known = _matrix(known_inputs, "known_inputs")
    pair = _matrix(np.stack([np.ravel(reconstruction), np.ravel(target_input)]), "inputs")
    if pair.shape[1] != known.shape[1]:
        raise InvalidInputError(
            f"the reconstruction and target have {pair.shape[1] // 1} values, the known "
            f"inputs {known.shape[1]}: flatten all of them with input_vectors"
        )
    with torch_threads(1):
        guess, target = _Complement(known).project(pair)
    norms = float(torch.linalg.norm(target) * torch.linalg.norm(guess))
    if not norms > 0.0:
        raise InvalidInputError(
            "the target or the reconstruction lies in the span of the known samples: there "
            "is nothing of it to compare"
        )
    return abs(float(target @ guess)) / norms


def chance_similarity(dim: int) -> float:
    """E|cos| between a fixed and a uniformly random direction of ℝ^dim: Γ(d/2)/(√π Γ((d+1)/2))."""
    if dim < 1:
        raise InvalidInputError(f"dimension must be >= 1, got {dim}")
    return float(math.exp(gammaln(dim / 2) - gammaln((dim + 1) / 2)) / math.sqrt(math.pi))


@dataclass(frozen=True)
class ReconstructionAudit:
    """Per target: the reconstruction's similarity, and whether it named the target.

    ``similarity[t]`` is :func:`reconstruction_similarity`, ``chance[t]`` its expectation for
    a random direction, ``unexplained[t]`` the share ‖P⊥x*‖ / ‖x*‖ of the target the known
    samples leave to be found, ``identified[t]`` whether the target is, of itself and the
    pool samples the model did not train on (``candidates``: the fewest of them, target
    included), the one closest to the reconstruction.
    """

    similarity: _Float
    chance: _Float
    unexplained: _Float
    identified: NDArray[np.bool_]
    candidates: int
    knows_initial_weights: bool

    @property
    def median_similarity(self) -> float:
        return float(np.median(self.similarity))

    @property
    def identification_rate(self) -> float:
        return float(np.mean(self.identified))


def run_reconstruction_audit(
    audit: MembershipAudit,
    images: NDArray[np.uint8],
    *,
    targets_per_model: int,
    knows_initial_weights: bool = True,
) -> ReconstructionAudit:
    """Attack the models of ``audit``: each target is one of a model's training samples.

    ``images`` is the audit's pool. For model k and target t the adversary knows the other
    samples model k trained on, the spec, and (``knows_initial_weights``) the initial weights
    of k's job; it is given k's delivered weights. The first ``targets_per_model`` training
    samples of each model are targets; the candidates are the target and the pool samples
    model k did not train on.
    """
    spec = audit.spec
    if spec.architecture != "mlp" or spec.optimizer != "sgd":
        raise InvalidInputError(
            f"the first-layer reconstruction needs an mlp trained with sgd, the spec has "
            f"{spec.architecture!r} with {spec.optimizer!r}: audit an mlp/sgd spec"
        )
    if targets_per_model < 1:
        raise InvalidInputError(f"targets_per_model must be >= 1, got {targets_per_model}")
    pool = input_vectors(images)
    if pool.shape[0] != audit.membership.shape[1]:
        raise InvalidInputError(
            f"{pool.shape[0]} images but the audit's pool has {audit.membership.shape[1]}: "
            "pass the pool the audit trained on"
        )
    similarity, chance, unexplained, identified = [], [], [], []
    candidates = pool.shape[0]
    with torch_threads(1):
        inputs = torch.from_numpy(pool)
        for k, (state, seed) in enumerate(zip(audit.states, audit.seeds, strict=True)):
            members = torch.from_numpy(audit.membership[k].nonzero()[0])
            others = torch.from_numpy((~audit.membership[k]).nonzero()[0])
            weight = state[FIRST_LAYER].double()
            start = (
                initial_state(spec, seed)[FIRST_LAYER].double() if knows_initial_weights else None
            )
            for t in members[:targets_per_model]:
                complement = _Complement(inputs[members[members != t]])
                guess = _leading_direction(weight, start, complement)
                rows = complement.project(inputs[torch.cat((t.view(1), others))])
                norms = torch.linalg.norm(rows, dim=1)
                tiny = torch.finfo(torch.float64).tiny
                cosines = (rows @ guess).abs() / norms.clamp_min(tiny)
                similarity.append(float(cosines[0]))
                identified.append(bool(cosines.argmax() == 0))
                chance.append(chance_similarity(complement.dim))
                unexplained.append(float(norms[0] / torch.linalg.norm(inputs[t])))
                candidates = min(candidates, rows.shape[0])
    return ReconstructionAudit(
        similarity=np.asarray(similarity),
        chance=np.asarray(chance),
        unexplained=np.asarray(unexplained),
        identified=np.asarray(identified),
        candidates=candidates,
        knows_initial_weights=knows_initial_weights,
    )
