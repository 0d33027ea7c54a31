"""The fixed model zoo: every network a spec can name, built from the spec's knobs alone.

Each network is a :class:`ZooNet`: ``features`` maps a batch to its penultimate-layer embedding
(fed to KNN-Shapley), ``head`` is the final linear classifier. Convolutional networks use
BatchNorm, except when the spec asks for DP: BatchNorm mixes samples within a batch, which
breaks the per-sample gradients DP-SGD (Abadi et al., 2016) clips, so the DP variants use
GroupNorm (Wu & He, 2018) instead, as Opacus' ``ModuleValidator.fix`` would.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from visdm.training._spec import ModelSpec

__all__ = ["ZooNet", "build_model"]

#: size of the penultimate layer of ``small_cnn``
_CNN_EMBED = 128


class ZooNet(nn.Module):
    """``head(features(x))``; :meth:`embed` returns the penultimate-layer activations."""

    def __init__(self, features: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer embedding, shape ``(N, head.in_features)``."""
        out: torch.Tensor = self.features(x)
        return out


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
