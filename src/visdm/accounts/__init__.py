"""Accounts: the one secret that signs for a stakeholder and opens the data sealed to it.

Design section 3.1: an account is an Ethereum key in an encrypted eth-account V3 keystore
(scrypt), one file per account under ``Settings.keystore_dir``, named by the user. Its X25519
encryption key is derived from the same secret (:func:`visdm.crypto.derive_x25519_keypair`),
so backing up the keystore and its password backs up both.

:func:`create_account` / :func:`import_account` write a keystore, :func:`list_accounts`,
:func:`scan_accounts` (which also names unreadable keystores) and :func:`account_info` read
public facts without a password, :func:`load_account` unlocks an
:class:`UnlockedAccount` (signs, unwraps data keys; never shows its secrets), and
:func:`export_public` gives the checked address and X25519 key to publish on chain.
"""

from ._account import AccountInfo, PublicIdentity, UnlockedAccount
from ._keystore import (
    DEFAULT_SCRYPT_N,
    MIN_SCRYPT_N,
    UnusableKeystore,
    account_info,
    create_account,
    export_public,
    import_account,
    list_accounts,
    load_account,
    scan_accounts,
)

__all__ = [
    "DEFAULT_SCRYPT_N",
    "MIN_SCRYPT_N",
    "AccountInfo",
    "PublicIdentity",
    "UnlockedAccount",
    "UnusableKeystore",
    "account_info",
    "create_account",
    "export_public",
    "import_account",
    "list_accounts",
    "load_account",
    "scan_accounts",
]
