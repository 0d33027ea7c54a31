"""Gas per marketplace operation on a real anvil, beside the OpenZeppelin / Uniswap anchors.

Run: ``python benchmarks/gas.py [--quick] [--json]``. Gas is deterministic for a given chain
state: each figure is one measurement (a median where several equal claims are measured).

Anchors (measured by others, not in this run — a gas figure does not depend on the machine):
* OpenZeppelin ``Votes.delegate()``: ≈ 92.5k gas average (OpenZeppelin Contracts PR #4418);
* Uniswap ``MerkleDistributor.claim`` at 100k leaves: ≈ 78.6k gas average (one claim per
  transaction, tokens transferred to a fresh account).

The chain is anvil at its latest hardfork, so EIP-7623's calldata floor applies: a transaction
pays at least 21,000 + 10 gas per calldata token (a zero byte is one token, any other byte
four). A claim carries a Merkle proof; a row priced by the floor would say so. The market is
deployed with ``MarketParameters(min_batch_size=1, min_selection_samples=1,
min_selection_providers=1)`` so that the one-asset proposals the baselines need are allowed.

Setup (thousands of providers, assets, delegations and votes) is sent unsigned from impersonated
accounts and mined in one block per phase (:class:`Bulk`), each phase checked by the events it
must emit; every measured transaction is signed and mined alone through the SDK wrappers.

How each row is measured:
* ``registerAsset`` at 10 / 10,000 / 1,000,000 samples, one key node, after a warm-up;
* ``delegate``: a first delegation; ``vote``: a first vote on a proposal;
* ``propose`` per selected asset: (proposing the K-asset campaign selection below − proposing 1
  asset) / (K − 1); the K-asset total beside a 30M-gas block (its gas used: it is sent with
  the block limit raised, as the SDK's gas limit adds headroom to the estimate);
* ``tally`` per asset: (tally of N assets − tally of 1) / (N − 1) in one batch (the last batch
  may have any size), each owner voting directly; per hop: the extra gas when every vote arrives
  through h delegation hops, / (N·h); per asset leaving the round: the same with every owner
  rejecting (its exclusion bit is written);
* ``startTraining``, ``submitResult`` of the campaign proposal;
* claims in a P-payee campaign (P = 100,000; 10,000 at ``--quick``). A real proposal selects K
  Active assets; the claimed ones are owned by distinct providers never paid before. Its payout
  tree has P leaves: the K real ``(position, assetId, amount)`` leaves plus P − K leaves at
  positions K..P−1 as a P-asset selection would add (never claimed: this proposal selected K),
  so every payout proof has the full depth of a P-leaf tree. A claim checks its asset against
  the ids the market stored at ``propose``, eight to a storage word, so its gas does not depend
  on the selection size beyond which word it reads. Every claim is measured as sent, built by
  ``visdm.market.claim_for``. (a) single ``claim`` transactions: first claim in a bitmap word
  and into a touched word, fresh owner and owner with a credit, and their campaign average
  (1 first + 255 touched per word); (b) ``claimMany`` of 32 (all 8 batches of one word) and of
  256 (one word) fresh owners, per claim; (c) a provider claiming its asset in 10 proposals in
  one ``claimMany`` (into touched words) plus one ``withdraw``, per claim; and a one-time
  payee's claim (in a batch of 256) plus its own ``withdraw``;
* ``withdraw`` to an account holding no tokens yet and to one that does;
* the deployed TrainingMarket's runtime bytecode beside EIP-170's 24,576-byte limit;
* a collective's operations (``_collective_gas.py``) and a federated proposal beside the same
  round named to one node (``_federation_gas.py``), each on a marketplace of its own.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.contract import Contract

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _collective_gas import collective_rows
from _federation_gas import federation_rows
from _harness import Row, emit, parse_args
from visdm.chain.anvil import start_anvil
from visdm.chain.client import _GAS_HEADROOM, _GAS_MARGIN, ChainClient, TxResult
from visdm.chain.contracts import (
    REJECT_ASK,
    ClaimRequest,
    MarketParameters,
    ProposalTerms,
    Quote,
    ResultCommitment,
    region_name,
)
from visdm.chain.deployment import deploy_marketplace
from visdm.market import build_payout_tree, claim_for, sign_quote
from visdm.merkle import StandardMerkleTree
from visdm.types import Role

OZ_DELEGATE = 92_500
UNISWAP_CLAIM = 78_600
EIP170_LIMIT = 24_576
BLOCK_GAS = 30_000_000  # anvil's block gas limit
TX_GAS_CAP = 2**24  # EIP-7825 (Osaka): the most gas one transaction may use on mainnet
TX_BASE = 21_000
TOKEN_STANDARD, TOKEN_FLOOR = 4, 10  # EIP-7623 gas per calldata token
IDS_PER_WORD = 8  # selected asset ids packed to a storage word at propose
WORD = 256  # claims per bitmap word
TALLY_BATCH = 1024  # a multiple of 256, as every batch but the last must be
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def account(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(keccak(text=f"visdm-bench/{name}"))
    return acct


def calldata_tokens(data: bytes) -> int:
    """EIP-7623 tokens: one per zero byte, four per other byte."""
    zeros = data.count(0)
    return zeros + 4 * (len(data) - zeros)


@dataclass(frozen=True)
class Gas:
    """A measured transaction: gas used and its calldata tokens."""

    used: int
    tokens: int

    @property
    def at_floor(self) -> bool:
        """Whether it paid EIP-7623's calldata floor rather than the standard price."""
        return self.used == TX_BASE + TOKEN_FLOOR * self.tokens


def row(
    metric: str,
    value: float,
    unit: str = "gas",
    *,
    limit: float | None = None,
    target: str | None = None,
    peer: str | None = None,
    peer_value: float | None = None,
) -> Row:
    """A row, its target met at ``value <= limit``; ratio = peer / ours (less gas is better)."""
    value = round(value) if value >= 1000 else round(value, 1)
    ratio = None if peer_value is None else round(peer_value / value, 3)
    meets = None if limit is None else value <= limit
    return Row(metric, value, unit, peer, peer_value, ratio, target, meets)


class Bulk:
    """Setup transactions, sent unsigned from impersonated accounts and mined in one block."""

    GAS = 3_000_000

    def __init__(self, client: ChainClient) -> None:
        self.url = client.rpc_url
        self.http = httpx.Client(timeout=600)
        self.rpc([("anvil_autoImpersonateAccount", [True])])

    def rpc(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(calls), 1000):
            chunk = calls[start : start + 1000]
            payload = [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(chunk)
            ]
            replies = sorted(self.http.post(self.url, json=payload).json(), key=lambda r: r["id"])
            for reply, (method, _) in zip(replies, chunk, strict=True):
                if "error" in reply:
                    raise RuntimeError(f"setup {method} failed: {reply['error']}")
                out.append(reply.get("result"))
        return out

    def fund(self, addresses: Sequence[str]) -> None:
        self.rpc([("anvil_setBalance", [a, hex(10**21)]) for a in addresses])

    def send(
        self, contract: Contract, fn: str, calls: Sequence[tuple[str, list[Any]]], event: str
    ) -> list[dict[str, Any]]:
        """``fn(*args)`` from each ``(sender, args)`` in one block; the block's ``event`` logs,
        one per call or an error."""
        senders = sorted({s for s, _ in calls})
        counts = self.rpc([("eth_getTransactionCount", [s, "pending"]) for s in senders])
        nonces = {s: int(n, 16) for s, n in zip(senders, counts, strict=True)}
        txs = []
        for sender, args in calls:
            data = contract.encode_abi(fn, args=args)
            tx = {"from": sender, "to": contract.address, "data": data, "gas": hex(self.GAS)}
            tx["nonce"] = hex(nonces[sender])
            nonces[sender] += 1
            txs.append(("eth_sendTransaction", [tx]))
        self.rpc([("evm_setAutomine", [False]), ("evm_setBlockGasLimit", [hex(10**12)])])
        try:
            self.rpc(txs)
            self.rpc([("evm_mine", [])])
        finally:
            self.rpc([("evm_setBlockGasLimit", [hex(BLOCK_GAS)]), ("evm_setAutomine", [True])])
        abi = next(e for e in contract.abi if e.get("type") == "event" and e.get("name") == event)
        topic = "0x" + event_abi_to_log_topic(abi).hex()  # type: ignore[arg-type]
        query = {"fromBlock": "latest", "toBlock": "latest", "topics": [topic]}
        (logs,) = self.rpc([("eth_getLogs", [query])])
        if len(logs) != len(calls):
            raise RuntimeError(f"setup {fn}: {len(logs)} of {len(calls)} transactions succeeded")
        return list(logs)


@dataclass
class Campaign:
    """A proposal's K selected assets and the P-leaf payout tree that pays them."""

    ids: list[int]
    counts: list[int]
    owners: list[LocalAccount]
    tree: StandardMerkleTree

    def claim(self, pid: int, position: int) -> ClaimRequest:
        request = claim_for(self.tree, pid, self.ids[position], self.ids)
        assert request.position == position
        return request


class Bench:
    def __init__(self, client: ChainClient) -> None:
        self.c = client
        self.gov, self.node, self.consumer, self.keeper = (
            account(n) for n in ("governance", "node", "consumer", "keeper")
        )
        for a in (self.gov, self.node, self.consumer, self.keeper):
            client.fund_from_dev_faucet(a.address)
        params = MarketParameters(
            min_batch_size=1, min_selection_samples=1, min_selection_providers=1
        )
        self.dep = deploy_marketplace(client, self.gov, parameters=params)
        d = self.dep
        self.stakeholders = d.stakeholder_registry(client)
        self.assets = d.asset_registry(client)
        self.delegations = d.delegation_registry(client)
        self.market = d.training_market(client)
        self.token = d.payment_token(client)
        self.stakeholders.admit_node(
            self.gov,
            self.node.address,
            signer=self.node.address,
            region="local",
            encryption_key=b"\x01" * 32,
            endpoint="http://127.0.0.1:9/",
        )
        self.stakeholders.register(self.consumer, Role.CONSUMER, b"\x02" * 32)
        self.token.faucet(self.consumer, 10**24)
        self.token.approve(self.consumer, self.market.address, 2**256 - 1)
        self.bulk = Bulk(client)
        self._stakeholders = client.contract(self.stakeholders.address, "StakeholderRegistry")
        self._assets = client.contract(self.assets.address, "AssetRegistry")
        self._market = client.contract(self.market.address, "TrainingMarket")
        self._n = 0

    # --- setup, in bulk -------------------------------------------------------------------
    def providers(self, names: Sequence[str]) -> list[LocalAccount]:
        accounts = [account(n) for n in names]
        self.bulk.fund([a.address for a in accounts])
        calls = [(a.address, [int(Role.PROVIDER), keccak(text=a.address)]) for a in accounts]
        self.bulk.send(self._stakeholders, "register", calls, "StakeholderRegistered")
        return accounts

    def asset_args(self, count: int) -> list[Any]:
        """``registerAsset`` arguments: fresh hashes, one region, the node as key holder."""
        self._n += 1
        manifest, samples = keccak(text=f"manifest/{self._n}"), keccak(text=f"samples/{self._n}")
        return [manifest, samples, count, [region_name("local")], [self.node.address], CID]

    def register(self, owners: Sequence[LocalAccount], count: int) -> list[tuple[int, Any]]:
        """One asset of ``count`` samples per entry of ``owners``: ``(assetId, owner)`` by id."""
        calls = [(o.address, self.asset_args(count)) for o in owners]
        logs = self.bulk.send(self._assets, "registerAsset", calls, "AssetRegistered")
        by_address = {o.address.lower(): o for o in owners}
        return sorted(
            (int(g["topics"][1], 16), by_address["0x" + g["topics"][2][-40:]]) for g in logs
        )

    def activate(self, accepted: Sequence[tuple[int, int]]) -> None:
        calls = [
            (self.node.address, [a, keccak(text=f"metadata/{a}"), n, CID, [self.node.address]])
            for a, n in accepted
        ]
        self.bulk.send(self._assets, "attestMetadata", calls, "MetadataAttested")

    def delegate_all(self, pairs: Sequence[tuple[LocalAccount, LocalAccount]]) -> None:
        self.bulk.fund([t.address for _, t in pairs])
        calls = [(f.address, [t.address]) for f, t in pairs]
        self.bulk.send(self._market, "delegate", calls, "DelegateChanged")

    def vote_all(self, pid: int, voters: Sequence[LocalAccount], ask: int) -> None:
        calls = [(v.address, [pid, ask]) for v in voters]
        self.bulk.send(self._market, "vote", calls, "VoteCast")

    # --- measured steps ---------------------------------------------------------------------
    def register_signed(self, owner: LocalAccount, count: int) -> int:
        manifest, samples, _, _, nodes, cid = self.asset_args(count)
        _, tx = self.assets.register_asset(
            owner,
            manifest_hash=manifest,
            samples_root=samples,
            sample_count=count,
            allowed_regions=["local"],
            key_nodes=nodes,
            manifest_cid=cid,
        )
        return tx.gas_used

    def gas(self, tx: TxResult) -> Gas:
        data = bytes(self.c.w3.eth.get_transaction(tx.tx_hash)["input"])  # type: ignore[arg-type]
        return Gas(tx.gas_used, calldata_tokens(data))

    def propose(
        self, ids: Sequence[int], counts: Sequence[int], offer: int = 1000
    ) -> tuple[int, int]:
        terms = ProposalTerms(
            asset_ids=tuple(ids),
            sample_counts=tuple(counts),
            selection_root=keccak(text="selection"),
            offer=offer,
            wtp_bps=5000,
            node=self.node.address,
            voting_deadline=self.c.latest_timestamp() + 3600,
            model_spec_hash=keccak(text="spec"),
            validation_set_hash=keccak(text="validation"),
            proposal_cid=CID,
        )
        # the SDK's gas limit (estimate plus headroom) can pass 30M where the gas used does not;
        # the propose rows compare the gas used with the block
        self.bulk.rpc([("evm_setBlockGasLimit", [hex(2 * BLOCK_GAS)])])
        try:
            pid, tx = self.market.propose(self.consumer, terms)
        finally:
            self.bulk.rpc([("evm_setBlockGasLimit", [hex(BLOCK_GAS)])])
        return pid, tx.gas_used

    def tally(self, pid: int, price: int, ids: Sequence[int], counts: Sequence[int]) -> int:
        """Tally in batches; the gas of the last one."""
        gas = 0
        for i in range(0, len(ids), TALLY_BATCH):
            part = slice(i, i + TALLY_BATCH)
            done, tx = self.market.tally(self.keeper, pid, price, ids[part], counts[part])
            gas = tx.gas_used
        assert done
        return gas

    def tally_gas(self, n: int, hops: int, ask: int = 100) -> int:
        """Gas of tallying n assets in one batch, each owner's vote arriving through `hops`."""
        self._n += 1
        tag = f"tally-{self._n}"
        owners = self.providers([f"{tag}/owner/{i}" for i in range(n)])
        pairs = self.register(owners, 10)
        ids = [a for a, _ in pairs]
        self.activate([(a, 10) for a in ids])
        voters = owners
        for h in range(hops):
            nxt = [account(f"{tag}/hop{h}/{i}") for i in range(n)]
            self.delegate_all(list(zip(voters, nxt, strict=True)))
            voters = nxt
        pid, _ = self.propose(ids, [10] * n)
        self.vote_all(pid, voters, ask)
        self.c.advance_time(3601)
        return self.tally(pid, 0 if ask == REJECT_ASK else ask, ids, [10] * n)

    def complete(self, camp: Campaign, voter: LocalAccount, root: bytes, offer: int) -> list[int]:
        """A Completed proposal over the campaign selection: [pid, propose, start, submit gas]."""
        pid, propose = self.propose(camp.ids, camp.counts, offer)
        self.market.vote(voter, pid, 0)
        self.c.advance_time(3601)
        self.tally(pid, 0, camp.ids, camp.counts)
        quote = Quote(pid, 10, 86400, self.c.latest_timestamp() + 600)
        sig = sign_quote(bytes(self.node.key), self.c.chain_id, self.market.address, quote)
        start = self.market.start_training(self.consumer, pid, quote, sig)
        result = ResultCommitment(
            accuracy_bps=9000,
            result_cid=CID,
            model_hash=keccak(text="model"),
            payout_root=root,
            scores_hash=keccak(text="scores"),
            seed_hash=keccak(text="seed"),
        )
        submit = self.market.submit_result(self.node, pid, result)
        return [pid, propose, start.gas_used, submit.gas_used]


# Campaign layout, by selection position (each group registered in its own block, so ids and
# hence positions follow the groups): word 0 one claimMany of 256, word 1 eight of 32, word 2
# single claims, the veteran's assets (an owner with a credit) and the provider of (c).
SINGLES = 9  # positions 512..520: the first claim in word 2, then 8 into the touched word
VETERAN = 16  # positions 521..536
PROVIDER_POS = 2 * WORD + SINGLES + VETERAN  # 537


def build_campaign(b: Bench, k: int, payees: int) -> tuple[Campaign, dict[str, Any]]:
    fresh = b.providers([f"campaign/fresh/{i}" for i in range(2 * WORD + SINGLES)])
    veteran, provider, filler = b.providers(["veteran", "provider", "filler"])
    pairs: list[tuple[int, Any]] = []
    for owners, count in (
        (fresh[:WORD], 1),
        (fresh[WORD : 2 * WORD], 1),
        (fresh[2 * WORD :], 1),
        ([veteran] * VETERAN, 1000),  # the voter: enough weight for quorum on its own
        ([provider], 1),
        ([filler] * (k - PROVIDER_POS - 1), 1),
    ):
        pairs += b.register(owners, count)
    ids = [a for a, _ in pairs]
    assert ids == sorted(ids)
    assert len(ids) == k
    counts = [1000 if o is veteran else 1 for _, o in pairs]
    b.activate(list(zip(ids, counts, strict=True)))
    rng = random.Random(payees)
    amounts = {a: 1 + rng.randrange(10**6) for a in ids}
    positions = {a: i for i, a in enumerate(ids)}
    # the leaves a P-asset selection would add: later positions, later asset ids
    for position in range(k, payees):
        extra = ids[-1] + 1 + position - k
        amounts[extra] = 1 + rng.randrange(10**6)
        positions[extra] = position
    tree = build_payout_tree(amounts, positions)
    camp = Campaign(ids, counts, [o for _, o in pairs], tree)
    return camp, {"veteran": veteran, "provider": provider, "offer": sum(amounts.values())}


def claim_rows(b: Bench, k: int, payees: int) -> tuple[list[Row], dict[str, Any]]:
    camp, who = build_campaign(b, k, payees)
    veteran, provider = who["veteran"], who["provider"]
    pid, propose_k, start, submit = b.complete(camp, veteran, camp.tree.root, who["offer"])
    assert b.market.selected_asset(pid, k - 1) == camp.ids[-1]
    vet = 2 * WORD + SINGLES  # the veteran's first position

    def single(p: int, proposal: int = pid) -> Gas:
        return b.gas(b.market.claim(b.keeper, camp.claim(proposal, p)))

    def many(claims: Sequence[tuple[int, int]], sender: LocalAccount | None = None) -> Gas:
        return b.gas(b.market.claim_many(sender or b.keeper, [camp.claim(q, p) for q, p in claims]))

    batch256 = many([(pid, p) for p in range(WORD)])
    batch32 = [many([(pid, p) for p in range(s, s + 32)]) for s in range(WORD, 2 * WORD, 32)]
    first = single(2 * WORD)
    touched = [single(p) for p in range(2 * WORD + 1, vet)]
    single(vet)  # the veteran's first credit
    credited = single(vet + 1)

    # (c): the provider's asset in 10 proposals, each word already touched by another claim
    rounds = [b.complete(camp, veteran, camp.tree.root, who["offer"])[0] for _ in range(10)]
    for q in rounds:
        single(vet + 2, q)
    provider_many = many([(q, PROVIDER_POS) for q in rounds], provider)
    provider_withdraw = b.market.withdraw(provider).gas_used
    withdraw_fresh = b.market.withdraw(camp.owners[2 * WORD]).gas_used  # paid once, no tokens
    holder = camp.owners[2 * WORD + 1]
    b.token.transfer(b.consumer, holder.address, 1)
    withdraw_held = b.market.withdraw(holder).gas_used

    def floor(*gs: Gas) -> str:
        return ", calldata floor" if any(g.at_floor for g in gs) else ""

    def claim(metric: str, value: float, per: str = "claim", **kw: Any) -> Row:
        peer = "Uniswap MerkleDistributor (100k leaves)"
        return row(metric, value, f"gas/{per}", peer=peer, peer_value=UNISWAP_CLAIM, **kw)

    n = f"{payees:,} payees"
    touched_gas = statistics.median(g.used for g in touched)
    singles = (first.used + (WORD - 1) * touched_gas) / WORD
    b32 = sum(g.used for g in batch32) / WORD
    b256 = batch256.used / WORD
    prov = (provider_many.used + provider_withdraw) / 10
    rows = [
        row(f"claim, 1/tx, first in a bitmap word, fresh owner ({n}{floor(first)})", first.used),
        row(f"claim, 1/tx, into a touched word, fresh owner ({n}{floor(*touched)})", touched_gas),
        row(
            f"claim, 1/tx, into a touched word, credited owner ({n}{floor(credited)})",
            credited.used,
        ),
        claim(f"claim, 1/tx, campaign average, fresh owners ({n})", singles),
        claim(f"claimMany, 32/tx, campaign average, fresh owners ({n}{floor(*batch32)})", b32),
        claim(
            f"claimMany, 256/tx, campaign average, fresh owners ({n}{floor(batch256)})",
            b256,
            limit=50_000,
            target="<= 50k",
        ),
        claim(
            f"claimMany 256/tx + own withdraw, one-time payee ({n})", b256 + withdraw_fresh, "payee"
        ),
        claim(f"provider: claimMany of 10 proposals + withdraw ({n}{floor(provider_many)})", prov),
        row("withdraw, account holds no tokens yet", withdraw_fresh),
        row("withdraw, account already holds tokens", withdraw_held),
    ]
    # depth of each payout leaf (the leaves are nodes n-1 .. 2n-2 of the tree's array)
    depths = [(i + 1).bit_length() - 1 for i in range(payees - 1, 2 * payees - 1)]
    proof = len(camp.claim(pid, 0).proof)
    tokens = batch256.tokens / WORD
    notes = {
        "claims": (
            f"a real Completed proposal of {k:,} Active assets; each claimed asset's owner is a "
            "distinct provider never paid before (the credited-owner row: an owner already "
            "credited for another asset); every claim is sent as visdm.market.claim_for builds "
            "it and measured as mined, with no adjustment"
        ),
        "payout tree": (
            f"{payees:,} leaves: the {k:,} real ones plus {payees - k:,} at positions "
            f"{k:,}..{payees - 1:,} (never claimed), so proofs are {min(depths)}-{max(depths)} "
            f"deep (mean {statistics.mean(depths):.2f} over all leaves; {proof} for position 0) "
            f"as in a {payees:,}-payee campaign"
        ),
        "selection check": (
            f"a claim reads the storage word holding its position's asset id ({IDS_PER_WORD} to a "
            "word, written at propose): cold for the first claim of that word in a transaction, "
            f"warm after (claimMany of 256 consecutive positions reads {WORD // IDS_PER_WORD} "
            "words); nothing else in a claim depends on the selection size"
        ),
        "calldata per claim (headline)": (
            f"{tokens:,.0f} tokens: {TOKEN_STANDARD * tokens:,.0f} gas at the standard price, "
            f"{TOKEN_FLOOR * tokens:,.0f} at the EIP-7623 floor; the 256-claim transaction used "
            f"{batch256.used:,} gas"
        ),
        "headline": (
            "claimMany 256/tx with fresh owners: a keeper settles one bitmap word per transaction "
            "(anyone may claim for anyone) and fresh owners are the costly case, as in Uniswap's "
            "figure; a one-time payee also pays its own withdraw (the row after it)"
        ),
    }
    return rows, {"notes": notes, "propose_k": propose_k, "start": start, "submit": submit}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    # k: the campaign selection; the full size takes the largest power of two whose proposal
    # fits a 30M-gas block (the notes give the measured limits)
    sizes = {"k": 1024, "n_tally": 16, "hops": 2, "payees": 10_000}
    if not args.quick:
        sizes.update(k=2048, n_tally=256, hops=4, payees=100_000)
    with tempfile.TemporaryDirectory() as tmp:
        node = start_anvil(state_file=None, log_file=Path(tmp) / "anvil.log")
        try:
            client = ChainClient(node.rpc_url, timeout_s=120, tx_timeout_s=120)
            rows, notes = run(client, **sizes)
            # a collective's operations, on a marketplace of their own on the same chain
            rows += collective_rows(client, members=16 if args.quick else 64)
            # a federated proposal beside the same round named to one node, likewise
            rows += federation_rows(client)
        finally:
            node.stop()
    emit("gas", rows, as_json=args.json, packages=["web3"], notes=notes)


def run(
    client: ChainClient, *, k: int, n_tally: int, hops: int, payees: int
) -> tuple[list[Row], dict[str, Any]]:
    b = Bench(client)
    rows: list[Row] = []
    owner = b.providers(["registrant"])[0]
    b.register_signed(owner, 1)  # warm-up: creates the asset counter
    for n in (10, 10_000, 1_000_000):
        gas = b.register_signed(owner, n)
        rows.append(row(f"registerAsset, {n:,} samples", gas, limit=150_000, target="<= 150k"))

    x, y = account("delegator"), account("delegatee")
    b.bulk.fund([x.address, y.address])
    gas = b.delegations.delegate(x, y.address).gas_used
    peer = "OpenZeppelin Votes.delegate"
    rows.append(
        row(
            "delegate (first)",
            gas,
            limit=80_000,
            target="<= 80k",
            peer=peer,
            peer_value=OZ_DELEGATE,
        )
    )

    ((asset, _),) = b.register([owner], 10)
    b.activate([(asset, 10)])
    pid, _ = b.propose([asset], [10])
    gas = b.market.vote(owner, pid, 123).gas_used
    rows.append(row("vote (first)", gas, limit=60_000, target="<= 60k"))
    _, propose_one = b.propose([asset], [10])

    one = b.tally_gas(1, 0)
    direct = b.tally_gas(n_tally, 0)
    chained = b.tally_gas(n_tally, hops)
    rejected = b.tally_gas(n_tally, 0, REJECT_ASK) - b.tally_gas(1, 0, REJECT_ASK)
    claims, extra = claim_rows(b, k, payees)

    propose_k = extra["propose_k"]
    per_asset = (propose_k - propose_one) / (k - 1)
    rows += [
        row("propose, 1 asset", propose_one),
        row(f"propose per selected asset ({k:,} assets)", per_asset),
        row(
            f"propose, {k:,} assets, within a 30M block",
            propose_k,
            limit=BLOCK_GAS,
            target="<= 30M",
        ),
        row(
            f"tally per asset (direct vote, {n_tally} assets)",
            (direct - one) / (n_tally - 1),
            limit=15_000,
            target="<= 15k",
        ),
        row(
            f"tally per delegation hop ({hops} hops)",
            (chained - direct) / (n_tally * hops),
            limit=5_000,
            target="<= 5k",
        ),
        row(
            f"tally per asset leaving the round (REJECT, {n_tally} assets)",
            rejected / (n_tally - 1),
        ),
        row("startTraining", extra["start"]),
        row("submitResult", extra["submit"]),
        *claims,
    ]
    size = len(bytes(client.w3.eth.get_code(to_checksum_address(b.market.address))))
    rows.append(
        row(
            "TrainingMarket runtime bytecode",
            size,
            "bytes",
            limit=EIP170_LIMIT,
            target="<= 24,576",
            peer="EIP-170 limit",
            peer_value=EIP170_LIMIT,
        )
    )
    rows.append(row("deploy TrainingMarket", b.dep.contracts["TrainingMarket"].gas_used))

    def fit(limit: float) -> str:
        return f"{1 + int((limit - propose_one) / per_asset):,}"

    (info,) = b.bulk.rpc([("anvil_nodeInfo", [])])
    notes = {
        "chain": f"{client.w3.client_version} (local), hardfork {info['hardFork']}",
        "solc": "0.8.30, optimizer 200 runs, via-IR",
        "market parameters": (
            "min_batch_size=1, min_selection_samples=1, min_selection_providers=1, so that the "
            "one-asset proposals of the vote, propose and tally baselines are allowed"
        ),
        "propose": (
            f"stores the selected ids {IDS_PER_WORD} to a storage word (a zero slot made "
            "non-zero: 22,100 gas per word) for claims, and still computes the assets root in "
            "memory for ProposalCreated"
        ),
        "largest proposal": (
            f"about {fit(BLOCK_GAS)} assets in a 30M-gas block and {fit(TX_GAS_CAP)} under "
            f"EIP-7825's 2^24 gas per transaction (linear in the marginal gas), but about "
            f"{fit((BLOCK_GAS - _GAS_MARGIN) / _GAS_HEADROOM)} sent through the SDK, whose gas "
            f"limit is its estimate x {_GAS_HEADROOM} + {_GAS_MARGIN:,}; the {k:,}-asset "
            f"proposal here used {propose_k:,}"
        ),
        **extra["notes"],
    }
    return rows, notes


if __name__ == "__main__":
    main()
