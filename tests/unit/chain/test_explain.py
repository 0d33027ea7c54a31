"""Every contract error the client can meet reads as a sentence with a next step."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from visdm.chain._explain import SENTENCES, explain_revert, sentence_for
from visdm.chain.artifacts import build_info, load_artifact
from visdm.chain.client import decode_revert
from visdm.errors import ContractRevertError

pytestmark = pytest.mark.unit

_SAMPLES: dict[str, Any] = {
    "address": "0x" + "ab" * 20,
    "bool": True,
    "bytes32": b"eu-west".ljust(32, b"\0"),
    "string": "offer must be positive",
}


def _sample(kind: str) -> Any:
    if kind in _SAMPLES:
        return _SAMPLES[kind]
    if kind.startswith(("uint", "int")):
        return 7
    raise AssertionError(f"no sample value for ABI type {kind}: add one")


def _every_error() -> list[tuple[str, dict[str, Any]]]:
    """(artifact, ABI item) of every custom error of every shipped artifact, duplicates too."""
    return [
        (name, item)
        for name in build_info()["contracts"]
        for item in load_artifact(name).abi
        if item.get("type") == "error"
    ]


def test_every_custom_error_of_every_artifact_has_a_sentence() -> None:
    errors = _every_error()
    assert len(errors) > 60  # the market's, the registries', the token's and OpenZeppelin's
    missing = sorted({item["name"] for _, item in errors} - set(SENTENCES))
    assert not missing, f"add a sentence to visdm.chain._explain.SENTENCES for: {missing}"


@pytest.mark.parametrize(("artifact", "item"), _every_error(), ids=lambda v: str(v)[:40])
def test_each_error_decodes_to_one_line_with_its_arguments(
    artifact: str, item: dict[str, Any]
) -> None:
    """The real path: revert data as the contract would return it, through the client's
    decoder; the sentence names the arguments it was given and says what to do."""
    types = [p["type"] for p in item["inputs"]]
    values = [_sample(t) for t in types]
    data = keccak(text=f"{item['name']}({','.join(types)})")[:4] + encode(types, values)
    err = decode_revert(data, action="doIt")
    assert err.error_name == item["name"], artifact
    message = str(err)
    assert message.startswith("doIt refused: ") and message.endswith(f"[{item['name']}]")
    assert "\n" not in message and "{" not in message
    sentence = message.removeprefix("doIt refused: ")
    assert not sentence.startswith("the contract refused with " + item["name"])  # not generic
    assert ":" in sentence  # what was wrong: what to do
    if "address" in types:
        assert "0x" + "ab" * 20 in message.lower()  # the account it is about, checksummed


def test_wrong_status_says_the_state_and_the_next_command() -> None:
    data = keccak(text="TrainingMarketWrongStatus(uint256,uint8)")[:4] + encode(
        ["uint256", "uint8"], [2, 3]
    )
    message = str(decode_revert(data, action="startTraining"))
    assert message.startswith("startTraining refused: proposal 2 is countered")
    assert "visdm accept-counter 2" in message and "visdm reclaim 2" in message


def test_amounts_are_tokens_and_times_are_dates() -> None:
    balance = sentence_for(
        "ERC20InsufficientBalance",
        {"sender": "0x" + "12" * 20, "balance": 5 * 10**17, "needed": 2 * 10**18},
    )
    assert "0.5 tokens (500000000000000000 wei)" in balance and "2 tokens" in balance
    assert "get more of the payment token" in balance
    claim = sentence_for("TrainingMarketClaimPeriodOpen", {"proposalId": 4, "claimDeadline": 0})
    assert "1970-01-01 00:00:00 UTC" in claim and "sweep after that" in claim


def test_the_voting_window_refusal_names_the_window() -> None:
    message = sentence_for(
        "TrainingMarketInvalidTerms", {"reason": "voting deadline outside the allowed window"}
    )
    assert "--voting-period" in message and "30 days" in message


def test_reason_strings_panics_and_unknown_selectors() -> None:
    reason = decode_revert(bytes.fromhex("08c379a0") + encode(["string"], ["no\nway"]))
    assert str(reason) == (
        "call refused: the contract refused with the reason 'no\\nway': correct the input it "
        "names [Error]"
    )
    panic = decode_revert(bytes.fromhex("4e487b71") + encode(["uint256"], [0x11]), action="x")
    assert "arithmetic overflow" in str(panic) and "[Panic]" in str(panic)
    unknown = decode_revert(b"\xde\xad\xbe\xef" + bytes(32))
    assert "update it" in str(unknown) and unknown.error_name == "UnknownError"
    # a known selector with a payload of another shape is unknown, not a decoder traceback
    short = decode_revert(keccak(text="TrainingMarketUnknownProposal(uint256)")[:4] + b"\x01")
    assert short.error_name == "UnknownError"


def test_an_error_outside_the_table_still_reads_as_one_line() -> None:
    err = ContractRevertError("SomeNewError", {"x": 1}, action="go")
    assert explain_revert(err) == (
        "go refused: the contract refused with SomeNewError(x=1): see the contract's NatSpec "
        "[SomeNewError]"
    )
    # arguments of another shape than the table expects do not break the message
    assert sentence_for("TrainingMarketVotingClosed", {}) == (
        "the contract refused with TrainingMarketVotingClosed"
    )
