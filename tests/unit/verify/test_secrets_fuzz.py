"""Fuzzing the job secrets reader: any bytes, and any mangling of a real sealed document, open
to the committed seed and keys that were sealed, or are refused in one line — never another
exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.fuzz._harness import assert_one_line, fuzz
from visdm.crypto import derive_x25519_keypair, unwrap_key
from visdm.errors import InvalidInputError
from visdm.verify import JobSecrets, open_job_secrets, seal_job_secrets

pytestmark = pytest.mark.unit

VERIFIER = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
KEYS = derive_x25519_keypair(bytes(range(1, 33)))
SECRETS = JobSecrets(seed=b"\x01" * 32, validation_key=b"\x02" * 32, asset_keys={5: b"\x03" * 32})
SEALED = json.loads(
    seal_job_secrets(SECRETS, proposal_id=3, verifier=VERIFIER, verifier_key=KEYS.public)
)


def _open(data: bytes) -> JobSecrets:
    return open_job_secrets(
        data,
        proposal_id=3,
        verifier=VERIFIER,
        unwrap=lambda w: unwrap_key(w, KEYS.private),
        seed_hash=keccak(SECRETS.seed),
    )


@fuzz(150)
@given(st.binary(max_size=2048))
def test_any_bytes_are_refused_in_one_line(data: bytes) -> None:
    with pytest.raises(InvalidInputError) as info:
        _open(data)
    assert_one_line(info.value)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=80),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=12), st.text(max_size=80), max_size=3),
)


@fuzz(150)
@given(st.sampled_from(sorted(SEALED)), _VALUES)
def test_a_mangled_field_opens_or_is_refused_in_one_line(key: str, value: Any) -> None:
    doc = {**SEALED, key: value}
    try:
        found = _open(json.dumps(doc).encode())
    except InvalidInputError as exc:
        assert_one_line(exc)
    else:
        # whatever opens holds the committed seed and only keys that were sealed
        assert (found.seed, found.validation_key) == (SECRETS.seed, SECRETS.validation_key)
        assert found.asset_keys.items() <= SECRETS.asset_keys.items()
