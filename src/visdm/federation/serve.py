"""Federated rounds run by the nodes themselves (``visdm federation serve``).

Each node of a federation runs this loop with its own account: the coordinator's part when it
coordinates, the member's part when it is a member (a node may be both). The chain is the
rendezvous; no node calls another:

1. a proposal naming the federation is **approved** → the coordinator prices its members'
   shares, makes the round's CA and picks its SuperLink's port, stores the **round document**
   (signed quote, shares and fees, SuperLink address, CA certificate) and announces its CID on
   the ``Federation`` contract; the consumer's ``visdm start`` reads the quote from there;
2. the consumer starts training → each member with a share checks the document, decrypts its
   share with its own keys (:func:`~.market_round.prepare_region`), makes a SuperNode key and
   **binds it on chain** (``bindKey``: the member sent it, so no signature is needed);
3. every member with a share bound a key → the coordinator starts its SuperLink with exactly
   those keys and runs the round in the background; each member (re)starts its SuperNode
   against the announced address, trusting only the announced CA;
4. the round ends → the coordinator commits it (:func:`~.market_round.commit_outcome`); when
   the market released the training cost it collects the members' fees; a member stops its
   SuperNode, deletes its decrypted share and withdraws its fee.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus, Quote
from visdm.chain.deployment import Deployment
from visdm.errors import FederationRoundError, InvalidInputError, VisdmError
from visdm.jsonsafe import load_untrusted_object
from visdm.storage import ContentStore
from visdm.types import Address

from ._pki import RoundTLS, SuperNodeKey, make_round_tls, new_supernode_key
from .market_round import (
    RegionShare,
    commit_outcome,
    load_coordinator,
    open_validation,
    prepare_region,
    quote_federation,
    run_round,
)
from .membership import load_federation
from .processes import (
    Federation,
    SuperNodeProcess,
    _free_port,
    start_supernode,
    stop_supernode,
)
from .registry import write_public_keys

__all__ = [
    "FederationCoordinator",
    "FederationMember",
    "NodeHandles",
    "RoundDocument",
    "read_round",
    "serve",
]

log = logging.getLogger("visdm.federation.serve")

ROUND_KIND = "visdm-federated-round"
_MAX_ROUND_BYTES = 1 << 20
_RELEASED = (ProposalStatus.COMPLETED, ProposalStatus.WTP_MISSED)


@dataclass(frozen=True, slots=True)
class NodeHandles:
    """A node's chain, deployment, store and unlocked account."""

    client: ChainClient
    deployment: Deployment
    store: ContentStore
    account: UnlockedAccount


@dataclass(frozen=True, slots=True)
class RoundDocument:
    """What the coordinator announces for one round."""

    proposal_id: int
    federation: Address
    quote: Quote
    signature: bytes
    shares: tuple[RegionShare, ...]
    fees: tuple[int, ...]
    superlink: str
    ca_cert: bytes

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": 1,
                "kind": ROUND_KIND,
                "proposalId": self.proposal_id,
                "federation": self.federation,
                "quote": {
                    "trainingCost": str(self.quote.training_cost),
                    "maxDuration": self.quote.max_duration,
                    "expiry": self.quote.expiry,
                },
                "signature": "0x" + self.signature.hex(),
                "shares": [
                    {
                        "node": s.node,
                        "region": s.region,
                        "assets": list(s.asset_ids),
                        "samples": s.samples,
                        "fee": str(f),
                    }
                    for s, f in zip(self.shares, self.fees, strict=True)
                ],
                "superlink": self.superlink,
                "caCert": self.ca_cert.decode(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def parse(cls, raw: bytes, *, proposal_id: int, federation: str) -> RoundDocument:
        """Read a round document, refusing (in one line) one that is not for this round."""
        doc = load_untrusted_object(raw, what="the round document", max_bytes=_MAX_ROUND_BYTES)
        try:
            if doc.get("version") != 1 or doc.get("kind") != ROUND_KIND:
                raise InvalidInputError(f"not a version 1 {ROUND_KIND!r} document")
            if int(doc["proposalId"]) != proposal_id:
                raise InvalidInputError(f"it is for proposal {doc['proposalId']}")
            if to_checksum_address(str(doc["federation"])) != to_checksum_address(federation):
                raise InvalidInputError(f"it is for federation {doc['federation']}")
            q = doc["quote"]
            shares = tuple(
                RegionShare(
                    Address(to_checksum_address(str(s["node"]))),
                    str(s["region"]),
                    tuple(int(a) for a in s["assets"]),
                    int(s["samples"]),
                )
                for s in doc["shares"]
            )
            cert = str(doc["caCert"]).encode()
            if not cert.startswith(b"-----BEGIN CERTIFICATE-----"):
                raise InvalidInputError("its caCert is not a PEM certificate")
            return cls(
                proposal_id,
                Address(to_checksum_address(str(doc["federation"]))),
                Quote(proposal_id, int(q["trainingCost"]), int(q["maxDuration"]), int(q["expiry"])),
                bytes.fromhex(str(doc["signature"]).removeprefix("0x")),
                shares,
                tuple(int(s["fee"]) for s in doc["shares"]),
                str(doc["superlink"]),
                cert,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"proposal {proposal_id}'s round document is malformed ({exc!r})"
            ) from None
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"proposal {proposal_id}'s round document was refused: {exc}"
            ) from None


def read_round(
    client: ChainClient, store: ContentStore, federation: str, proposal_id: int
) -> RoundDocument | None:
    """The round document the federation's coordinator announced for ``proposal_id``."""
    from visdm.chain._federation import FederationContract

    cid = FederationContract(client, federation).announced_round(proposal_id)
    if cid is None:
        return None
    raw = store.get(cid, max_bytes=_MAX_ROUND_BYTES)
    return RoundDocument.parse(raw, proposal_id=proposal_id, federation=federation)


class _ProposalWatch:
    """The proposals that name one federation, read from the chain's logs incrementally: a
    loop that polls every few seconds must not rescan the market's history each time."""

    def __init__(self, client: ChainClient, deployment: Deployment, federation: str) -> None:
        self.client, self.federation = client, federation
        self.market = deployment.training_market(client)
        self.next_block = deployment.contracts["TrainingMarket"].block_number
        self.ids: list[int] = []

    def __call__(self) -> list[int]:
        head = int(self.client.rpc(lambda: self.client.w3.eth.block_number))
        if head >= self.next_block:
            found = self.market.logs(
                "ProposalCreated",
                from_block=self.next_block,
                to_block=head,
                where={"node": self.federation},
            )
            self.ids = sorted({*self.ids, *(int(e["args"]["proposalId"]) for e in found)})
            self.next_block = head + 1
        return self.ids


class _Part:
    """What both parts of a node hold: its handles, the federation and its proposals."""

    def __init__(self, node: NodeHandles, federation: str) -> None:
        self.client, self.deployment = node.client, node.deployment
        self.store, self.account = node.store, node.account
        self.view = load_federation(self.client, self.deployment, federation)
        self.federation = str(self.view.record.address)
        self._watch = _ProposalWatch(self.client, self.deployment, self.federation)


class FederationCoordinator(_Part):
    """The coordinator's part: announce, start the SuperLink on the bound keys, commit."""

    def __init__(
        self,
        node: NodeHandles,
        federation: str,
        workdir: Path,
        *,
        price_per_gflop: int,
        host: str = "127.0.0.1",
        sandbox: bool = True,
        num_rounds: int = 2,
    ) -> None:
        super().__init__(node, federation)
        self.workdir = workdir
        self.price_per_gflop, self.host = price_per_gflop, host
        self.sandbox, self.num_rounds = sandbox, num_rounds
        self._rounds: dict[int, tuple[RoundDocument, RoundTLS]] = {}
        self._running: dict[int, threading.Thread] = {}
        self.collected: set[int] = set()  # rounds whose members' fees were booked
        self.outcomes: dict[int, dict[str, Any]] = {}

    def poll(self) -> None:
        market = self.deployment.training_market(self.client)
        for pid in self._watch():
            record = market.proposal(pid)
            try:
                if record.status == ProposalStatus.APPROVED and pid not in self._rounds:
                    self._announce(pid)
                elif record.status == ProposalStatus.TRAINING and pid not in self._running:
                    self._maybe_start(pid)
                elif record.status in _RELEASED and record.deadline == 0:
                    self._collect(pid)
            except VisdmError as exc:  # one round's trouble must not stop the others
                log.warning("federation %s, proposal %d: %s", self.federation, pid, exc)

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the rounds running in the background (tests, and a stopping node)."""
        for thread in list(self._running.values()):
            thread.join(timeout_s)

    def _announce(self, pid: int) -> None:
        ctx = load_coordinator(self.client, self.deployment, self.store, self.account, pid)
        quote, signature, shares, fees = quote_federation(ctx, price_per_gflop=self.price_per_gflop)
        tls = make_round_tls(self.workdir / str(pid) / "tls", host=self.host)
        doc = RoundDocument(
            pid,
            Address(self.federation),
            quote,
            signature,
            tuple(shares),
            tuple(fees),
            f"{self.host}:{_free_port(self.host)}",
            tls.ca_cert.read_bytes(),
        )
        cid = self.store.put(doc.to_json(), pin=True)
        self.view.contract.announce_round(self.account.local_account, pid, cid)
        self._rounds[pid] = (doc, tls)
        log.info("proposal %d: round announced (%s), quote %d", pid, cid, quote.training_cost)

    def _maybe_start(self, pid: int) -> None:
        if pid not in self._rounds:
            raise FederationRoundError(
                f"proposal {pid} trains but this coordinator holds no round of it (restarted?): "
                "the consumer may reclaim after the deadline"
            )
        doc, tls = self._rounds[pid]
        needed = {s.node: s for s in doc.shares if s.samples}
        bound = {m: k for m, k in self.view.contract.bound_keys(pid).items() if m in needed}
        if len(bound) < len(needed):
            return  # members still preparing: the next poll looks again
        keys = write_public_keys(self.workdir / str(pid) / "named", list(bound.values()))
        thread = threading.Thread(
            target=self._run, args=(pid, doc, tls, keys), name=f"federated-{pid}", daemon=True
        )
        self._running[pid] = thread
        thread.start()

    def _run(self, pid: int, doc: RoundDocument, tls: RoundTLS, keys: list[Path]) -> None:
        workdir = self.workdir / str(pid)
        try:
            ctx = load_coordinator(self.client, self.deployment, self.store, self.account, pid)
            validation = workdir / "validation.npz"
            open_validation(ctx.account, ctx.store, ctx.checked, validation)
            port = int(doc.superlink.rsplit(":", 1)[1])
            with Federation(
                workdir / "flower", named_keys=keys, host=self.host, tls=tls, port=port
            ) as fed:
                outcome = run_round(
                    fed,
                    ctx.checked,
                    ctx.record,
                    doc.shares,
                    validation_path=validation,
                    num_rounds=self.num_rounds,
                )
            self.outcomes[pid] = commit_outcome(ctx, doc.shares, doc.fees, outcome)
            log.info("proposal %d: federated round %s", pid, outcome.status)
        except Exception as exc:
            log.error("proposal %d: the federated round failed: %s", pid, exc)
            self.outcomes[pid] = {"status": "error", "reason": str(exc)}

    def _collect(self, pid: int) -> None:
        fed = self.view.contract
        if pid in self.collected or not fed.fees_of(pid):
            return
        try:
            fed.collect(self.account.local_account, pid)
        except VisdmError as exc:
            if "FederationNotReleased" not in str(exc):
                raise
        self.collected.add(pid)


class FederationMember(_Part):
    """A member's part: prepare its share, bind its key, run its SuperNode, withdraw its fee."""

    def __init__(
        self, node: NodeHandles, federation: str, workdir: Path, *, sandbox: bool = True
    ) -> None:
        super().__init__(node, federation)
        self.workdir, self.sandbox = workdir, sandbox
        # rounds whose share this member decrypted and whose key it bound
        self.prepared: dict[
            int, tuple[RoundDocument, RegionShare, SuperNodeKey, dict[str, Any]]
        ] = {}
        self._skipped: set[int] = set()
        self.supernodes: dict[int, SuperNodeProcess] = {}

    def poll(self) -> None:
        market = self.deployment.training_market(self.client)
        for pid in self._watch():
            if pid in self._skipped:
                continue
            record = market.proposal(pid)
            try:
                if record.status == ProposalStatus.TRAINING:
                    self._train(pid)
                elif pid in self.prepared:
                    self._finish(pid)
            except VisdmError as exc:
                log.warning("federation %s, proposal %d: %s", self.federation, pid, exc)
        if self.view.contract.owed_to(self.account.address):
            self.view.contract.withdraw(self.account.local_account)

    def stop(self) -> None:
        for pid in list(self.supernodes):
            stop_supernode(self.supernodes.pop(pid))

    def _train(self, pid: int) -> None:
        if pid not in self.prepared:
            doc = read_round(self.client, self.store, self.federation, pid)
            if doc is None:
                return
            mine = [s for s in doc.shares if s.node == self.account.address and s.samples]
            if not mine:
                self._skipped.add(pid)
                return
            from visdm.proposals import load_checked_proposal

            market = self.deployment.training_market(self.client)
            checked = load_checked_proposal(market, self.deployment, self.client, self.store, pid)
            workdir = self.workdir / str(pid)
            config: dict[str, Any] = {
                **prepare_region(self.account, self.store, checked, mine[0], workdir / "region"),
                "sandbox": self.sandbox,
            }
            key = new_supernode_key(workdir / "keys", mine[0].region)
            (workdir / "ca.pem").write_bytes(doc.ca_cert)
            self.view.contract.bind_key(self.account.local_account, pid, key.public_openssh())
            self.prepared[pid] = (doc, mine[0], key, config)
            log.info(
                "proposal %d: %d samples of region %s ready", pid, mine[0].samples, mine[0].region
            )
        doc, share, key, config = self.prepared[pid]
        node = self.supernodes.get(pid)
        if node is None or not node.running():  # not started yet, or came before the SuperLink
            self.supernodes[pid] = start_supernode(
                self.workdir / str(pid),
                share.region,
                superlink=doc.superlink,
                ca_cert=self.workdir / str(pid) / "ca.pem",
                key=key,
                node_config=config,
                max_wait_s=30.0,
            )

    def _finish(self, pid: int) -> None:
        node = self.supernodes.pop(pid, None)
        if node is not None:
            stop_supernode(node)
        # the decrypted share never outlives its round
        shutil.rmtree(self.workdir / str(pid) / "region", ignore_errors=True)
        del self.prepared[pid]


def serve(
    node: NodeHandles,
    federation: str,
    workdir: Path,
    *,
    stop: threading.Event,
    poll_s: float = 2.0,
    price_per_gflop: int = 10**15,
    sandbox: bool = True,
) -> None:
    """Play this node's parts in ``federation`` (coordinator, member or both) until ``stop``."""
    view = load_federation(node.client, node.deployment, federation)
    me = node.account.address
    coordinating, member = view.record.coordinator == me, me in view.record.members
    if not coordinating and not member:
        raise InvalidInputError(
            f"{me} neither coordinates nor is a member of federation {view.record.address}"
        )
    parts: list[FederationCoordinator | FederationMember] = []
    if coordinating:
        parts.append(
            FederationCoordinator(
                node, federation, workdir / "coordinator", price_per_gflop=price_per_gflop,
                sandbox=sandbox,
            )
        )  # fmt: skip
    if member:
        parts.append(FederationMember(node, federation, workdir / "member", sandbox=sandbox))
    try:
        while not stop.is_set():
            for part in parts:
                part.poll()
            stop.wait(poll_s)
    finally:
        for part in parts:
            if isinstance(part, FederationMember):
                part.stop()
            else:
                part.wait(timeout_s=60)
