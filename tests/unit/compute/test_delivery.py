"""Model delivery: only the consumer opens it, only the proposal's node can have signed it."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_utils.crypto import keccak

from visdm.accounts import UnlockedAccount, create_account, load_account
from visdm.compute.delivery import open_model, seal_model
from visdm.errors import CiphertextFormatError, DecryptionError, InvalidInputError, SignatureError

pytestmark = pytest.mark.unit

MARKET = "0x" + "12" * 20
MODEL = b"safetensors bytes " * 1000


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> dict[str, UnlockedAccount]:
    keystore = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("node", "consumer", "other"):
        create_account(keystore, name, "pw", scrypt_n=1024)
        out[name] = load_account(keystore, name, "pw")
    return out


def sealed(people, proposal_id: int = 7, signer: str = "node"):  # type: ignore[no-untyped-def]
    return seal_model(
        MODEL,
        proposal_id=proposal_id,
        consumer_key=people["consumer"].x25519_public,
        node=people[signer],
        chain_id=31337,
        market=MARKET,
    )


def opened(people, envelope: bytes, **overrides):  # type: ignore[no-untyped-def]
    kwargs = {
        "consumer": people["consumer"],
        "proposal_id": 7,
        "expected_signer": people["node"].address,
        "expected_model_hash": bytes(keccak(MODEL)),
        "chain_id": 31337,
        "market": MARKET,
    } | overrides
    return open_model(envelope, **kwargs)


def test_round_trip(people) -> None:
    box = sealed(people)
    assert box.model_hash == bytes(keccak(MODEL))
    assert box.signer == people["node"].address
    assert MODEL not in box.envelope
    assert opened(people, box.envelope) == MODEL


def test_only_the_consumer_opens_it(people) -> None:
    with pytest.raises(DecryptionError):
        opened(people, sealed(people).envelope, consumer=people["other"])


def test_tampered_ciphertext_is_refused(people) -> None:
    envelope = bytearray(sealed(people).envelope)
    envelope[-5] ^= 1
    with pytest.raises(SignatureError):  # the signed sealed hash no longer matches
        opened(people, bytes(envelope))


def test_signed_by_another_node_or_for_another_market_or_chain(people) -> None:
    with pytest.raises(SignatureError, match="not by the proposal's node"):
        opened(people, sealed(people, signer="other").envelope)
    box = sealed(people).envelope
    with pytest.raises(SignatureError):
        opened(people, box, market="0x" + "34" * 20)
    with pytest.raises(SignatureError):
        opened(people, box, chain_id=1)


def test_wrong_proposal_or_committed_hash(people) -> None:
    box = sealed(people).envelope
    with pytest.raises(InvalidInputError, match="not proposal 8"):
        opened(people, box, proposal_id=8)
    with pytest.raises(InvalidInputError, match="differs from the committed"):
        opened(people, box, expected_model_hash=b"\x00" * 32)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda e: e[:5],
        lambda e: b"XXXX" + e[4:],
        lambda e: e[:13] + b"\xff\xff\xff\xff" + e[17:],
        lambda e: e[:17] + b"}" + e[18:],
    ],
)
def test_malformed_envelopes(people, mangle) -> None:
    with pytest.raises(CiphertextFormatError):
        opened(people, mangle(sealed(people).envelope))


def test_negative_proposal_id(people, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        sealed(people, proposal_id=-1)
