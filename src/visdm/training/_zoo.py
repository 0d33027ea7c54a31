"""The fixed model zoo: every network a spec can name, built from the spec's knobs alone.

Each network is a :class:`ZooNet`: ``frontend`` is a fixed transform without parameters
(identity, or a scattering transform), ``features`` maps its output to the penultimate-layer
embedding (fed to KNN-Shapley), ``head`` is the final linear classifier. Convolutional networks
use BatchNorm, except when the spec asks for DP: BatchNorm mixes samples within a batch, which
breaks the per-sample gradients DP-SGD (Abadi et al., 2016) clips, so the DP variants use
GroupNorm (Wu & He, 2018) instead, as Opacus' ``ModuleValidator.fix`` would.

The ``scatter_*`` networks are Tramèr & Boneh's (ICLR 2021) answer to "DP learning needs
better features": a scattering transform (:mod:`visdm.training._scatter`) and a GroupNorm
without parameters over its channels (each sample normalised on its own, so nothing about other
samples leaks in and no privacy budget is spent on it) feed ``scatter_linear``'s linear
classifier, or ``scatter_cnn``'s two-conv CNN with tanh activations (Papernot et al., 2021: a
bounded activation keeps the clipped gradients informative), shaped as their Fashion-MNIST
ScatterNet+CNN. The front end has nothing to learn, so training computes it once per job.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from visdm.training._scatter import Scattering2D, scatter_output_shape
from visdm.training._spec import ModelSpec

__all__ = ["ZooNet", "build_model", "frontend_output_shape"]

#: size of the penultimate layer of ``small_cnn``
_CNN_EMBED = 128
#: size of the penultimate layer of ``scatter_cnn``
_SCATTER_CNN_EMBED = 32


class ZooNet(nn.Module):
    """``head(features(frontend(x)))``; :meth:`embed` returns the penultimate-layer activations.

    ``frontend`` has no parameters and no state in a model file (its buffers are rebuilt from
    the spec); ``features`` and ``head`` hold every trainable weight.
    """

    def __init__(
        self, features: nn.Module, head: nn.Linear, *, frontend: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.frontend = frontend if frontend is not None else nn.Identity()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(self.frontend(x)))
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer embedding, shape ``(N, head.in_features)``."""
        out: torch.Tensor = self.features(self.frontend(x))
        return out

    def trainable(self) -> nn.Sequential:
        """``head ∘ features``, sharing this network's parameters: what training updates,
        applied to inputs already passed through :attr:`frontend`."""
        return nn.Sequential(self.features, self.head)


def frontend_output_shape(spec: ModelSpec) -> tuple[int, int, int] | None:
    """The shape the spec's fixed front end gives one sample, or ``None`` without one."""
    if spec.architecture.startswith("scatter_"):
        return scatter_output_shape(spec.input_shape)
    return None


def _norm(channels: int, *, dp: bool) -> nn.Module:
    if dp:
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    return nn.BatchNorm2d(channels)


class _BasicBlock(nn.Module):
    """Two 3×3 convs with an identity (or 1×1 projection) shortcut (He et al., 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, dp: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(c_out, dp=dp)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(c_out, dp=dp)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(c_out, dp=dp)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        result: torch.Tensor = self.relu(out + self.shortcut(x))
        return result


def build_model(spec: ModelSpec, *, device: str | torch.device = "cpu") -> ZooNet:
    """Instantiate the spec's network with PyTorch's default initialisation.

    The caller seeds torch first for reproducible weights; ``device="meta"`` builds it without
    allocating memory (for counting parameters and FLOPs of a spec that may be too large).
    """
    c, h, w = spec.input_shape
    dp = spec.dp is not None
    with torch.device(device):
        if spec.architecture.startswith("scatter_"):
            return _scatter_net(spec)
        if spec.architecture == "mlp":
            layers: list[nn.Module] = [nn.Flatten()]
            width = c * h * w
            for size in spec.hidden or ():
                layers += [nn.Linear(width, size), nn.ReLU()]
                width = size
            return ZooNet(nn.Sequential(*layers), nn.Linear(width, spec.num_classes))
        base = spec.width or 16
        if spec.architecture == "small_cnn":
            features = nn.Sequential(
                nn.Conv2d(c, base, 3, padding=1),
                _norm(base, dp=dp),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(base, 2 * base, 3, padding=1),
                _norm(2 * base, dp=dp),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(2 * base * (h // 4) * (w // 4), _CNN_EMBED),
                nn.ReLU(),
            )
            return ZooNet(features, nn.Linear(_CNN_EMBED, spec.num_classes))
        # resnet: a stem, then `depth` stages of one basic block; stages after the first halve
        # the resolution and double the channels
        stages: list[nn.Module] = [
            nn.Conv2d(c, base, 3, padding=1, bias=False),
            _norm(base, dp=dp),
            nn.ReLU(),
        ]
        channels = base
        for stage in range(spec.depth or 2):
            out = base * 2**stage
            stages.append(_BasicBlock(channels, out, 1 if stage == 0 else 2, dp=dp))
            channels = out
        stages += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        return ZooNet(nn.Sequential(*stages), nn.Linear(channels, spec.num_classes))


def _scatter_net(spec: ModelSpec) -> ZooNet:
    channels, h, w = scatter_output_shape(spec.input_shape)
    frontend = nn.Sequential(
        Scattering2D(spec.input_shape),
        nn.GroupNorm(spec.norm_groups or 1, channels, affine=False),
    )
    if spec.architecture == "scatter_linear":
        return ZooNet(
            nn.Flatten(), nn.Linear(channels * h * w, spec.num_classes), frontend=frontend
        )
    # scatter_cnn: a stride-2 conv then a stride-1 conv, both 3×3 with tanh, then a tanh layer
    width = spec.width or 16
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    features = nn.Sequential(
        nn.Conv2d(channels, width, 3, stride=2, padding=1),
        nn.Tanh(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(2 * width * h2 * w2, _SCATTER_CNN_EMBED),
        nn.Tanh(),
    )
    return ZooNet(features, nn.Linear(_SCATTER_CNN_EMBED, spec.num_classes), frontend=frontend)
