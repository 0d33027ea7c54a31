"""A fixed 2-D scattering transform: the non-trainable front end of the ``scatter_*`` zoo models.

The scattering network of Mallat (2012) and Bruna & Mallat (2013), in the form Oyallon &
Mallat (2015) use for image classification and Tramèr & Boneh (ICLR 2021, "Differentially
private learning needs better features") put in front of linear and small CNN models trained
with DP-SGD: Morlet wavelets at ``J = 2`` scales and ``L = 8`` orientations, two orders, so a
channel of an ``H×W`` image becomes ``1 + J·L + L²·J(J-1)/2 = 81`` channels of
``H/2^J × W/2^J`` coefficients::

    S0 x = x ⋆ φ_J                                  (one low-pass average)
    S1 x = |x ⋆ ψ_{j1,θ1}| ⋆ φ_J                    (J·L first-order channels)
    S2 x = ||x ⋆ ψ_{j1,θ1}| ⋆ ψ_{j2,θ2}| ⋆ φ_J     (j1 < j2: L²·J(J-1)/2 channels)

each sampled every ``2^J`` pixels. It is the algorithm of kymatio's ``Scattering2D`` (Andreux
et al., JMLR 2020; version 0.3), which Tramèr & Boneh used, computed here for all filters of
a scale at once: the image is reflection-padded to a multiple of ``2^J`` with at least
``2^J`` pixels on each side, convolutions are products in the Fourier domain with the filters
sampled there, subsampling by ``k`` is periodisation of the spectrum (mean over its ``k×k``
blocks), and the padding is cut off at the end. The channel order is kymatio's (``S0``, then
``S1`` by ``(j1, θ1)``, then ``S2`` by ``(j1, θ1, j2, θ2)``), per input channel. Filters are
built in float64 (kymatio builds them in float32/complex64), so coefficients agree with
kymatio's to float32 rounding, not bit for bit. kymatio itself is not a dependency: its 0.3.0
release imports ``scipy.special.sph_harm``, which SciPy 1.17 no longer has, and on one CPU
thread it takes about twice the time of this batched form, which filters all orientations at
once, forms filter products block by block at the subsampled size, and applies the separable
low-pass φ_J as two small matrix products instead of FFTs.

The transform has no parameters and no randomness: its filters are non-persistent buffers (a
model file holds only trainable weights, and loading rebuilds the filters from the spec), and
the same input gives the same output bit for bit under
``torch.use_deterministic_algorithms`` on one CPU family.

:func:`scatter_flops` counts the transform's floating-point operations for the design check:
FlopCounterMode counts no FFTs.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

__all__ = [
    "SCATTER_J",
    "SCATTER_L",
    "Scattering2D",
    "scatter_channels",
    "scatter_flops",
    "scatter_output_shape",
]

#: scales of the transform: coefficients are sampled every 2^J pixels
SCATTER_J = 2
#: orientations of the wavelets, over a half circle
SCATTER_L = 8
#: per-image bytes of intermediate spectra a batch of the transform may hold at once
_CHUNK_BYTES = 64 << 20


def scatter_channels(j: int = SCATTER_J, l: int = SCATTER_L) -> int:  # noqa: E741
    """Output channels per input channel: ``1 + J·L + L²·J(J-1)/2`` (81 for J=2, L=8)."""
    return 1 + j * l + l * l * j * (j - 1) // 2


def scatter_output_shape(input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """``(C·81, H // 4, W // 4)`` for a ``(C, H, W)`` input at J=2, L=8."""
    c, h, w = input_shape
    return c * scatter_channels(), h >> SCATTER_J, w >> SCATTER_J


def _padded(size: int, j: int) -> int:
    # kymatio's compute_padding: the next multiple of 2^J with at least 2^J pixels to spare
    step = 1 << j
    return ((size + step) // step + 1) * step


def _gabor(
    m: int, n: int, *, sigma: float, theta: float, xi: float, slant: float
) -> NDArray[np.complex128]:
    """A Gabor filter on an ``m×n`` grid, periodised over the 5×5 neighbouring copies.

    ``g(u) = exp(-uᵀ A u + i ξ (u₁ cos θ + u₂ sin θ)) / (2π σ² / slant)`` with
    ``A = R diag(1, slant²) Rᵀ / (2σ²)`` and ``R`` the rotation by ``θ``.
    """
    cos, sin = math.cos(theta), math.sin(theta)
    rot = np.array([[cos, -sin], [sin, cos]])
    curv = rot @ np.diag([1.0, slant * slant]) @ rot.T / (2.0 * sigma * sigma)
    out = np.zeros((m, n), np.complex128)
    for ex in range(-2, 3):
        for ey in range(-2, 3):
            xx, yy = np.mgrid[ex * m : (ex + 1) * m, ey * n : (ey + 1) * n].astype(np.float64)
            arg = -(curv[0, 0] * xx * xx + 2 * curv[0, 1] * xx * yy + curv[1, 1] * yy * yy)
            out += np.exp(arg + 1j * xi * (xx * cos + yy * sin))
    # kymatio's normalisation, 3.1415 included, so that coefficients keep its scale
    return out / (2 * 3.1415 * sigma * sigma / slant)


def _morlet(
    m: int, n: int, *, sigma: float, theta: float, xi: float, slant: float
) -> NDArray[np.complex128]:
    """A Morlet wavelet: the Gabor filter minus the envelope that makes its mean exactly 0."""
    wave = _gabor(m, n, sigma=sigma, theta=theta, xi=xi, slant=slant)
    envelope = _gabor(m, n, sigma=sigma, theta=theta, xi=0.0, slant=slant)
    out: NDArray[np.complex128] = wave - (wave.sum() / envelope.sum()) * envelope
    return out


def _crop_spectrum(spectrum: NDArray[np.float64], res: int) -> NDArray[np.float64]:
    """The filter for signals subsampled by ``2^res``: its spectrum band-limited and folded."""
    if res == 0:
        return spectrum
    m, n = spectrum.shape
    k = 2**res
    kept = spectrum.copy()
    start_m, start_n = int(m * 2 ** (-res - 1)), int(n * 2 ** (-res - 1))
    kept[start_m : start_m + int(m * (1 - 2**-res)), :] = 0.0
    kept[:, start_n : start_n + int(n * (1 - 2**-res))] = 0.0
    folded: NDArray[np.float64] = kept.reshape(k, m // k, k, n // k).sum(axis=(0, 2))
    return folded


def _periodic_gaussian(size: int, sigma: float) -> NDArray[np.float64]:
    """``Σ_{|e|≤2} exp(-(u + e·size)² / 2σ²)`` for ``u`` in ``0..size-1``: one factor of φ."""
    u = np.arange(size, dtype=np.float64)
    out = np.zeros(size, dtype=np.float64)
    for e in range(-2, 3):
        out += np.exp(-((u + e * size) ** 2) / (2 * sigma * sigma))
    return out


def _fold_spectrum_1d(spectrum: NDArray[np.float64], res: int) -> NDArray[np.float64]:
    """One axis of :func:`_crop_spectrum`."""
    if res == 0:
        return spectrum
    m, k = spectrum.shape[0], 2**res
    kept = spectrum.copy()
    start = int(m * 2 ** (-res - 1))
    kept[start : start + int(m * (1 - 2**-res))] = 0.0
    folded: NDArray[np.float64] = kept.reshape(k, m // k).sum(axis=0)
    return folded


def _low_pass_matrix(size: int, j: int, res: int) -> NDArray[np.float64]:
    """One axis of the low-pass φ_J for a signal at resolution ``2^-res``: rows are outputs.

    φ_J is an isotropic Gaussian, so it factors into one periodic 1-D kernel per axis, and so
    does its band-limited, folded version for subsampled signals. Filtering, sampling every
    ``2^(J-res)`` and cutting the padding then is ``A_rows · u · A_colsᵀ``: a small real
    matrix product in place of an FFT, a product and an inverse FFT per channel.
    """
    spectrum = np.fft.fft(_periodic_gaussian(size, 0.8 * 2 ** (j - 1))).real
    kernel = np.fft.ifft(_fold_spectrum_1d(spectrum, res)).real
    grid, step = size >> res, 2 ** (j - res)
    outputs = (np.arange(grid // step - 2) + 1) * step  # samples 1..-2: the rest is padding
    matrix: NDArray[np.float64] = kernel[(outputs[:, None] - np.arange(grid)[None, :]) % grid]
    return matrix


@functools.lru_cache(maxsize=8)
def _filter_bank(
    m: int,
    n: int,
    j: int,
    l: int,  # noqa: E741
) -> tuple[
    tuple[tuple[NDArray[np.float64], NDArray[np.float64]], ...],
    tuple[tuple[NDArray[np.float64], ...], ...],
]:
    """The filters on the padded ``m×n`` grid.

    Returns ``(phi, psi)``: ``phi[res]`` is the pair of :func:`_low_pass_matrix` for signals
    at resolution ``2^-res`` (the 1/(2πσ²) of kymatio's φ folded into the row matrix);
    ``psi[res][scale - res]`` stacks the ``L`` wavelet spectra of ``scale`` (``(L, m', n')``,
    orientations in kymatio's order) for signals at resolution ``2^-res``, ``res ≤ scale``.
    The spectra are real: the wavelets are symmetric under ``u → -u``.
    """
    psi: list[list[NDArray[np.float64]]] = [[] for _ in range(j)]
    for scale in range(j):
        spectra = [
            np.fft.fft2(
                _morlet(
                    m,
                    n,
                    sigma=0.8 * 2**scale,
                    theta=(int(l - l / 2 - 1) - theta) * math.pi / l,
                    xi=3.0 / 4.0 * math.pi / 2**scale,
                    slant=4.0 / l,
                )
            ).real
            for theta in range(l)
        ]
        for res in range(scale + 1):
            psi[res].append(np.stack([_crop_spectrum(s, res) for s in spectra]))
    sigma = 0.8 * 2 ** (j - 1)
    norm = 2 * 3.1415 * sigma * sigma  # kymatio's, 3.1415 included, to keep its scale
    phi = tuple(
        (_low_pass_matrix(m, j, res) / norm, _low_pass_matrix(n, j, res)) for res in range(j)
    )
    return phi, tuple(tuple(level) for level in psi)


def _blocks(spectrum: torch.Tensor, k: int) -> torch.Tensor:
    """``(..., m, n)`` complex → ``(..., k², m/k, n/k, 2)`` real: the spectrum's ``k×k`` blocks.

    Periodising a spectrum sums these blocks; laid out contiguously, the sum of their products
    with a filter's blocks runs over contiguous memory (torch multiplies a complex tensor by a
    real one, or reduces it over an outer axis, several times slower).
    """
    *lead, m, n = spectrum.shape
    parts = torch.view_as_real(spectrum).reshape(*lead, k, m // k, k, n // k, 2)
    return parts.transpose(-4, -3).reshape(*lead, k * k, m // k, n // k, 2)


def _filter_blocks(spectra: NDArray[np.float64], k: int) -> torch.Tensor:
    """Real filter spectra ``(L, m, n)`` as ``(L, k², m/k, n/k, 2)``, each value twice (re, im)."""
    tensor = torch.tensor(spectra, dtype=torch.float32, device="cpu")
    doubled = torch.stack([tensor, tensor], dim=-1) / (k * k)  # the periodisation's mean
    l, m, n, _ = doubled.shape  # noqa: E741
    blocks = doubled.reshape(l, k, m // k, k, n // k, 2).transpose(2, 3)
    return blocks.reshape(l, k * k, m // k, n // k, 2).contiguous()


def _filter_fold(blocks: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """``Σ_b blocks[..., b] × filters[:, b]``: filter, then subsample in space by ``k``.

    ``blocks`` is ``(..., 1, k², a, b, 2)`` from :func:`_blocks`, ``filters`` ``(L, k², a, b,
    2)`` from :func:`_filter_blocks`; the result is complex ``(..., L, a, b)``.
    """
    out = blocks[..., 0, :, :, :] * filters[:, 0]
    for b in range(1, filters.shape[1]):
        out.addcmul_(blocks[..., b, :, :, :], filters[:, b])
    return torch.view_as_complex(out)


def _modulus(z: torch.Tensor) -> torch.Tensor:
    parts = torch.view_as_real(z)
    return torch.hypot(parts[..., 0], parts[..., 1])


class Scattering2D(nn.Module):
    """``(B, C, H, W)`` float images → ``(B, C·81, H/4, W/4)`` scattering coefficients.

    No parameters. Built under ``torch.device("meta")`` it holds shape-only filters (for
    counting parameters and FLOPs without building the filter bank).
    """

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        c, h, w = input_shape
        self.input_shape = (c, h, w)
        self.j, self.l = SCATTER_J, SCATTER_L
        self.m, self.n = _padded(h, self.j), _padded(w, self.j)
        self.pad = (
            (self.n - w) // 2,
            (self.n - w + 1) // 2,
            (self.m - h) // 2,
            (self.m - h + 1) // 2,
        )
        oh, ow = h >> self.j, w >> self.j
        meta = torch.empty(0).device.type == "meta"
        phi, psi = _filter_bank(self.m, self.n, self.j, self.l) if not meta else ((), ())
        filters: list[tuple[str, tuple[int, ...], NDArray[np.float64] | None]] = []
        for res in range(self.j):
            m, n = self.m >> res, self.n >> res
            filters.append((f"rows{res}", (oh, m), phi[res][0] if phi else None))
            filters.append((f"cols{res}", (ow, n), phi[res][1] if phi else None))
            for scale in range(res, self.j):
                value = psi[res][scale - res] if psi else None
                filters.append((f"psi{res}_{scale}", (self.l, m, n), value))
        for name, shape, value in filters:
            if name.startswith("psi"):  # blocks for the subsampling that follows the filter
                res, scale = (int(part) for part in name[3:].split("_"))
                k = 2 ** (scale - res)
                l, m, n = shape  # noqa: E741
                blocked = (l, k * k, m // k, n // k, 2)
                tensor = torch.empty(blocked) if value is None else _filter_blocks(value, k)
            else:
                tensor = (
                    torch.empty(shape)
                    if value is None
                    else torch.tensor(value, dtype=torch.float32, device="cpu")
                )
            # rebuilt from the spec on load, so not part of a model file
            self.register_buffer(name, tensor, persistent=False)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(C·81, H // 4, W // 4)``."""
        return scatter_output_shape(self.input_shape)

    def _buffer(self, name: str) -> torch.Tensor:
        out: torch.Tensor = getattr(self, name)
        return out

    def bytes_per_image(self) -> int:
        """Peak bytes of intermediate spectra per image channel (complex64, a few copies)."""
        return 8 * self.m * self.n * 3 * (self.l + self.l * self.l // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if (c, h, w) != self.input_shape:
            raise ValueError(f"scattering expects {self.input_shape} inputs, got {(c, h, w)}")
        step = max(1, _CHUNK_BYTES // (c * self.bytes_per_image()))
        if b > step:  # bound the memory the intermediate spectra take at once
            return torch.cat([self.forward(x[i : i + step]) for i in range(0, b, step)])
        signal = nn.functional.pad(x.reshape(b * c, 1, h, w), self.pad, mode="reflect")[:, 0]
        coefficients = self._transform(signal)
        return coefficients.reshape(
            b, c * scatter_channels(self.j, self.l), *coefficients.shape[-2:]
        )

    def _low(self, u: torch.Tensor, res: int) -> torch.Tensor:
        """Low-pass ``φ_J`` real signals at resolution ``2^-res``, sampled at ``2^-J``, unpadded."""
        rows, cols = self._buffer(f"rows{res}"), self._buffer(f"cols{res}")
        return rows @ (u @ cols.T)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, m, n)`` padded signals → ``(N, 81, h/4, w/4)``, in kymatio's channel order."""
        spectrum = torch.fft.fft2(x)
        first: list[torch.Tensor] = []
        second: list[torch.Tensor] = []
        for j1 in range(self.j):
            # |x ⋆ ψ_{j1,θ}| for every θ at once, sampled at 2^-j1: (N, L, m', n')
            blocks = _blocks(spectrum, 2**j1)[:, None]
            u1 = _modulus(torch.fft.ifft2(_filter_fold(blocks, self._buffer(f"psi0_{j1}"))))
            first.append(self._low(u1, j1))
            if j1 + 1 == self.j:
                continue
            deeper = []
            for j2 in range(j1 + 1, self.j):
                # every pair of orientations at once: (N, L1, L2, m'', n'')
                blocks = _blocks(torch.fft.fft2(u1), 2 ** (j2 - j1))[:, :, None]
                u2 = torch.fft.ifft2(_filter_fold(blocks, self._buffer(f"psi{j1}_{j2}")))
                deeper.append(self._low(_modulus(u2), j2))
            # order (θ1, j2, θ2), as kymatio's loop over n1 then n2
            second.append(torch.cat(deeper, dim=2).flatten(1, 2))
        return torch.cat([self._low(x, 0)[:, None], *first, *second], dim=1)


def _fft_flops(points: int) -> int:
    # the usual count for a complex FFT of `points` points: 5 N log2 N
    return round(5 * points * math.log2(points)) if points > 1 else 0


def scatter_flops(input_shape: tuple[int, int, int]) -> int:
    """Floating-point operations of :class:`Scattering2D` on one ``(C, H, W)`` sample.

    Counts what :meth:`Scattering2D._transform` computes: each FFT as ``5 N log₂ N``, each
    filter product as 2 FLOPs per real multiply-add, each modulus as 3, each low-pass matrix
    product as 2 per multiply-add. Padding, copies and the concatenation are not counted.
    """
    c, h, w = input_shape
    j, l = SCATTER_J, SCATTER_L  # noqa: E741
    m, n = _padded(h, j), _padded(w, j)
    oh, ow = h >> j, w >> j

    def low(rows: int, cols: int) -> int:
        return 2 * rows * cols * ow + 2 * oh * rows * ow

    total = _fft_flops(m * n) + low(m, n)
    for j1 in range(j):
        m1, n1 = m >> j1, n >> j1
        total += 4 * l * m * n  # fold-multiply: every full-grid value once, re and im
        total += l * (_fft_flops(m1 * n1) + 3 * m1 * n1 + low(m1, n1))
        if j1 + 1 < j:
            total += l * _fft_flops(m1 * n1)
        for j2 in range(j1 + 1, j):
            m2, n2 = m >> j2, n >> j2
            total += 4 * l * l * m1 * n1
            total += l * l * (_fft_flops(m2 * n2) + 3 * m2 * n2 + low(m2, n2))
    return c * total
