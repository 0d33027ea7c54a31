"""The demo that ``make demo`` runs: the marketplace end to end on its embedded defaults.

Today it plays the stakeholder-registration round trip (paper Algorithm 1) with real parts:
encrypted keystores, a local anvil chain started and stopped here, the deployed contracts, and
a sample encrypted, stored under its Kubo-identical CID, and opened only by the key it was
sealed to. Everything lives in one data directory, a fresh temporary one unless given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from visdm import session
from visdm.accounts import UnlockedAccount, create_account, load_account
from visdm.chain.anvil import chain_down, chain_up
from visdm.config import Settings
from visdm.crypto import decrypt_blob, encrypt_blob, generate_data_key, wrap_key
from visdm.errors import DecryptionError, InvalidInputError
from visdm.storage import LocalStore
from visdm.types import Role

__all__ = ["DemoReport", "DemoStep", "run_demo"]

_DEMO_PASSWORD = "visdm-demo"  # noqa: S105 - a throw-away demo keystore in a temporary directory


def _seal_sample(store: LocalStore, *, sender: UnlockedAccount, reader: UnlockedAccount) -> str:
    """The sender seals one sample to the reader: only the reader's derived X25519 key opens it."""
    data_key = generate_data_key()
    sample = b"\x89PNG demo sample bytes " * 64
    cid = store.put(encrypt_blob(data_key, sample, aad=b"sample:0"))
    wrapped = wrap_key(data_key, reader.x25519_public)
    if decrypt_blob(reader.unwrap_key(wrapped), store.get(cid), aad=b"sample:0") != sample:
        raise DecryptionError("the demo sample did not survive the round trip")
    try:
        sender.unwrap_key(wrapped)
    except DecryptionError:
        return cid
    raise DecryptionError("a key wrapped for the reader opened with the sender's key")


@dataclass(slots=True)
class DemoStep:
    """One step of the demo: what happened, how long it took, the gas it cost."""

    name: str
    detail: str
    seconds: float
    gas_used: int | None = None


@dataclass(slots=True)
class DemoReport:
    """Everything the demo did, for printing or ``--json``."""

    home: str
    rpc_url: str = ""
    chain_id: int = 0
    steps: list[DemoStep] = field(default_factory=list)
    accounts: dict[str, dict[str, object]] = field(default_factory=dict)
    sample_cid: str = ""
    total_seconds: float = 0.0


def run_demo(
    home: Path,
    *,
    scrypt_n: int | None = None,
    on_step: Callable[[DemoStep], None] | None = None,
) -> DemoReport:
    """Play the round trip in ``home`` (which must be empty or absent) and report it."""
    if home.exists() and any(home.iterdir()):
        raise InvalidInputError(f"the demo needs an empty data directory; {home} is not empty")
    started = time.perf_counter()
    settings = Settings(home=home)
    report = DemoReport(home=str(home))

    def step(name: str, detail: str, t0: float, gas: int | None = None) -> None:
        item = DemoStep(name, detail, round(time.perf_counter() - t0, 3), gas)
        report.steps.append(item)
        if on_step is not None:
            on_step(item)

    kdf = {} if scrypt_n is None else {"scrypt_n": scrypt_n}
    t0 = time.perf_counter()
    for name in ("ada", "bob"):
        create_account(settings.keystore_dir, name, _DEMO_PASSWORD, **kdf)
    step("account new", "ada (provider) and bob (consumer): scrypt V3 keystores", t0)

    t0 = time.perf_counter()
    node, _ = chain_up(settings.chain_dir)
    report.rpc_url = node.rpc_url
    try:
        step("chain up", f"anvil at {node.rpc_url}, state in {settings.chain_dir}", t0)
        ada = load_account(settings.keystore_dir, "ada", _DEMO_PASSWORD)
        bob = load_account(settings.keystore_dir, "bob", _DEMO_PASSWORD)

        t0 = time.perf_counter()
        deployment = session.deploy(settings, ada.local_account)
        report.chain_id = deployment.chain_id
        gas = sum(c.gas_used for c in deployment.contracts.values())
        names = ", ".join(deployment.contracts)
        step("deploy", f"{names} on chain {deployment.chain_id}", t0, gas)

        for who, account, role in (("ada", ada, Role.PROVIDER), ("bob", bob, Role.CONSUMER)):
            t0 = time.perf_counter()
            as_who = replace(settings, account=who)
            record = session.register(as_who, account.local_account, role, account.x25519_public)
            me = session.whoami(as_who, account.address, account.x25519_public)
            step(f"register {who}", f"{', '.join(me.roles)} at {record.address}", t0)
            report.accounts[who] = {
                "address": me.address,
                "roles": me.roles,
                "encryption_key": me.encryption_key,
                "key_matches": me.key_matches,
            }

        t0 = time.perf_counter()
        report.sample_cid = _seal_sample(LocalStore(settings.store_dir), sender=ada, reader=bob)
        step("seal sample", f"stored as {report.sample_cid}; bob opens it, ada cannot", t0)
    finally:
        chain_down(settings.chain_dir)
    report.total_seconds = round(time.perf_counter() - started, 3)
    return report
