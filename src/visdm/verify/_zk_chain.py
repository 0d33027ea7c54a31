"""The accuracy proof on chain: ezkl's reusable verifier and ``ZkAccuracyCheck``.

:func:`deploy_zk_check` deploys the verifier (compiled at run time from ezkl's source with the
pinned solcjs), registers the circuit's verifying-key artifact with it and deploys
``ZkAccuracyCheck`` for k samples, bound to a market's results or unbound.
:class:`ZkAccuracyCheckClient` commits a claim, reads the drawn positions and sends the proof
with each drawn sample's Merkle path and label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain.client import ChainClient, TxResult
from visdm.errors import ZkBackendError, ZkInputError
from visdm.merkle import PositionalMerkleTree
from visdm.verify._zk import ZkCircuit, ZkProof, compile_verifier

__all__ = ["ZK_STATUS", "ZkAccuracyCheckClient", "ZkClaim", "ZkDeployment", "deploy_zk_check"]

#: a claim's status, indexed by the contract's ``Status`` enum
ZK_STATUS = ("none", "pending", "accepted", "rejected", "expired")
_STATUS = ZK_STATUS
_NO_MARKET = "0x" + "00" * 20


@dataclass(frozen=True)
class ZkDeployment:
    """Where the verifier and the check live, and what deploying them cost."""

    verifier: str
    check: str
    verifier_code_bytes: int
    gas: dict[str, int]


@dataclass(frozen=True)
class ZkClaim:
    """A claim as the contract holds it."""

    node: str
    draw_block: int
    sample_count: int
    accuracy_bps: int
    status: str
    correct: int
    vka_digest: bytes
    model_hash: bytes
    sample_root: bytes


def deploy_zk_check(
    client: ChainClient,
    account: LocalAccount,
    circuit: ZkCircuit,
    *,
    samples: int,
    market: str | None = None,
) -> ZkDeployment:
    """Deploy the reusable verifier, register ``circuit``'s artifact, deploy the check.

    With ``market`` the check's claims are that market's results (what a ``ResultCourt``
    accepts); without it any caller commits any claim id."""
    compiled = compile_verifier(circuit.verifier_source())
    result = client.transact(
        account, tx={"data": compiled["bytecode"]}, action="deploy the Halo2 verifier"
    )
    address = result.receipt["contractAddress"]
    if address is None:
        raise ZkBackendError("deploying the Halo2 verifier left no contract address")
    verifier = client.w3.eth.contract(address=to_checksum_address(address), abi=compiled["abi"])
    gas = {"deploy_verifier": result.gas_used}
    registered = client.transact(
        account, verifier.functions.registerVka(circuit.vka_words()), action="register the vka"
    )
    gas["register_vka"] = registered.gas_used
    bound = to_checksum_address(market or _NO_MARKET)
    check, deployed = client.deploy(account, "ZkAccuracyCheck", verifier.address, samples, bound)
    gas["deploy_check"] = deployed.gas_used
    code = client.w3.eth.get_code(verifier.address)
    return ZkDeployment(str(verifier.address), str(check), len(code), gas)


class ZkAccuracyCheckClient:
    """Typed calls to one ``ZkAccuracyCheck``."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract(address, "ZkAccuracyCheck")

    def commit(
        self,
        account: LocalAccount,
        claim_id: int,
        *,
        circuit: ZkCircuit,
        model_hash: bytes,
        tree: PositionalMerkleTree,
        accuracy_bps: int,
        circuit_cid: str = "",
    ) -> TxResult:
        """Commit the claim: circuit digest, model hash, sample root and size, accuracy, and
        where the circuit's settings file is stored (``circuit_cid``, only emitted)."""
        fn = self.contract.functions.commit(
            claim_id,
            circuit.vka_digest,
            model_hash,
            tree.root,
            len(tree),
            circuit.public_width,
            circuit.classes,
            accuracy_bps,
            circuit_cid,
        )
        return self.client.transact(account, fn, action="commit the accuracy claim")

    def claim(self, claim_id: int) -> ZkClaim:
        raw = self.client.call(self.contract.functions.claim(claim_id))
        return ZkClaim(
            node=str(raw[0]),
            draw_block=int(raw[1]),
            sample_count=int(raw[2]),
            accuracy_bps=int(raw[3]),
            status=_STATUS[int(raw[6])],
            correct=int(raw[7]),
            vka_digest=bytes(raw[8]),
            model_hash=bytes(raw[9]),
            sample_root=bytes(raw[10]),
        )

    def samples(self) -> int:
        """k: the samples every claim proves, so every circuit's batch."""
        return int(self.client.call(self.contract.functions.samples()))

    def verifier(self) -> str:
        """The reusable Halo2 verifier circuits' artifacts are registered with."""
        return to_checksum_address(str(self.client.call(self.contract.functions.verifier())))

    def circuit_cid(self, claim_id: int, *, from_block: int = 0) -> str | None:
        """Where the node stored the settings file of the circuit it committed (from the
        ``ClaimCommitted`` event); ``None`` when no claim was committed."""
        event = self.contract.events.ClaimCommitted()
        logs = self.client.rpc(
            lambda: event.get_logs(argument_filters={"claimId": claim_id}, from_block=from_block)
        )
        return str(logs[-1]["args"]["circuitCid"]) if logs else None

    def status_of(self, claim_id: int) -> str:
        """``none``, ``pending``, ``accepted``, ``rejected`` or ``expired``."""
        return _STATUS[int(self.client.call(self.contract.functions.statusOf(claim_id)))]

    def market(self) -> str | None:
        """The market whose results the claims are (``None``: unbound)."""
        raw = str(self.client.call(self.contract.functions.market()))
        return None if int(raw, 16) == 0 else to_checksum_address(raw)

    def expire(self, account: LocalAccount, claim_id: int) -> TxResult:
        """Fail a pending claim whose draw can no longer be read (256 blocks on)."""
        fn = self.contract.functions.expire(claim_id)
        return self.client.transact(account, fn, action="expire the accuracy claim")

    def drawn_indices(self, claim_id: int) -> list[int]:
        """The positions the claim must prove, once the block after its commitment exists."""
        return [int(i) for i in self.client.call(self.contract.functions.drawnIndices(claim_id))]

    def min_correct(self, k: int, accuracy_bps: int) -> int:
        return int(self.client.call(self.contract.functions.minCorrect(k, accuracy_bps)))

    def prove(
        self,
        account: LocalAccount,
        claim_id: int,
        proof: ZkProof,
        *,
        circuit: ZkCircuit,
        tree: PositionalMerkleTree,
        indices: Sequence[int],
    ) -> TxResult:
        """Send the proof with the path and label of each drawn sample, in draw order."""
        if len(indices) != proof.k:
            raise ZkInputError(f"{len(indices)} drawn positions for a proof of k={proof.k}")
        opening: tuple[Any, ...] = (
            list(proof.instances),
            circuit.vka_words(),
            proof.proof,
            [tree.proof(i) for i in indices],
            [int(tree.values[i][2]) for i in indices],
        )
        fn = self.contract.functions.prove(claim_id, opening)
        return self.client.transact(account, fn, action="prove the accuracy claim")
