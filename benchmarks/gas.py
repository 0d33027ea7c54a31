"""Gas per marketplace operation on a real anvil, beside the OpenZeppelin / Uniswap anchors.

Run: ``python benchmarks/gas.py [--quick] [--json]``. Gas is deterministic for a given chain
state, so each figure is one measurement (no repetitions needed); what varies between runs is
only the calldata of addresses and amounts, a few dozen gas at most.

Anchors (measured by others, not in this run — a gas figure does not depend on the machine):
* OpenZeppelin ``Votes.delegate()``: ≈ 92.5k gas average (OpenZeppelin Contracts PR #4418 gas
  report);
* Uniswap ``MerkleDistributor.claim`` at 100k leaves: ≈ 78.6k gas average.

How each row is measured:
* ``registerAsset`` at 10 / 10,000 / 1,000,000 samples, after one warm-up registration;
* ``delegate``: a first delegation to an account that delegates to nobody;
* ``vote``: a first vote on a proposal;
* ``tally`` per asset: (gas of tallying N assets − gas of tallying 1) / (N − 1), each asset with
  its own owner voting directly; per hop: the extra gas when every owner's vote arrives through
  h delegation hops instead, divided by N·h;
* ``claim`` at P payees: the full-campaign average (first claim in a bitmap word + 255 claims
  into a touched word) / 256, every payee a fresh account receiving its first tokens (the
  condition of the Uniswap figure); and one claim by a payee that already holds tokens, the
  usual case for a provider paid by earlier rounds (its balance slot is not created anew).
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Row, emit, parse_args
from visdm.chain.anvil import start_anvil
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalTerms, Quote
from visdm.chain.deployment import deploy_marketplace
from visdm.market import build_payout_tree, claim_for, sign_quote
from visdm.types import Role

OZ_DELEGATE = 92_500
UNISWAP_CLAIM = 78_600


def account(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(keccak(text=f"visdm-bench/{name}"))
    return acct


class Bench:
    def __init__(self, client: ChainClient) -> None:
        self.c = client
        self.gov = account("governance")
        self.node = account("node")
        self.consumer = account("consumer")
        for a in (self.gov, self.node, self.consumer):
            client.fund_from_dev_faucet(a.address)
        self.dep = deploy_marketplace(client, self.gov)
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
        self._n = 0

    def provider(self) -> LocalAccount:
        self._n += 1
        p = account(f"provider-{self._n}")
        self.c.fund_from_dev_faucet(p.address)
        self.stakeholders.register(p, Role.PROVIDER, keccak(text=p.address))
        return p

    def fresh(self, label: str) -> LocalAccount:
        a = account(label)
        self.c.fund_from_dev_faucet(a.address)
        return a

    def register(self, owner: LocalAccount, count: int) -> tuple[int, int]:
        asset_id, tx = self.assets.register_asset(
            owner,
            manifest_hash=keccak(text=f"m{count}{self._n}"),
            samples_root=keccak(text=f"r{count}"),
            sample_count=count,
            allowed_regions=["local"],
            manifest_cid="bafkreimanifest",
        )
        return asset_id, tx.gas_used

    def active_asset(self, owner: LocalAccount, count: int = 100) -> int:
        asset_id, _ = self.register(owner, count)
        self.assets.attest_metadata(
            self.node,
            asset_id,
            metadata_hash=keccak(text=str(asset_id)),
            accepted_count=count,
            metadata_cid="bafkreimetadata",
        )
        return asset_id

    def now(self) -> int:
        return self.c.latest_timestamp()

    def advance(self, seconds: int) -> None:
        self.c.advance_time(seconds)

    def propose(self, selection: list[tuple[int, int]], offer: int = 1000) -> int:
        terms = ProposalTerms(
            asset_ids=tuple(a for a, _ in selection),
            sample_counts=tuple(c for _, c in selection),
            selection_root=keccak(text="sel"),
            offer=offer,
            wtp_bps=5000,
            node=self.node.address,
            voting_deadline=self.now() + 3600,
            model_spec_hash=keccak(text="spec"),
            validation_set_hash=keccak(text="val"),
        )
        pid, _ = self.market.propose(self.consumer, terms)
        return pid

    def tally_gas(self, n_assets: int, hops: int) -> int:
        """Gas of tallying n assets (one tx), each owner's vote arriving through `hops` hops."""
        owners = [self.provider() for _ in range(n_assets)]
        selection = [(self.active_asset(o), 10) for o in owners]
        voters = []
        for i, owner in enumerate(owners):
            current = owner
            for h in range(hops):
                nxt = self.fresh(f"hop-{n_assets}-{hops}-{i}-{h}-{self._n}")
                self.delegations.delegate(current, nxt.address)
                current = nxt
            voters.append(current)
        pid = self.propose(selection)
        for v in voters:
            self.market.vote(v, pid, 100)
        self.advance(3601)
        done, tx = self.market.tally(
            self.gov, pid, 100, [a for a, _ in selection], [c for _, c in selection]
        )
        assert done
        return tx.gas_used

    def completed(self, amounts: dict[str, int]) -> tuple[int, object]:
        owner = self.provider()
        selection = [(self.active_asset(owner), 10)]
        pid = self.propose(selection, offer=sum(amounts.values()))
        self.market.vote(owner, pid, 0)
        self.advance(3601)
        self.market.tally(self.gov, pid, 0, [selection[0][0]], [10])
        quote = Quote(pid, 10, 86400, self.now() + 600)
        sig = sign_quote(bytes(self.node.key), self.c.chain_id, self.market.address, quote)
        start = self.market.start_training(self.consumer, pid, quote, sig)
        tree = build_payout_tree(amounts)
        submit = self.market.submit_result(
            self.node,
            pid,
            accuracy_bps=9000,
            model_hash=keccak(text="model"),
            payout_root=tree.root,
            scores_hash=keccak(text="scores"),
            model_cid="bafkreimodel",
        )
        self.last_start, self.last_submit = start.gas_used, submit.gas_used
        return pid, tree

    def claim_average(self, payees: int) -> tuple[float, int, int, int]:
        """Claim gas at `payees` payees: (campaign average, first in a bitmap word, into a
        touched word, into a touched word by a payee that already holds tokens)."""
        rng = random.Random(payees)
        addresses = ["0x" + rng.getrandbits(160).to_bytes(20, "big").hex() for _ in range(payees)]
        pid, tree = self.completed({a: 1 + rng.randrange(10**6) for a in addresses})
        by_index = sorted(addresses, key=lambda a: int(a, 16))  # payout index = address order
        claimer = self.gov
        first = self.market.claim(claimer, claim_for(tree, pid, by_index[0])).gas_used  # type: ignore[arg-type]
        touched = [
            self.market.claim(claimer, claim_for(tree, pid, by_index[i])).gas_used  # type: ignore[arg-type]
            for i in range(1, min(9, payees))
        ]
        steady = sorted(touched)[len(touched) // 2]
        holder = by_index[min(9, payees - 1)]
        self.token.transfer(self.consumer, holder, 1)  # a provider paid before
        warm = self.market.claim(claimer, claim_for(tree, pid, holder)).gas_used  # type: ignore[arg-type]
        return (first + 255 * steady) / 256, first, steady, warm


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n_tally = 8 if args.quick else 40
    hops = 2 if args.quick else 4
    big = 10_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        node = start_anvil(state_file=None, log_file=Path(tmp) / "anvil.log")
        try:
            rows = run(ChainClient(node.rpc_url), n_tally=n_tally, hops=hops, big=big)
        finally:
            node.stop()
    emit(
        "gas",
        rows,
        as_json=args.json,
        packages=["web3"],
        notes={"chain": "anvil 1.7.1 (local)", "solc": "0.8.30, optimizer 200 runs, via-IR"},
    )


def run(client: ChainClient, *, n_tally: int, hops: int, big: int) -> list[Row]:
    b = Bench(client)
    rows: list[Row] = []
    owner = b.provider()
    b.register(owner, 1)  # warm-up: creates the asset counter
    for n in (10, 10_000, 1_000_000):
        gas = b.register(owner, n)[1]
        rows.append(
            Row(f"registerAsset, {n:,} samples", gas, "gas", target="<= 150k", meets=gas <= 150_000)
        )

    x, y = b.fresh("delegator"), b.fresh("delegatee")
    gas = b.delegations.delegate(x, y.address).gas_used
    rows.append(
        Row(
            "delegate (first)",
            gas,
            "gas",
            "OpenZeppelin Votes.delegate",
            OZ_DELEGATE,
            OZ_DELEGATE / gas,
            "<= 80k",
            gas <= 80_000,
        )
    )

    voter = b.provider()
    pid = b.propose([(b.active_asset(voter), 10)])
    gas = b.market.vote(voter, pid, 123).gas_used
    rows.append(Row("vote (first)", gas, "gas", target="<= 60k", meets=gas <= 60_000))

    one = b.tally_gas(1, 0)
    many = b.tally_gas(n_tally, 0)
    per_asset = (many - one) / (n_tally - 1)
    rows.append(
        Row(
            f"tally per asset (direct vote, {n_tally} assets)",
            per_asset,
            "gas",
            target="<= 15k",
            meets=per_asset <= 15_000,
        )
    )
    chained = b.tally_gas(n_tally, hops)
    per_hop = (chained - many) / (n_tally * hops)
    rows.append(
        Row(
            f"tally per delegation hop ({hops} hops)",
            per_hop,
            "gas",
            target="<= 5k",
            meets=per_hop <= 5_000,
        )
    )

    avg, first, steady, warm = b.claim_average(10)
    rows.append(Row("startTraining", b.last_start, "gas"))
    rows.append(Row("submitResult", b.last_submit, "gas"))
    rows.append(
        Row(
            "claim, 10 payees (campaign average)",
            avg,
            "gas",
            "Uniswap MerkleDistributor",
            UNISWAP_CLAIM,
            UNISWAP_CLAIM / avg,
        )
    )
    avg, first, steady, warm = b.claim_average(big)
    rows.append(
        Row(
            f"claim, {big:,} payees (campaign average)",
            avg,
            "gas",
            "Uniswap MerkleDistributor (100k leaves)",
            UNISWAP_CLAIM,
            UNISWAP_CLAIM / avg,
            "<= 70k",
            avg <= 70_000,
        )
    )
    rows.append(Row(f"claim, {big:,} payees, first in a bitmap word", first, "gas"))
    rows.append(Row(f"claim, {big:,} payees, into a touched word", steady, "gas"))
    rows.append(
        Row(
            f"claim, {big:,} payees, payee already holds tokens",
            warm,
            "gas",
            target="<= 70k",
            meets=warm <= 70_000,
        )
    )
    return rows


if __name__ == "__main__":
    main()
