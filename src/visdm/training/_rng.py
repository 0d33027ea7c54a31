"""A training job's randomness: one 256-bit seed the compute node draws, and its streams.

The consumer chooses the spec, never the randomness (DESIGN §7). A consumer who knew the
initial weights, the batch order and the DP noise could subtract the noise and read training
images back out of the delivered weights (``tests/unit/training/test_reconstruction_attack.py``
performs that attack). So the node draws a fresh seed per job from the OS CSPRNG
(:func:`new_job_seed`), publishes only its keccak256 (:func:`seed_commitment`) in the result,
and seals the seed to verifiers, who re-execute the job with it.

Every random choice of a job comes from that seed through HKDF-SHA256 (RFC 5869) sub-keys, one
per use, so the streams are independent and one can be disclosed without the others:

* ``init`` — a 64-bit ``torch.manual_seed`` value for the model's initial weights;
* ``shuffle`` — the batch order of non-private training;
* ``poisson`` — DP-SGD's Poisson sampling (each sample joins a step with probability q);
* ``noise`` — DP-SGD's Gaussian noise.

The last three are :class:`ChaChaStream` s: the ChaCha20 keystream (Bernstein, 2008; 64-bit
counter) under the sub-key, read as uniforms and, by Box–Muller, as normals. Without the seed
they cannot be predicted, which is what Opacus' ``secure_mode`` obtains from torchcsprng
(not available here). Normals are computed in float64 from 53-bit uniforms and only then
rounded to the model's float32: the rounded values then fill the float32 grid densely, so the
gaps in the outputs of a low-precision Box–Muller that floating-point attacks on DP noise
exploit (Mironov, 2012; Jin et al., 2022) are not there. NumPy's ``log``/``cos``/``sin`` may
round differently on another CPU family, as torch's kernels may; re-execution is
bit-identical on the same family.

This module does not import torch.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

import numpy as np
from Crypto.Cipher import ChaCha20
from eth_utils.crypto import keccak
from numpy.typing import NDArray

from visdm.crypto import hkdf_sha256
from visdm.errors import InvalidInputError

__all__ = [
    "SEED_BYTES",
    "ChaChaStream",
    "JobRandomness",
    "check_seed",
    "new_job_seed",
    "seed_commitment",
]

#: length of a job seed in bytes (256 bits)
SEED_BYTES = 32
_LABEL = b"visdm/training/v1/"
_NONCE = bytes(8)  # each stream has its own key, so a fixed nonce never repeats a keystream
_UNIT = 2.0**-53


def new_job_seed() -> bytes:
    """A fresh 32-byte job seed from the operating system's CSPRNG."""
    return secrets.token_bytes(SEED_BYTES)


def check_seed(seed: object) -> bytes:
    """Return ``seed`` if it is 32 bytes; otherwise raise :class:`InvalidInputError`."""
    if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
        got = f"{len(seed)} bytes" if isinstance(seed, bytes | bytearray) else type(seed).__name__
        raise InvalidInputError(
            f"a job seed must be {SEED_BYTES} bytes from the node's CSPRNG, got {got}: "
            "draw one with new_job_seed()"
        )
    return bytes(seed)


def seed_commitment(seed: bytes) -> bytes:
    """keccak256 of the seed (32 bytes): what the result commits to, revealing nothing of it."""
    return bytes(keccak(check_seed(seed)))


class ChaChaStream:
    """The ChaCha20 keystream under ``key``, read in order as bytes, uniforms or normals.

    Reads consume the stream: two streams under the same key give the same values only when
    read with the same sequence of calls.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise InvalidInputError(f"a ChaCha20 key is 32 bytes, got {len(key)}")
        self._cipher = ChaCha20.new(key=key, nonce=_NONCE)

    def read(self, n: int) -> bytes:
        """The next ``n`` keystream bytes."""
        return self._cipher.encrypt(bytes(n))

    def uniform(self, n: int) -> NDArray[np.float64]:
        """``n`` uniforms on the open interval (0, 1): 53 random bits each, centred in its cell."""
        words = np.frombuffer(self.read(8 * n), dtype="<u8") >> np.uint64(11)
        return (words.astype(np.float64) + 0.5) * _UNIT

    def normal(self, n: int) -> NDArray[np.float64]:
        """``n`` standard normals by the Box–Muller transform (Box and Muller, 1958), float64."""
        half = (n + 1) // 2
        u = self.uniform(2 * half)
        radius = np.sqrt(-2.0 * np.log(u[:half]))
        angle = (2.0 * math.pi) * u[half:]
        return np.concatenate((radius * np.cos(angle), radius * np.sin(angle)))[:n]

    def permutation(self, n: int) -> NDArray[np.int64]:
        """A uniformly random permutation of ``range(n)`` (sort by 64-bit random keys)."""
        keys = np.frombuffer(self.read(8 * n), dtype="<u8")
        return np.argsort(keys, kind="stable").astype(np.int64)


@dataclass(frozen=True)
class JobRandomness:
    """The independent sub-keys of one job seed (see the module docstring)."""

    init_seed: int
    shuffle_key: bytes = field(repr=False)
    poisson_key: bytes = field(repr=False)
    noise_key: bytes = field(repr=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> JobRandomness:
        """Derive every sub-key of ``seed`` (32 bytes, else :class:`InvalidInputError`)."""
        seed = check_seed(seed)

        def key(use: bytes) -> bytes:
            return hkdf_sha256(seed, info=_LABEL + use)

        return cls(
            init_seed=int.from_bytes(key(b"init")[:8], "little"),
            shuffle_key=key(b"shuffle"),
            poisson_key=key(b"poisson"),
            noise_key=key(b"noise"),
        )

    def shuffle(self) -> ChaChaStream:
        """A new stream for the batch order, from its start."""
        return ChaChaStream(self.shuffle_key)

    def poisson(self) -> ChaChaStream:
        """A new stream for DP-SGD's Poisson sampling, from its start."""
        return ChaChaStream(self.poisson_key)

    def noise(self) -> ChaChaStream:
        """A new stream for DP-SGD's Gaussian noise, from its start."""
        return ChaChaStream(self.noise_key)
