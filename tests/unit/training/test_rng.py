"""Job seeds, their commitment, the HKDF sub-keys and the ChaCha20 streams read from them."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from eth_utils.crypto import keccak
from scipy import stats

from tests.unit.training.conftest import SEED
from visdm.errors import InvalidInputError
from visdm.training import new_job_seed, seed_commitment
from visdm.training._rng import ChaChaStream, JobRandomness

pytestmark = pytest.mark.unit

# ChaCha20 with an all-zero key and nonce, block 0 (RFC 8439 A.1 test vector 1)
ZERO_KEY_BLOCK_0 = bytes.fromhex(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
)


def test_the_stream_is_the_chacha20_keystream() -> None:
    stream = ChaChaStream(bytes(32))
    assert stream.read(40) + stream.read(24) == ZERO_KEY_BLOCK_0


def test_new_seeds_are_32_fresh_bytes() -> None:
    seeds = {new_job_seed() for _ in range(8)}
    assert len(seeds) == 8
    assert all(isinstance(s, bytes) and len(s) == 32 for s in seeds)


def test_the_commitment_is_keccak256_of_the_seed() -> None:
    assert seed_commitment(SEED) == keccak(SEED)
    assert seed_commitment(SEED) != seed_commitment(bytes(32))


@pytest.mark.parametrize(("seed", "got"), [(bytes(16), "16 bytes"), ("ab" * 32, "str")])
def test_the_commitment_refuses_a_seed_of_another_size(seed: Any, got: str) -> None:
    with pytest.raises(InvalidInputError, match=f"must be 32 bytes .*got {got}"):
        seed_commitment(seed)


def test_sub_keys_are_distinct_deterministic_and_hidden_from_repr() -> None:
    keys = JobRandomness.from_seed(SEED)
    assert keys == JobRandomness.from_seed(SEED)
    assert keys != JobRandomness.from_seed(bytes(32))
    derived = {keys.shuffle_key, keys.poisson_key, keys.noise_key, SEED}
    assert len(derived) == 4 and all(len(k) == 32 for k in derived)
    assert 0 <= keys.init_seed < 2**64
    assert keys.noise_key.hex() not in repr(keys) and "noise_key" not in repr(keys)


def test_a_fresh_stream_starts_over() -> None:
    keys = JobRandomness.from_seed(SEED)
    np.testing.assert_array_equal(keys.noise().normal(10), keys.noise().normal(10))
    stream = keys.noise()
    assert not np.array_equal(stream.normal(10), stream.normal(10))
    assert not np.array_equal(keys.noise().uniform(10), keys.poisson().uniform(10))


def test_uniforms_are_uniform_on_the_open_interval() -> None:
    u = ChaChaStream(JobRandomness.from_seed(SEED).poisson_key).uniform(100_000)
    assert u.dtype == np.float64 and u.min() > 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 0.01


@pytest.mark.parametrize("n", [1, 2, 7, 100_001])
def test_normals_are_standard_normal_float64(n: int) -> None:
    z = ChaChaStream(JobRandomness.from_seed(SEED).noise_key).normal(n)
    assert z.shape == (n,) and z.dtype == np.float64 and np.isfinite(z).all()
    if n > 1000:
        assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
        assert stats.kstest(z, "norm").pvalue > 0.01


def test_a_permutation_has_every_index_once() -> None:
    stream = ChaChaStream(JobRandomness.from_seed(SEED).shuffle_key)
    first, second = stream.permutation(1000), stream.permutation(1000)
    assert sorted(first.tolist()) == list(range(1000))
    assert not np.array_equal(first, second)


def test_a_key_of_another_size_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="ChaCha20 key is 32 bytes, got 16"):
        ChaChaStream(bytes(16))


def test_seed_helpers_do_not_import_torch() -> None:
    code = (
        "import sys; from visdm.training import new_job_seed, seed_commitment; "
        "seed_commitment(new_job_seed()); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
