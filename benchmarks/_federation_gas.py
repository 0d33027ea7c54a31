"""Gas of a federated proposal on a real anvil, beside the same proposal to one node:
:func:`federation_rows` for ``gas.py``.

Run alone: ``python benchmarks/_federation_gas.py [--json]`` (its own anvil). Each figure is one
transaction's ``gasUsed``, sent through the SDK wrappers; gas does not depend on the machine.

The selection is the same in both rounds: ``assets`` assets (8), each allowing regions eu and
us, keyed to node-eu and node-us. The peer round names node-eu (a node both regions' assets
allow); ours names a federation of node-eu and node-us coordinated by node1 (region local).
Rows: forming the federation (deploy, register, each join: paid once, not per round);
``propose``, ``startTraining`` and ``submitResult`` of each round (the federation's through its
contract, after ``setFees``); the round's rendezvous (``announceRound``, each ``bindKey``);
the members' side after release (``collect``, each ``withdraw``) beside one node's own
``withdraw`` of its fee; the contracts' runtime size beside EIP-170.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Row, emit, parse_args
from visdm.chain._federation import deploy_federation
from visdm.chain.anvil import start_anvil
from visdm.chain.artifacts import load_artifact
from visdm.chain.client import ChainClient
from visdm.chain.contracts import MarketParameters, ProposalTerms, Quote, ResultCommitment
from visdm.chain.deployment import deploy_marketplace
from visdm.market import build_payout_tree, sign_quote
from visdm.market.tally import submit_tally
from visdm.types import Role

__all__ = ["federation_rows"]

EIP170_LIMIT = 24_576


def _account(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(keccak(text=f"visdm-bench-federation/{name}"))
    return acct


def federation_rows(client: ChainClient, *, assets: int = 8) -> list[Row]:
    """The federation's gas rows, on a fresh marketplace deployed on ``client``."""
    names = ("dep", "node1", "node-eu", "node-us", "buyer")
    dep_acct, node1, eu, us, buyer = (_account(n) for n in names)
    for a in (dep_acct, node1, eu, us, buyer):
        client.fund_from_dev_faucet(a.address)
    relaxed = MarketParameters(min_batch_size=1, min_selection_samples=1, min_selection_providers=1)
    dep = deploy_marketplace(client, dep_acct, parameters=relaxed, regions=("local", "eu", "us"))
    reg, reg_assets = dep.stakeholder_registry(client), dep.asset_registry(client)
    market, token = dep.training_market(client), dep.payment_token(client)
    for node, region in ((node1, "local"), (eu, "eu"), (us, "us")):
        reg.admit_node(
            dep_acct,
            node.address,
            signer=node.address,
            region=region,
            encryption_key=keccak(text=node.address),
            endpoint="http://127.0.0.1:9/",
        )
    reg.register(buyer, Role.CONSUMER, b"\x02" * 32)
    token.faucet(buyer, 10**24)
    token.approve(buyer, market.address, 2**256 - 1)
    owners: list[LocalAccount] = []
    ids: list[int] = []
    for i in range(assets):
        owner = _account(f"provider-{i}")
        client.fund_from_dev_faucet(owner.address)
        reg.register(owner, Role.PROVIDER, keccak(text=owner.address))
        asset_id, _ = reg_assets.register_asset(
            owner,
            manifest_hash=keccak(text=f"m{i}"),
            samples_root=keccak(text=f"r{i}"),
            sample_count=100,
            allowed_regions=["eu", "us"],
            key_nodes=[eu.address, us.address],
            manifest_cid="bafkreimanifest",
        )
        reg_assets.attest_metadata(
            eu if i % 2 == 0 else us,
            asset_id,
            metadata_hash=keccak(text=f"md{asset_id}"),
            accepted_count=100,
            metadata_cid="bafkreimetadata",
            key_nodes=[eu.address, us.address],
        )
        owners.append(owner)
        ids.append(asset_id)

    rows: list[Row] = []

    def row(metric: str, ours: int, peer: str | None = None, peer_value: int | None = None) -> None:
        ratio = None if peer_value is None else round(peer_value / ours, 3)
        rows.append(Row(metric, ours, "gas", peer, peer_value, ratio))

    fed, deployed = deploy_federation(client, node1, market.address, [eu.address, us.address])
    registered = reg.register_federation(node1, fed.address, [eu.address, us.address])
    joins = [reg.join_federation(m, fed.address).gas_used for m in (eu, us)]
    row("deploy a Federation of 2 members (once)", deployed.gas_used)
    row("registerFederation (once)", registered.gas_used)
    row("joinFederation, per member (once)", max(joins))

    def round_gas(node: str, signer: LocalAccount) -> tuple[int, dict[str, int]]:
        terms = ProposalTerms(
            asset_ids=tuple(ids),
            sample_counts=tuple(100 for _ in ids),
            selection_root=keccak(text="selection"),
            offer=10**18,
            wtp_bps=1,
            node=node,
            voting_deadline=client.latest_timestamp() + 3600,
            model_spec_hash=keccak(text="spec"),
            validation_set_hash=keccak(text="validation"),
            proposal_cid="bafkreiproposal",
        )
        pid, proposed = market.propose(buyer, terms)
        for owner in owners:
            market.vote(owner, pid, 0)
        client.advance_time(3601)
        submit_tally(market, reg_assets, dep.delegation_registry(client), dep_acct, pid,
                     selection=[(a, 100) for a in ids])  # fmt: skip
        quote = Quote(pid, 10**15, 3600, client.latest_timestamp() + 600)
        signature = sign_quote(bytes(signer.key), client.chain_id, market.address, quote)
        started = market.start_training(buyer, pid, quote, signature)
        return pid, {"propose": proposed.gas_used, "start": started.gas_used}

    tree = build_payout_tree({a: 10**17 for a in ids}, {a: i for i, a in enumerate(ids)})
    result = ResultCommitment(9000, "bafkreiresult", payout_root=tree.root)
    round_gas(eu.address, eu)  # a first round warms the market's counters: measured are later
    peer_pid, peer = round_gas(eu.address, eu)
    peer["submit"] = market.submit_result(eu, peer_pid, result).gas_used
    peer["withdraw"] = market.withdraw(eu).gas_used  # the warm-up's fee is still held
    pid, ours = round_gas(fed.address, node1)
    # the round's rendezvous: the coordinator's announcement, each member's key (OpenSSH P-384)
    announced = fed.announce_round(node1, pid, "bafkreiround" + "a" * 48).gas_used
    key = b"ecdsa-sha2-nistp384 " + b"A" * 180
    bound = max(fed.bind_key(m, pid, key).gas_used for m in (eu, us))
    ours["setFees"] = fed.set_fees(node1, pid, [6 * 10**14, 4 * 10**14]).gas_used
    ours["submit"] = fed.submit_result(node1, pid, result).gas_used
    collected = fed.collect(dep_acct, pid).gas_used
    withdrawn = [fed.withdraw(m).gas_used for m in (eu, us)]
    peer_note = "the same round named to one node"
    row(f"propose, {assets} assets, to the federation", ours["propose"], peer_note, peer["propose"])
    row("startTraining, federation", ours["start"], peer_note, peer["start"])
    row("announceRound (once per round)", announced)
    row("bindKey, per member and round", bound)
    row("setFees + submitResult through the federation", ours["setFees"] + ours["submit"],
        "submitResult by one node", peer["submit"])  # fmt: skip
    row("collect + 2 members' withdraw", collected + sum(withdrawn),
        "one node's withdraw of its fee", peer["withdraw"])  # fmt: skip
    for name in ("Federation", "TrainingMarket", "StakeholderRegistry"):
        size = len(bytes.fromhex(load_artifact(name).deployed_bytecode.removeprefix("0x")))
        ratio = round(EIP170_LIMIT / size, 3)
        rows.append(
            Row(f"{name} runtime bytecode", size, "bytes", "EIP-170 limit", EIP170_LIMIT, ratio,
                "<= 24,576", size <= EIP170_LIMIT)
        )  # fmt: skip
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory() as tmp:
        node = start_anvil(state_file=None, log_file=Path(tmp) / "anvil.log")
        try:
            rows = federation_rows(ChainClient(node.rpc_url, timeout_s=120, tx_timeout_s=120))
        finally:
            node.stop()
    emit("federation-gas", rows, as_json=args.json, packages=["web3"])


if __name__ == "__main__":
    main()
