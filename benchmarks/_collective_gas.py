"""Gas of a collective's operations on a real anvil: :func:`collective_rows` for ``gas.py``.

Run alone: ``python benchmarks/_collective_gas.py [--quick] [--json]`` (its own anvil). Each
figure is one transaction's ``gasUsed`` (per member or per payout leaf where it says so), sent
through the SDK wrappers; gas does not depend on the machine.

How each row is measured, in a collective of ``members`` members (64; 16 at ``--quick``) with
as many distinct floors, all counted:

* ``create``: the factory deploying a collective;
* ``join``: a provider with one Active asset that already delegates to the collective (the
  market's ``delegate`` is its own row in ``gas.py``), with and without a policy delay (with
  one the vote waits; without, it is counted at once, inserting a new floor at the median);
* ``settle`` of one waiting vote, and per member when ``members`` are settled in one call;
* ``voteFloor`` moving one member's vote across every other floor (the incremental median's
  worst case: its pointer walks every level) and to a floor beside it (the usual case);
* ``castVote``: the first cast on a proposal, and a recast after the policy moved;
* ``chargeFees``, per payout leaf, ``members`` leaves of one proposal in one call;
* ``leave``; the runtime bytecode of Collective and CollectiveFactory beside EIP-170's limit.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Row, emit, parse_args
from visdm import collectives
from visdm.chain.anvil import start_anvil
from visdm.chain.client import ChainClient
from visdm.chain.contracts import MarketParameters, ProposalTerms, Quote, ResultCommitment
from visdm.chain.deployment import Deployment, deploy_marketplace
from visdm.market import build_payout_tree, sign_quote
from visdm.market.tally import submit_tally
from visdm.types import Role

__all__ = ["collective_rows"]

EIP170_LIMIT = 24_576
_NODE_KEY = bytes(range(100, 132))


def _account(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(keccak(text=f"visdm-bench-collective/{name}"))
    return acct


class _Cast:
    """A marketplace on ``client`` with a node, a consumer and providers on demand."""

    def __init__(self, client: ChainClient) -> None:
        self.client = client
        self.deployer, self.node, self.consumer = (_account(n) for n in ("dep", "node", "buyer"))
        for a in (self.deployer, self.node, self.consumer):
            client.fund_from_dev_faucet(a.address)
        relaxed = MarketParameters(
            min_batch_size=1, min_selection_samples=1, min_selection_providers=1
        )
        self.dep: Deployment = deploy_marketplace(client, self.deployer, parameters=relaxed)
        self.stakeholders = self.dep.stakeholder_registry(client)
        self.assets = self.dep.asset_registry(client)
        self.market = self.dep.training_market(client)
        self.delegations = self.dep.delegation_registry(client)
        self.stakeholders.admit_node(
            self.deployer,
            self.node.address,
            signer=self.node.address,
            region="local",
            encryption_key=_NODE_KEY,
            endpoint="http://127.0.0.1:9/",
        )
        self.stakeholders.register(self.consumer, Role.CONSUMER, b"\x02" * 32)
        token = self.dep.payment_token(client)
        token.faucet(self.consumer, 10**24)
        token.approve(self.consumer, self.market.address, 2**256 - 1)
        self._n = 0

    def provider(self, samples: int = 100) -> tuple[LocalAccount, int]:
        self._n += 1
        account = _account(f"provider-{self._n}")
        self.client.fund_from_dev_faucet(account.address)
        self.stakeholders.register(account, Role.PROVIDER, keccak(text=account.address))
        asset_id, _ = self.assets.register_asset(
            account,
            manifest_hash=keccak(text=f"m{self._n}"),
            samples_root=keccak(text=f"r{self._n}"),
            sample_count=samples,
            allowed_regions=["local"],
            key_nodes=[self.node.address],
            manifest_cid="bafkreimanifest",
        )
        self.assets.attest_metadata(
            self.node,
            asset_id,
            metadata_hash=keccak(text=f"md{asset_id}"),
            accepted_count=samples,
            metadata_cid="bafkreimetadata",
            key_nodes=[self.node.address],
        )
        return account, asset_id

    def propose(self, assets: list[int], offer: int) -> int:
        terms = ProposalTerms(
            asset_ids=tuple(assets),
            sample_counts=tuple(100 for _ in assets),
            selection_root=keccak(text="selection"),
            offer=offer,
            wtp_bps=1,
            node=self.node.address,
            voting_deadline=self.client.latest_timestamp() + 3600,
            model_spec_hash=keccak(text="spec"),
            validation_set_hash=keccak(text="validation"),
            proposal_cid="bafkreiproposal",
        )
        pid, _ = self.market.propose(self.consumer, terms)
        return pid


def collective_rows(client: ChainClient, *, members: int = 64) -> list[Row]:
    """The collective's gas rows, measured on a fresh marketplace deployed on ``client``."""
    w = _Cast(client)
    made = collectives.factory(client, w.dep)
    rows: list[Row] = []

    def row(metric: str, value: float, unit: str = "gas", **kw: object) -> None:
        rows.append(Row(metric, round(value), unit, **kw))  # type: ignore[arg-type]

    address, tx = made.create(
        w.deployer, name="bench", steward=w.deployer.address, fee_bps=100, policy_delay=0
    )
    row("create a collective (factory)", tx.gas_used)
    c = collectives.Collective(client, address)
    joined: list[tuple[LocalAccount, int]] = []
    join_gas: list[int] = []
    for i in range(members):
        account, asset_id = w.provider()
        w.delegations.delegate(account, c.address)
        join_gas.append(c.join(account, [asset_id], 10 * (i + 1)).gas_used)
        joined.append((account, asset_id))
    row(f"join, counted at once (median of {members} floors kept)", join_gas[-1])

    delayed, _ = made.create(
        w.deployer, name="bench-delayed", steward=w.deployer.address, fee_bps=0, policy_delay=60
    )
    d = collectives.Collective(client, delayed)
    waiting: list[str] = []
    gas = 0
    for _ in range(members):
        account, asset_id = w.provider()
        w.delegations.delegate(account, d.address)
        gas = d.join(account, [asset_id], 5).gas_used
        waiting.append(account.address)
    row("join, waiting for a policy delay", gas)
    client.advance_time(61)
    row("settle one waiting vote", d.settle(w.deployer, waiting[:1]).gas_used)
    many = d.settle(w.deployer, waiting[1:]).gas_used
    row(f"settle, per member ({members - 1} in one call)", many / (members - 1))

    lowest, _ = joined[0]
    row(
        f"voteFloor across every other floor ({members} levels, worst case)",
        c.vote_floor(lowest, 10 * members + 5).gas_used,
    )
    row("voteFloor to a neighbouring floor", c.vote_floor(lowest, 10 * members + 6).gas_used)

    ids = [a for _, a in joined]
    pid = w.propose(ids, offer=1)  # far below the floor: the collective asks
    row("castVote (first on a proposal)", c.cast_vote(w.deployer, pid).gas_used)
    c.vote_floor(joined[-1][0], 0)
    c.vote_floor(joined[-2][0], 0)
    row("castVote again after the policy moved", c.cast_vote(w.deployer, pid).gas_used)
    pid = w.propose(ids, offer=10**12)  # the round whose payouts carry the fee
    c.cast_vote(w.deployer, pid)

    token = w.dep.payment_token(client)
    for account, _ in joined:
        token.faucet(account, 10**6)
        token.approve(account, c.address, 10**6)
    row("deposit (first)", c.deposit(joined[0][0], joined[0][0].address, 10**6).gas_used)
    for account, _ in joined[1:]:
        c.deposit(account, account.address, 10**6)
    client.advance_time(3601)
    submit_tally(
        w.market, w.assets, w.delegations, w.deployer, pid, selection=[(a, 100) for a in ids]
    )
    quote = Quote(pid, 1, 3600, client.latest_timestamp() + 600)
    signature = sign_quote(bytes(w.node.key), client.chain_id, w.market.address, quote)
    w.market.start_training(w.consumer, pid, quote, signature)
    tree = build_payout_tree({a: 10**9 // members for a in ids}, {a: i for i, a in enumerate(ids)})
    w.market.submit_result(
        w.node, pid, ResultCommitment(9000, "bafkreiresult", payout_root=tree.root)
    )
    report = collectives.charge_fees(
        client, w.dep, w.deployer, c.address, proposal_id=pid, tree=tree
    )
    charged = [r for r in report.rows if r.status == "charged"]
    row(
        f"chargeFees, per payout leaf ({len(charged)} in one call)",
        report.transactions[0].gas_used / len(charged),
    )
    row("leave", c.leave(joined[0][0]).gas_used)
    for name, at in (("Collective", c.address), ("CollectiveFactory", made.address)):
        size = len(bytes(client.w3.eth.get_code(to_checksum_address(at))))
        rows.append(
            Row(
                f"{name} runtime bytecode",
                size,
                "bytes",
                "EIP-170 limit",
                EIP170_LIMIT,
                round(EIP170_LIMIT / size, 3),
                "<= 24,576",
                size <= EIP170_LIMIT,
            )
        )
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory() as tmp:
        node = start_anvil(state_file=None, log_file=Path(tmp) / "anvil.log")
        try:
            client = ChainClient(node.rpc_url, timeout_s=120, tx_timeout_s=120)
            rows = collective_rows(client, members=16 if args.quick else 64)
        finally:
            node.stop()
    emit("collective gas", rows, as_json=args.json, packages=["web3"])


if __name__ == "__main__":
    main()
