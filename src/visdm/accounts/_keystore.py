"""Encrypted keystores on disk: one eth-account V3 JSON file per account, named by the user.

Why V3 + scrypt: it is the format every Ethereum wallet reads (geth, MetaMask import, Foundry's
``cast wallet``), so a ViSDM account can be moved in and out; scrypt makes guessing a password
costly in memory as well as time. The default cost is eth-account's standard ``n = 2**18``
(256 MiB, about a second per unlock). ``scrypt_n`` lowers it for tests and throw-away demo
accounts only (``2**10`` unlocks in milliseconds) and is recorded in the file, so reading
never needs to know it.

Layout: ``<keystore_dir>/<name>.json``, mode 0600, in a 0700 directory. The file is written
to a temporary name and hard-linked into place, so it appears whole or not at all and an
existing account is never overwritten, even by a concurrent writer. Renaming the file
renames the account. Besides the V3 fields, ViSDM records ``visdm.x25519_public`` (the derived
encryption key) so that ``list`` can show it without a password; it is re-checked on unlock.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from visdm.crypto import X25519_KDF_INFO, derive_x25519_keypair
from visdm.errors import (
    InvalidInputError,
    KeystoreError,
    KeystoreExistsError,
    KeystoreNotFoundError,
    WrongPasswordError,
)
from visdm.jsonsafe import load_untrusted_object, read_untrusted_file
from visdm.types import Address

from ._account import AccountInfo, PublicIdentity, UnlockedAccount

__all__ = [
    "DEFAULT_SCRYPT_N",
    "MIN_SCRYPT_N",
    "UnusableKeystore",
    "account_info",
    "create_account",
    "export_public",
    "import_account",
    "list_accounts",
    "load_account",
    "scan_accounts",
]

#: eth-account's standard scrypt cost (geth's "standard" too): 256 MiB per unlock
DEFAULT_SCRYPT_N = 2**18
#: the lowest cost accepted, for tests and demo accounts only
MIN_SCRYPT_N = 2**10
_MAX_SCRYPT_N = 2**20
_MAX_SCRYPT_MEMORY = 1 << 30  # 128 * r * n bytes; refuse files that ask for more than 1 GiB
_MAX_PBKDF2_ROUNDS = 10_000_000

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_ADDRESS_RE = re.compile(r"(0x)?[0-9a-fA-F]{40}")
_HEX_RE = re.compile(r"(0x)?[0-9a-fA-F]*")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_SUFFIX = ".json"
_CREATE_HINT = "create one with `visdm account new NAME`"
_CORRUPT_HINT = "restore it from a backup or move it away"


# --- public API ----------------------------------------------------------------------------------
def create_account(
    keystore_dir: Path, name: str, password: str, *, scrypt_n: int = DEFAULT_SCRYPT_N
) -> AccountInfo:
    """Create a new random account and store it as ``<keystore_dir>/<name>.json``.

    Raises :class:`~visdm.errors.KeystoreExistsError` when the name is taken (compared without
    regard to case, so that accounts survive a move to a case-insensitive file system).
    """
    _check_name(name)
    _check_password(password)
    _check_scrypt_n(scrypt_n)
    _refuse_taken_name(Path(keystore_dir), name)
    while True:  # a draw >= the curve order has probability ~2**-128, but is not a key
        secret = secrets.token_bytes(32)
        if 0 < int.from_bytes(secret, "big") < _SECP256K1_N:
            break
    return _store(Path(keystore_dir), name, secret, password, scrypt_n)


def import_account(
    keystore_dir: Path,
    name: str,
    private_key: bytes | str,
    password: str,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> AccountInfo:
    """Store an existing secp256k1 key (32 bytes, or 64 hex digits) as a new account.

    Refuses a name that is taken and a key that another account already holds.
    """
    _check_name(name)
    _check_password(password)
    _check_scrypt_n(scrypt_n)
    secret = _parse_private_key(private_key)
    keystore_dir = Path(keystore_dir)
    _refuse_taken_name(keystore_dir, name)
    address = Address(Account.from_key(secret).address)
    for info in list_accounts(keystore_dir):
        if info.address == address:
            raise KeystoreExistsError(
                f"the key for {address} is already stored as account {info.name!r} "
                f"({info.path}): use that account"
            )
    return _store(keystore_dir, name, secret, password, scrypt_n)


@dataclass(frozen=True, slots=True)
class UnusableKeystore:
    """A ``<name>.json`` in the keystore directory that cannot be read as an account, and why."""

    path: Path
    reason: str


def scan_accounts(keystore_dir: Path) -> tuple[list[AccountInfo], list[UnusableKeystore]]:
    """The accounts in ``keystore_dir`` sorted by name, and the keystores there that cannot be
    read (each named, with its reason): one corrupt file never hides the others.

    Only ``<name>.json`` files with a valid account name count; other files are ignored.
    """
    keystore_dir = Path(keystore_dir)
    if not keystore_dir.is_dir():
        return [], []
    infos: list[AccountInfo] = []
    unusable: list[UnusableKeystore] = []
    for path in sorted(keystore_dir.iterdir()):
        if path.suffix != _SUFFIX or not _NAME_RE.fullmatch(path.stem) or not path.is_file():
            continue
        try:
            infos.append(_info(path))
        except KeystoreError as exc:
            unusable.append(UnusableKeystore(path, str(exc)))
    return sorted(infos, key=lambda info: (info.name.lower(), info.name)), unusable


def list_accounts(keystore_dir: Path) -> list[AccountInfo]:
    """Every readable account in ``keystore_dir``, sorted by name (``[]`` when the directory
    is absent); :func:`scan_accounts` also names the keystores that cannot be read."""
    return scan_accounts(keystore_dir)[0]


def account_info(keystore_dir: Path, name_or_address: str) -> AccountInfo:
    """One account's public facts, found by name or by address; no password needed."""
    return _info(_find(Path(keystore_dir), name_or_address))


def load_account(keystore_dir: Path, name_or_address: str, password: str) -> UnlockedAccount:
    """Unlock an account by name or address with its password.

    Raises :class:`~visdm.errors.KeystoreNotFoundError` (listing the accounts that exist),
    :class:`~visdm.errors.WrongPasswordError`, or :class:`~visdm.errors.KeystoreError` for a
    file that is corrupt or whose recorded address or encryption key does not match its secret.
    """
    if not isinstance(password, str):
        raise InvalidInputError("password must be a string")
    path = _find(Path(keystore_dir), name_or_address)
    data = _read(path)
    info = _info_from(path, data)
    try:
        secret = bytes(Account.decrypt(data, password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPasswordError(
                f"wrong password for account {info.name!r} ({path}); "
                "set VISDM_PASSWORD or type it again"
            ) from None
        raise _corrupt(path, f"cannot decrypt: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise _corrupt(path, f"cannot decrypt: {type(exc).__name__} {exc}") from None
    local = Account.from_key(secret)
    if str(local.address) != str(info.address):
        raise _corrupt(path, f"its secret belongs to {local.address}, not to {info.address}")
    x25519 = derive_x25519_keypair(secret)
    recorded = info.x25519_public
    if recorded is not None and recorded != "0x" + x25519.public.hex():
        raise _corrupt(
            path,
            f"it records X25519 key {recorded} but its secret derives 0x{x25519.public.hex()}",
        )
    return UnlockedAccount(info, local, x25519)


def export_public(keystore_dir: Path, name_or_address: str, password: str) -> PublicIdentity:
    """Address and X25519 public key, derived from the unlocked secret (safe to publish)."""
    return load_account(keystore_dir, name_or_address, password).public_identity()


# --- validation ----------------------------------------------------------------------------------
def _check_name(name: object) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInputError(
            f"account name {name!r} is not valid: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter, digit or '_'"
        )
    if _ADDRESS_RE.fullmatch(name):
        raise InvalidInputError(
            f"account name {name!r} looks like an address: pick a name that cannot be "
            "mistaken for one"
        )


def _check_password(password: object) -> None:
    if not isinstance(password, str) or not password:
        raise InvalidInputError("the password must be a non-empty string")


def _check_scrypt_n(scrypt_n: object) -> None:
    if (
        isinstance(scrypt_n, bool)
        or not isinstance(scrypt_n, int)
        or not MIN_SCRYPT_N <= scrypt_n <= _MAX_SCRYPT_N
        or scrypt_n & (scrypt_n - 1)
    ):
        raise InvalidInputError(
            f"scrypt n={scrypt_n!r} is not a power of two between {MIN_SCRYPT_N} and "
            f"{_MAX_SCRYPT_N}; the default is {DEFAULT_SCRYPT_N}"
        )


def _parse_private_key(private_key: bytes | str) -> bytes:
    if isinstance(private_key, str):
        text = private_key.strip()
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", text):
            raise InvalidInputError("private key must be 64 hex digits (with or without 0x)")
        secret = bytes.fromhex(text.removeprefix("0x"))
    elif isinstance(private_key, bytes) and len(private_key) == 32:
        secret = private_key
    else:
        raise InvalidInputError("private key must be 32 bytes or 64 hex digits")
    if not 0 < int.from_bytes(secret, "big") < _SECP256K1_N:
        raise InvalidInputError("private key is 0 or not below the secp256k1 curve order")
    return secret


# --- files ---------------------------------------------------------------------------------------
def _refuse_taken_name(keystore_dir: Path, name: str) -> None:
    if not keystore_dir.is_dir():
        return
    for path in keystore_dir.iterdir():
        if path.suffix == _SUFFIX and path.stem.lower() == name.lower():
            raise KeystoreExistsError(
                f"account {path.stem!r} already exists ({path}): pick another name"
            )


def _find(keystore_dir: Path, name_or_address: str) -> Path:
    if not isinstance(name_or_address, str) or not name_or_address:
        raise InvalidInputError("give an account name or address")
    if _ADDRESS_RE.fullmatch(name_or_address):
        wanted = Address(to_checksum_address(name_or_address))
        for info in list_accounts(keystore_dir):
            if info.address == wanted:
                return info.path
        raise _not_found(keystore_dir, f"no account with address {wanted}")
    _check_name(name_or_address)
    path = keystore_dir / f"{name_or_address}{_SUFFIX}"
    if not path.is_file():
        raise _not_found(keystore_dir, f"no account named {name_or_address!r}")
    return path


def _not_found(keystore_dir: Path, what: str) -> KeystoreNotFoundError:
    infos, unusable = scan_accounts(keystore_dir)
    names = [info.name for info in infos]
    known = f"accounts there: {', '.join(names)}" if names else "there are no accounts yet"
    if unusable:  # the one asked for may be in a file that cannot be read
        known += f"; unusable keystores: {', '.join(u.path.name for u in unusable)}"
    return KeystoreNotFoundError(f"{what} in {keystore_dir} ({known}); {_CREATE_HINT}")


def _corrupt(path: Path, reason: str) -> KeystoreError:
    return KeystoreError(f"keystore {path} is unusable: {reason}; {_CORRUPT_HINT}")


def _read(path: Path) -> dict[str, Any]:
    # a V3 keystore is under 1 KiB: the bound keeps a planted huge file from being read whole
    what, hint, most = f"keystore {path} is unusable: it", _CORRUPT_HINT, 1 << 20
    try:
        raw = read_untrusted_file(path, what=what, max_bytes=most, error=KeystoreError, hint=hint)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _corrupt(path, f"cannot read it ({exc})") from None
    data = load_untrusted_object(text, what=what, max_bytes=most, error=KeystoreError, hint=hint)
    _check_v3(path, data)
    return data


def _check_v3(path: Path, data: dict[str, Any]) -> None:
    """Check the V3 structure before eth-account sees it, so its errors never surface raw."""
    if data.get("version") != 3:
        raise _corrupt(path, f"keystore version {data.get('version')!r}, expected 3")
    address = data.get("address")
    if not isinstance(address, str) or not _ADDRESS_RE.fullmatch(address):
        raise _corrupt(path, "missing or malformed 'address'")
    crypto = data.get("crypto", data.get("Crypto"))
    if not isinstance(crypto, dict):
        raise _corrupt(path, "missing 'crypto' section")
    _check_cipher(path, crypto)
    _check_kdf(path, crypto)
    visdm = data.get("visdm")
    if visdm is not None:
        x25519 = visdm.get("x25519_public") if isinstance(visdm, dict) else None
        if not isinstance(x25519, str) or not re.fullmatch(r"0x[0-9a-f]{64}", x25519):
            raise _corrupt(path, "malformed visdm.x25519_public")


def _check_cipher(path: Path, crypto: dict[str, Any]) -> None:
    if crypto.get("cipher") != "aes-128-ctr":
        raise _corrupt(path, f"cipher {crypto.get('cipher')!r}, expected 'aes-128-ctr'")
    cipherparams = crypto.get("cipherparams")
    fields = {
        "crypto.ciphertext": crypto.get("ciphertext"),
        "crypto.mac": crypto.get("mac"),
        "crypto.cipherparams.iv": cipherparams.get("iv")
        if isinstance(cipherparams, dict)
        else None,
    }
    for where, value in fields.items():
        if not isinstance(value, str) or not value or not _HEX_RE.fullmatch(value):
            raise _corrupt(path, f"missing or malformed {where}")


def _check_kdf(path: Path, crypto: dict[str, Any]) -> None:
    params = crypto.get("kdfparams")
    if not isinstance(params, dict):
        raise _corrupt(path, "missing crypto.kdfparams")
    kdf = crypto.get("kdf")
    if kdf == "scrypt":
        n, r, p = params.get("n"), params.get("r"), params.get("p")
        if not (
            isinstance(n, int) and isinstance(r, int) and isinstance(p, int) and min(n, r, p) > 0
        ):
            raise _corrupt(path, "scrypt parameters n, r, p must be positive integers")
        if 128 * r * n * p > _MAX_SCRYPT_MEMORY:
            raise _corrupt(path, f"scrypt n={n} r={r} p={p} asks for more than 1 GiB")
    elif kdf == "pbkdf2":
        rounds = params.get("c")
        if not isinstance(rounds, int) or not 0 < rounds <= _MAX_PBKDF2_ROUNDS:
            raise _corrupt(path, f"pbkdf2 rounds {rounds!r} out of range")
    else:
        raise _corrupt(path, f"key derivation {kdf!r} is not scrypt or pbkdf2")


def _info_from(path: Path, data: dict[str, Any]) -> AccountInfo:
    visdm = data.get("visdm")
    return AccountInfo(
        name=path.stem,
        address=Address(to_checksum_address(data["address"])),
        x25519_public=visdm["x25519_public"] if isinstance(visdm, dict) else None,
        path=path,
    )


def _info(path: Path) -> AccountInfo:
    return _info_from(path, _read(path))


def _store(
    keystore_dir: Path, name: str, secret: bytes, password: str, scrypt_n: int
) -> AccountInfo:
    keystore = Account.encrypt(secret, password, kdf="scrypt", iterations=scrypt_n)
    keystore["visdm"] = {
        "x25519_public": "0x" + derive_x25519_keypair(secret).public.hex(),
        "x25519_kdf_info": X25519_KDF_INFO.decode(),
    }
    path = keystore_dir / f"{name}{_SUFFIX}"
    _write_new(path, json.dumps(keystore, indent=2) + "\n")
    return _info(path)


def _write_new(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all, mode 0600, never replacing an existing file."""
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp opens it 0600
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists
        except FileExistsError:
            raise KeystoreExistsError(
                f"account {path.stem!r} already exists ({path}): pick another name"
            ) from None
        except OSError:  # file systems without hard links: check, then rename
            if path.exists():
                raise KeystoreExistsError(
                    f"account {path.stem!r} already exists ({path}): pick another name"
                ) from None
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform; the file itself is already synced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
