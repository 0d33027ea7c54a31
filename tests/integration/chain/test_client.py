"""ChainClient against a real anvil: transactions, nonces, revert decoding, failures."""

from __future__ import annotations

import socket
import threading

import pytest
from eth_account.signers.local import LocalAccount

from tests.conftest import role_account
from visdm.chain.client import ChainClient
from visdm.errors import (
    ChainNotRunningError,
    ChainTimeoutError,
    ContractRevertError,
    InvalidInputError,
    PanicError,
    RevertReasonError,
    WrongChainError,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def probe(chain: ChainClient, stranger: LocalAccount):  # type: ignore[no-untyped-def]
    address, _ = chain.deploy(stranger, "RevertProbe")
    return chain.contract(address, "RevertProbe")


def test_custom_error_is_decoded_with_name_and_arguments(chain, stranger, probe) -> None:
    tag = b"\x01" * 32
    with pytest.raises(ContractRevertError) as info:
        chain.transact(stranger, probe.functions.failCustom(42, tag))
    err = info.value
    assert err.error_name == "RevertProbeCustom"
    assert err.contract == "RevertProbe"
    assert err.error_args == {"who": stranger.address, "amount": 42, "tag": tag}
    assert str(err).startswith("failCustom refused: the probe refused ")
    assert str(err).endswith("[RevertProbeCustom]")
    assert probe.functions.counter().call() == 0, "a reverted call must change nothing"


def test_reason_string_and_panic_and_empty_revert(chain, stranger, probe) -> None:
    with pytest.raises(RevertReasonError) as reason:
        chain.transact(stranger, probe.functions.failReason())
    assert reason.value.reason == "probe: plain reason"
    with pytest.raises(PanicError) as panic:
        chain.transact(stranger, probe.functions.failPanic(0))
    assert panic.value.code == 0x12
    with pytest.raises(RevertReasonError, match="failEmpty refused"):
        chain.transact(stranger, probe.functions.failEmpty())


def test_revert_in_a_mined_transaction_is_decoded_by_replay(chain, stranger, probe) -> None:
    # Force the transaction on chain by skipping estimation (explicit gas), so the revert
    # happens in a mined block and must be recovered by replaying the call.
    with pytest.raises(ContractRevertError) as info:
        chain.transact(stranger, probe.functions.maybeFail(True), tx={"gas": 200_000})
    assert info.value.error_name == "RevertProbeCustom"
    # the nonce was consumed by the mined failure; the next transaction still goes through
    result = chain.transact(stranger, probe.functions.maybeFail(False))
    assert result.gas_used > 0
    assert probe.functions.counter().call() == 1


def test_gas_headroom_never_asks_for_more_than_a_block(
    chain, stranger, probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction whose estimate fits a block, but not with the usual 25 % headroom, goes out
    with the block's limit (a 27M-gas proposal on a 30M-gas chain was refused outright)."""
    import visdm.chain.client as client_module

    w3 = chain.w3
    estimate = probe.functions.maybeFail(False).estimate_gas({"from": stranger.address})
    block_limit = int(estimate * 1.1)
    original = int(w3.eth.get_block("latest")["gasLimit"])
    monkeypatch.setattr(client_module, "_SMALLEST_BLOCK_GAS", 0)
    w3.provider.make_request("evm_setBlockGasLimit", [hex(block_limit)])  # type: ignore[arg-type]
    try:
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        result = chain.transact(stranger, probe.functions.maybeFail(False))
        sent = w3.eth.get_transaction(result.tx_hash)["gas"]
        assert estimate <= sent <= block_limit < estimate * 1.25
    finally:
        w3.provider.make_request("evm_setBlockGasLimit", [hex(original)])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert probe.functions.counter().call() == 1


def test_read_call_revert_is_decoded(chain, stranger, probe) -> None:
    with pytest.raises(PanicError):
        chain.call(probe.functions.failPanic(0))


def test_nonces_follow_many_transactions(chain, stranger, probe) -> None:
    for _ in range(5):
        chain.transact(stranger, probe.functions.maybeFail(False))
    assert probe.functions.counter().call() == 5
    chain.reset_nonces()
    chain.transact(stranger, probe.functions.maybeFail(False))
    assert probe.functions.counter().call() == 6


def test_one_nonce_sequence_per_account_across_clients_and_threads(
    chain: ChainClient, probe
) -> None:  # type: ignore[no-untyped-def]
    """A node sends from two threads, each with its own client (attestation beside
    training): the nonces they hand out never collide."""
    sender = role_account("nonces/two-threads")
    chain.fund_from_dev_faucet(sender.address)
    clients = [ChainClient(chain.rpc_url) for _ in range(2)]
    before = probe.functions.counter().call()
    errors: list[BaseException] = []

    def send(client: ChainClient) -> None:
        fn = client.contract(probe.address, "RevertProbe").functions.maybeFail(False)
        try:
            for _ in range(8):
                client.transact(sender, fn)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert probe.functions.counter().call() == before + 16


def test_the_nonce_cache_trusts_the_chain_again_after_it_lost_blocks(
    chain: ChainClient, stranger: LocalAccount, probe
) -> None:  # type: ignore[no-untyped-def]
    w3 = chain.w3
    fn = probe.functions.maybeFail(False)
    chain.transact(stranger, fn)
    saved = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    chain.transact(stranger, fn)
    chain.transact(stranger, fn)
    assert w3.provider.make_request("evm_revert", [saved])["result"]  # type: ignore[arg-type]
    # nothing is in flight, so the chain's count wins over the two nonces it forgot: the
    # next transaction is mined instead of waiting behind a gap
    before = probe.functions.counter().call()
    ChainClient(chain.rpc_url, tx_timeout_s=10).transact(stranger, fn)
    chain.transact(stranger, fn)
    assert probe.functions.counter().call() == before + 2


def test_wrong_chain_id_is_refused(session_chain: ChainClient) -> None:
    with pytest.raises(WrongChainError, match=r"chain id 31337.*chain id 1"):
        ChainClient(session_chain.rpc_url, expected_chain_id=1)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_node_listening_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ChainNotRunningError, match="visdm chain up"):
        ChainClient(url, timeout_s=2)


def test_rpc_timeout_is_reported() -> None:
    # A socket that accepts connections but never answers.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        with pytest.raises(ChainTimeoutError, match="did not answer in time"):
            ChainClient(f"http://127.0.0.1:{port}", timeout_s=0.5)


def test_dev_faucet_only_tops_up_poor_accounts(chain: ChainClient, stranger) -> None:
    assert chain.is_dev_chain
    assert chain.fund_from_dev_faucet(stranger.address) is False  # already funded
    fresh = role_account("never-funded")
    assert chain.balance(fresh.address) == 0
    assert chain.fund_from_dev_faucet(fresh.address) is True
    assert chain.balance(fresh.address) >= 10**19


def test_time_moves_only_on_dev_chains(chain: ChainClient, monkeypatch: pytest.MonkeyPatch) -> None:
    before = chain.latest_timestamp()
    assert chain.advance_time(3600) >= before + 3600
    monkeypatch.setattr(ChainClient, "is_dev_chain", property(lambda self: False))
    with pytest.raises(InvalidInputError, match="not a local dev chain"):
        chain.advance_time(1)


def test_the_chain_id_is_asked_once_per_client_not_before_every_call(
    chain: ChainClient, stranger: LocalAccount, probe
) -> None:  # type: ignore[no-untyped-def]
    client = ChainClient(chain.rpc_url, expected_chain_id=chain.chain_id)
    posts: list[bytes] = []
    session = client.w3.provider._request_session_manager  # type: ignore[attr-defined]
    post = session.make_post_request

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        posts.append(kwargs.get("data", args[1] if len(args) > 1 else b""))
        return post(*args, **kwargs)

    session.make_post_request = counting
    contract = client.contract(probe.address, "RevertProbe")
    for _ in range(5):
        assert contract.functions.counter().call() == 0
    client.transact(stranger, contract.functions.maybeFail(False))
    asked = [p for p in posts if b"eth_chainId" in p]
    assert len(asked) <= 1, f"{len(asked)} eth_chainId requests for 5 calls and a transaction"
    assert sum(b"eth_call" in p for p in posts) >= 5
