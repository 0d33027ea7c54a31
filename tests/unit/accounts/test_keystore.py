"""Keystores on disk: create, list, unlock, import, and every way a keystore can be refused."""

from __future__ import annotations

import copy
import json
import os
import pickle
import stat
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from visdm.accounts import (
    DEFAULT_SCRYPT_N,
    MIN_SCRYPT_N,
    AccountInfo,
    _keystore,
    account_info,
    create_account,
    export_public,
    import_account,
    list_accounts,
    load_account,
    scan_accounts,
)
from visdm.crypto import (
    Eip712Domain,
    derive_x25519_keypair,
    generate_data_key,
    verify_typed,
    wrap_key,
)
from visdm.errors import (
    InvalidInputError,
    KeystoreError,
    KeystoreExistsError,
    KeystoreNotFoundError,
    WrongPasswordError,
)
from visdm.types import Address

pytestmark = pytest.mark.unit

PASSWORD = "correct horse battery staple"
FAST = MIN_SCRYPT_N
# anvil / hardhat development account 0 (public knowledge, never holds real funds)
ANVIL_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_0_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@pytest.fixture
def keystore_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "keystore"


@pytest.fixture
def alice(keystore_dir: Path) -> AccountInfo:
    return create_account(keystore_dir, "alice", PASSWORD, scrypt_n=FAST)


def rewrite(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --- create --------------------------------------------------------------------------------------
def test_create_writes_a_v3_scrypt_keystore(keystore_dir: Path, alice: AccountInfo) -> None:
    assert alice.name == "alice"
    assert alice.path == keystore_dir / "alice.json"
    data = json.loads(alice.path.read_text())
    assert data["version"] == 3
    assert data["crypto"]["kdf"] == "scrypt"
    assert data["crypto"]["kdfparams"]["n"] == FAST
    assert Address("0x" + data["address"].lower()) == alice.address.lower()
    # Any V3 reader opens it: eth-account alone, without ViSDM.
    secret = bytes(Account.decrypt(data, PASSWORD))
    assert Account.from_key(secret).address == alice.address
    assert alice.x25519_public == "0x" + derive_x25519_keypair(secret).public.hex()


def test_create_file_modes(keystore_dir: Path, alice: AccountInfo) -> None:
    assert stat.S_IMODE(alice.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keystore_dir.stat().st_mode) == 0o700
    assert [p.name for p in keystore_dir.iterdir()] == ["alice.json"]  # no temp file left


def test_create_uses_the_standard_scrypt_cost_by_default(keystore_dir: Path) -> None:
    assert DEFAULT_SCRYPT_N == 2**18
    info = create_account(keystore_dir, "strong", PASSWORD)
    assert json.loads(info.path.read_text())["crypto"]["kdfparams"]["n"] == 2**18


def test_accounts_are_random(keystore_dir: Path) -> None:
    one = create_account(keystore_dir, "one", PASSWORD, scrypt_n=FAST)
    two = create_account(keystore_dir, "two", PASSWORD, scrypt_n=FAST)
    assert one.address != two.address
    assert one.x25519_public != two.x25519_public


def test_duplicate_name(keystore_dir: Path, alice: AccountInfo) -> None:
    before = alice.path.read_bytes()
    with pytest.raises(KeystoreExistsError, match="'alice' already exists"):
        create_account(keystore_dir, "alice", "other", scrypt_n=FAST)
    assert alice.path.read_bytes() == before


def test_duplicate_name_differing_in_case(keystore_dir: Path, alice: AccountInfo) -> None:
    with pytest.raises(KeystoreExistsError, match="'alice' already exists"):
        create_account(keystore_dir, "ALICE", PASSWORD, scrypt_n=FAST)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 65,
        "a/b",
        "../x",
        "..",
        ".hidden",
        "-rf",
        "a b",
        "ünïcode",
        "a\n",
        "x:y",
        "0x" + "ab" * 20,
        "ab" * 20,
    ],
)
def test_bad_name(keystore_dir: Path, name: str) -> None:
    with pytest.raises(InvalidInputError, match="account name"):
        create_account(keystore_dir, name, PASSWORD, scrypt_n=FAST)
    assert not keystore_dir.exists() or not any(keystore_dir.iterdir())


@pytest.mark.parametrize("name", ["a", "A" * 64, "alice_1.backup-2", "_x", "0"])
def test_good_names(keystore_dir: Path, name: str) -> None:
    assert create_account(keystore_dir, name, PASSWORD, scrypt_n=FAST).name == name


@pytest.mark.parametrize("scrypt_n", [0, 1000, 2**9, 2**21, 3 * 2**10, True])
def test_bad_scrypt_cost(keystore_dir: Path, scrypt_n: int) -> None:
    with pytest.raises(InvalidInputError, match="scrypt n"):
        create_account(keystore_dir, "alice", PASSWORD, scrypt_n=scrypt_n)


def test_empty_password(keystore_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match="password"):
        create_account(keystore_dir, "alice", "", scrypt_n=FAST)


def test_write_never_replaces_an_existing_file(keystore_dir: Path, alice: AccountInfo) -> None:
    # The race the name check cannot see: the file appears between check and write.
    with pytest.raises(KeystoreExistsError):
        _keystore._write_new(alice.path, "{}")
    assert json.loads(alice.path.read_text())["version"] == 3
    assert [p.name for p in keystore_dir.iterdir()] == ["alice.json"]


def test_write_without_hard_links(
    keystore_dir: Path, alice: AccountInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(os, "link", no_link)
    bob = create_account(keystore_dir, "bob", PASSWORD, scrypt_n=FAST)
    assert load_account(keystore_dir, "bob", PASSWORD).address == bob.address
    with pytest.raises(KeystoreExistsError):
        _keystore._write_new(alice.path, "{}")
    assert sorted(p.name for p in keystore_dir.iterdir()) == ["alice.json", "bob.json"]


# --- list and show -------------------------------------------------------------------------------
def test_list_missing_or_empty_dir(keystore_dir: Path) -> None:
    assert list_accounts(keystore_dir) == []
    keystore_dir.mkdir(parents=True)
    assert list_accounts(keystore_dir) == []


def test_list_sorted_and_ignores_other_files(keystore_dir: Path) -> None:
    for name in ["carol", "Bob", "alice"]:
        create_account(keystore_dir, name, PASSWORD, scrypt_n=FAST)
    (keystore_dir / "notes.txt").write_text("not a keystore")
    (keystore_dir / ".alice.x1y2.tmp").write_text("{")
    (keystore_dir / "bad name.json").write_text("{")
    (keystore_dir / "sub.json").mkdir()
    assert [info.name for info in list_accounts(keystore_dir)] == ["alice", "Bob", "carol"]


def test_account_info_by_name_and_address(keystore_dir: Path, alice: AccountInfo) -> None:
    assert account_info(keystore_dir, "alice") == alice
    assert account_info(keystore_dir, alice.address) == alice
    assert account_info(keystore_dir, alice.address.lower()) == alice
    assert account_info(keystore_dir, alice.address[2:]) == alice


# --- unlock --------------------------------------------------------------------------------------
def test_load_by_name_and_address(keystore_dir: Path, alice: AccountInfo) -> None:
    unlocked = load_account(keystore_dir, "alice", PASSWORD)
    assert unlocked.name == "alice"
    assert unlocked.address == alice.address
    assert unlocked.info == alice
    assert str(unlocked.local_account.address) == alice.address
    assert "0x" + unlocked.x25519_public.hex() == alice.x25519_public
    assert load_account(keystore_dir, alice.address.lower(), PASSWORD).address == alice.address


def test_unlocked_account_signs_and_unwraps(keystore_dir: Path, alice: AccountInfo) -> None:
    unlocked = load_account(keystore_dir, "alice", PASSWORD)
    domain = Eip712Domain("ViSDM", "1", 31337, Address("0x" + "11" * 20))
    types = {"Ping": [{"name": "n", "type": "uint256"}]}
    signature = unlocked.sign_typed(domain, types, "Ping", {"n": 1})
    verify_typed(signature, domain, types, "Ping", {"n": 1}, expected_signer=alice.address)
    data_key = generate_data_key()
    assert unlocked.unwrap_key(wrap_key(data_key, unlocked.x25519_public)) == data_key


def test_unlocked_account_hides_its_secrets(keystore_dir: Path, alice: AccountInfo) -> None:
    unlocked = load_account(keystore_dir, "alice", PASSWORD)
    secret_hex = bytes(unlocked.local_account.key).hex()
    x25519_secret = derive_x25519_keypair(bytes(unlocked.local_account.key)).private.hex()
    for text in (repr(unlocked), str(unlocked)):
        assert "alice" in text
        assert secret_hex not in text
        assert x25519_secret not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(unlocked)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.deepcopy(unlocked)


def test_export_public(keystore_dir: Path, alice: AccountInfo) -> None:
    identity = export_public(keystore_dir, "alice", PASSWORD)
    assert identity.name == "alice"
    assert identity.address == alice.address
    assert identity.x25519_public == alice.x25519_public


def test_wrong_password(keystore_dir: Path, alice: AccountInfo) -> None:
    with pytest.raises(WrongPasswordError, match="wrong password for account 'alice'"):
        load_account(keystore_dir, "alice", "not the password")
    with pytest.raises(WrongPasswordError):
        export_public(keystore_dir, "alice", "")


def test_unknown_name_lists_accounts_and_says_how_to_create(
    keystore_dir: Path, alice: AccountInfo
) -> None:
    create_account(keystore_dir, "bob", PASSWORD, scrypt_n=FAST)
    with pytest.raises(KeystoreNotFoundError, match="no account named 'carol'") as caught:
        load_account(keystore_dir, "carol", PASSWORD)
    message = str(caught.value)
    assert "alice, bob" in message
    assert "visdm account new NAME" in message


def test_unknown_name_in_empty_store(keystore_dir: Path) -> None:
    with pytest.raises(KeystoreNotFoundError, match="no accounts yet"):
        account_info(keystore_dir, "alice")


def test_unknown_address(keystore_dir: Path, alice: AccountInfo) -> None:
    with pytest.raises(KeystoreNotFoundError, match=f"no account with address {ANVIL_0_ADDRESS}"):
        load_account(keystore_dir, ANVIL_0_ADDRESS.lower(), PASSWORD)


def test_lookup_with_bad_name(keystore_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match="account name"):
        load_account(keystore_dir, "../etc/passwd", PASSWORD)
    with pytest.raises(InvalidInputError):
        account_info(keystore_dir, "")


# --- corrupt keystores ---------------------------------------------------------------------------
CORRUPTIONS: dict[str, Any] = {
    "version": lambda d: d.update(version=4),
    "no-address": lambda d: d.pop("address"),
    "bad-address": lambda d: d.update(address="xyz"),
    "no-crypto": lambda d: d.pop("crypto"),
    "cipher": lambda d: d["crypto"].update(cipher="aes-256-gcm"),
    "mac-not-hex": lambda d: d["crypto"].update(mac="zz"),
    "no-ciphertext": lambda d: d["crypto"].pop("ciphertext"),
    "no-iv": lambda d: d["crypto"].pop("cipherparams"),
    "kdf": lambda d: d["crypto"].update(kdf="argon2"),
    "no-kdfparams": lambda d: d["crypto"].pop("kdfparams"),
    "scrypt-n-type": lambda d: d["crypto"]["kdfparams"].update(n="1024"),
    "scrypt-huge": lambda d: d["crypto"]["kdfparams"].update(n=2**30),
    "x25519-record": lambda d: d["visdm"].update(x25519_public="0x00"),
    "visdm-not-object": lambda d: d.update(visdm=[]),
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS.values()), ids=list(CORRUPTIONS))
def test_corrupt_keystore_is_named(keystore_dir: Path, alice: AccountInfo, corrupt: Any) -> None:
    rewrite(alice.path, corrupt)
    for call in (
        lambda: load_account(keystore_dir, "alice", PASSWORD),
        lambda: account_info(keystore_dir, "alice"),
    ):
        with pytest.raises(KeystoreError, match=str(alice.path)) as caught:
            call()
        assert type(caught.value) is KeystoreError
    # listing names it beside the readable accounts instead of failing
    accounts, unusable = scan_accounts(keystore_dir)
    assert accounts == list_accounts(keystore_dir) == []
    assert [u.path for u in unusable] == [alice.path]
    assert unusable[0].reason.startswith(f"keystore {alice.path} is unusable")


@pytest.mark.parametrize(
    "text", ["", "{", "[]", "null", '"x"'], ids=["empty", "truncated", "array", "null", "string"]
)
def test_keystore_that_is_not_a_json_object(
    keystore_dir: Path, alice: AccountInfo, text: str
) -> None:
    alice.path.write_text(text)
    with pytest.raises(KeystoreError, match=f"keystore {alice.path} is unusable"):
        load_account(keystore_dir, "alice", PASSWORD)


def test_keystore_that_is_not_utf8(keystore_dir: Path, alice: AccountInfo) -> None:
    alice.path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KeystoreError, match="cannot read it"):
        account_info(keystore_dir, "alice")


def test_odd_length_ciphertext(keystore_dir: Path, alice: AccountInfo) -> None:
    rewrite(alice.path, lambda d: d["crypto"].update(ciphertext=d["crypto"]["ciphertext"][:-1]))
    with pytest.raises(KeystoreError, match=str(alice.path)) as caught:
        load_account(keystore_dir, "alice", PASSWORD)
    assert not isinstance(caught.value, WrongPasswordError)


def test_address_that_does_not_match_the_secret(keystore_dir: Path, alice: AccountInfo) -> None:
    rewrite(alice.path, lambda d: d.update(address=ANVIL_0_ADDRESS[2:]))
    with pytest.raises(KeystoreError, match=f"not to {ANVIL_0_ADDRESS}"):
        load_account(keystore_dir, "alice", PASSWORD)


def test_substituted_encryption_key_is_caught(keystore_dir: Path, alice: AccountInfo) -> None:
    # Someone who can write the file swaps in their own X25519 key: unlocking must notice
    # before the account publishes it.
    attacker = "0x" + derive_x25519_keypair(bytes(31) + b"\x07").public.hex()
    rewrite(alice.path, lambda d: d["visdm"].update(x25519_public=attacker))
    assert account_info(keystore_dir, "alice").x25519_public == attacker
    with pytest.raises(KeystoreError, match=f"records X25519 key {attacker}"):
        export_public(keystore_dir, "alice", PASSWORD)


# --- keystores from other tools, and import ------------------------------------------------------
def test_foreign_v3_keystore_without_visdm_record(keystore_dir: Path) -> None:
    keystore_dir.mkdir(parents=True)
    path = keystore_dir / "geth.json"
    path.write_text(
        json.dumps(Account.encrypt(bytes.fromhex(ANVIL_0_KEY[2:]), PASSWORD, kdf="pbkdf2"))
    )
    info = account_info(keystore_dir, "geth")
    assert info.address == ANVIL_0_ADDRESS
    assert info.x25519_public is None
    unlocked = load_account(keystore_dir, ANVIL_0_ADDRESS, PASSWORD)
    expected = derive_x25519_keypair(bytes.fromhex(ANVIL_0_KEY[2:])).public
    assert unlocked.x25519_public == expected


def test_import_hex_key(keystore_dir: Path) -> None:
    info = import_account(keystore_dir, "dev0", ANVIL_0_KEY, PASSWORD, scrypt_n=FAST)
    assert info.address == ANVIL_0_ADDRESS
    unlocked = load_account(keystore_dir, "dev0", PASSWORD)
    assert bytes(unlocked.local_account.key).hex() == ANVIL_0_KEY[2:]


def test_import_raw_bytes_without_prefix(keystore_dir: Path) -> None:
    info = import_account(
        keystore_dir, "dev0", bytes.fromhex(ANVIL_0_KEY[2:]), PASSWORD, scrypt_n=FAST
    )
    assert info.address == ANVIL_0_ADDRESS


def test_import_same_key_twice(keystore_dir: Path) -> None:
    import_account(keystore_dir, "dev0", ANVIL_0_KEY, PASSWORD, scrypt_n=FAST)
    with pytest.raises(KeystoreExistsError, match="already stored as account 'dev0'"):
        import_account(keystore_dir, "again", ANVIL_0_KEY[2:], PASSWORD, scrypt_n=FAST)
    assert not (keystore_dir / "again.json").exists()


@pytest.mark.parametrize(
    "key",
    ["", "0x1234", "zz" * 32, "0x" + "00" * 32, "0x" + "ff" * 32, bytes(31), bytes(32)],
    ids=["empty", "short", "not-hex", "zero", "above-order", "31-bytes", "zero-bytes"],
)
def test_import_bad_key(keystore_dir: Path, key: str | bytes) -> None:
    with pytest.raises(InvalidInputError, match="private key"):
        import_account(keystore_dir, "dev0", key, PASSWORD, scrypt_n=FAST)
