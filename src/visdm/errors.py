"""Every error ViSDM raises on purpose.

One root, :class:`VisdmError`; each subclass also derives from the matching built-in so that
callers who only know Python's exceptions still catch them. Messages say what was wrong, with
which input, and what to do about it.

::

    VisdmError
    ├── ConfigError (ValueError)
    ├── InvalidInputError (ValueError)
    │   ├── InvalidImageError                    a file is not an acceptable image sample
    │   ├── NoValidSamplesError                  no file of an asset passed validation
    │   ├── InvalidManifestError                 an asset manifest is unsafe, malformed or
    │   │                                        off-schema
    │   ├── InvalidProposalError                 a training proposal is malformed or
    │   │                                        disagrees with the chain
    │   ├── InvalidModelSpecError                a model spec is malformed or off-schema
    │   ├── DesignLimitError                     a model spec exceeds a compute node's limits
    │   └── ModelFileError                       a model file is corrupt or does not fit its spec
    ├── KeystoreError
    │   ├── KeystoreNotFoundError (FileNotFoundError)
    │   ├── KeystoreExistsError (FileExistsError)
    │   └── WrongPasswordError (ValueError)
    ├── CryptoError
    │   ├── CiphertextFormatError (ValueError)   truncated or malformed ciphertext
    │   ├── DecryptionError (ValueError)         wrong key, or the ciphertext was tampered with
    │   └── SignatureError (ValueError)          a signature does not verify
    ├── StorageError
    │   ├── InvalidCidError (ValueError)
    │   ├── BlobNotFoundError (LookupError)
    │   ├── CidMismatchError (ValueError)        bytes do not hash to the CID they came under
    │   ├── BlobTooLargeError (ValueError)       content is larger than the caller accepts
    │   └── StorageUnavailableError (ConnectionError)
    ├── ChainError
    │   ├── ChainNotRunningError (ConnectionError)
    │   ├── ChainTimeoutError (TimeoutError)
    │   ├── WrongChainError (ValueError)
    │   ├── DeploymentNotFoundError (FileNotFoundError)
    │   ├── ContractBuildError (RuntimeError)
    │   ├── ArtifactError (LookupError)
    │   ├── TransactionFailedError (RuntimeError)
    │   └── ContractRevertError (RuntimeError)   a custom Solidity error, decoded
    │       ├── RevertReasonError                 require(...) / revert("...")
    │       └── PanicError                        assert, overflow, division by zero
    ├── SandboxError
    │   ├── SandboxUnavailableError (RuntimeError)    bwrap is missing or cannot make namespaces
    │   └── EntryPointNotAllowedError (PermissionError)  a job names code off the allow-list
    ├── IndexDatabaseError                       the marketplace index's database cannot be
    │                                            reached, opened or used
    ├── FederationError                          a federated round failed
    │   ├── FederationProcessError (RuntimeError)    SuperLink/SuperNode start, answer, stop
    │   ├── NodeNotInFederationError (PermissionError)  a key the proposal does not name
    │   └── FederationRoundError (RuntimeError)      too few regions left, or a bad reply
    └── ZkProofError                             a zero-knowledge accuracy proof failed
        ├── ZkInputError (ValueError)            wrong k, shapes, labels or indices
        ├── ZkArtifactError (FileNotFoundError)  a circuit's key, settings or SRS is missing
        └── ZkBackendError (RuntimeError)        ezkl refused or failed a step
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ArtifactError",
    "BlobNotFoundError",
    "BlobTooLargeError",
    "ChainError",
    "ChainNotRunningError",
    "ChainTimeoutError",
    "CidMismatchError",
    "CiphertextFormatError",
    "ConfigError",
    "ContractBuildError",
    "ContractRevertError",
    "CryptoError",
    "DecryptionError",
    "DeploymentNotFoundError",
    "DesignLimitError",
    "EntryPointNotAllowedError",
    "FederationError",
    "FederationProcessError",
    "FederationRoundError",
    "IndexDatabaseError",
    "InvalidCidError",
    "InvalidImageError",
    "InvalidInputError",
    "InvalidManifestError",
    "InvalidModelSpecError",
    "InvalidProposalError",
    "KeystoreError",
    "KeystoreExistsError",
    "KeystoreNotFoundError",
    "ModelFileError",
    "NoValidSamplesError",
    "NodeNotInFederationError",
    "PanicError",
    "RevertReasonError",
    "SandboxError",
    "SandboxUnavailableError",
    "SignatureError",
    "StorageError",
    "StorageUnavailableError",
    "TransactionFailedError",
    "VisdmError",
    "WrongChainError",
    "WrongPasswordError",
    "ZkArtifactError",
    "ZkBackendError",
    "ZkInputError",
    "ZkProofError",
]


class VisdmError(Exception):
    """Root of every error ViSDM raises on purpose."""

    #: exit status the CLI uses for this kind of error
    exit_code: int = 1


class ConfigError(VisdmError, ValueError):
    """A setting is missing or malformed."""

    exit_code = 2


class InvalidInputError(VisdmError, ValueError):
    """Input from a user or a peer is malformed."""

    exit_code = 2


class InvalidImageError(InvalidInputError):
    """A file cannot be a sample: not decodable, a disallowed format, too large, or a bomb."""


class NoValidSamplesError(InvalidInputError):
    """Validation rejected every file of an asset, so there is nothing to register."""


class InvalidManifestError(InvalidInputError):
    """An asset manifest is unsafe (DOCTYPE, entities), malformed XML, or violates the schema."""


class InvalidProposalError(InvalidInputError):
    """A training proposal document is malformed, or disagrees with the chain."""


class InvalidModelSpecError(InvalidInputError):
    """A model spec is not valid JSON or violates the spec schema (field and value named)."""


class DesignLimitError(InvalidInputError):
    """A model spec is well-formed but exceeds a compute node's limits (limit and value named)."""


class ModelFileError(InvalidInputError):
    """A model file is unreadable, or its tensors or spec hash do not match the model spec."""


class KeystoreError(VisdmError):
    """An account keystore cannot be used."""

    exit_code = 3


class KeystoreNotFoundError(KeystoreError, FileNotFoundError):
    """No keystore exists for the requested account."""


class KeystoreExistsError(KeystoreError, FileExistsError):
    """A keystore for this account already exists."""


class WrongPasswordError(KeystoreError, ValueError):
    """The password does not open the keystore."""


class CryptoError(VisdmError):
    """Encryption, decryption or a signature failed."""

    exit_code = 4


class CiphertextFormatError(CryptoError, ValueError):
    """A ciphertext is truncated or not in ViSDM's envelope format."""


class DecryptionError(CryptoError, ValueError):
    """Authenticated decryption failed: wrong key, or the ciphertext was modified."""


class SignatureError(CryptoError, ValueError):
    """A signature is malformed or was not made by the expected signer."""


class StorageError(VisdmError):
    """The content store cannot serve a request."""

    exit_code = 5


class InvalidCidError(StorageError, ValueError):
    """A string is not a CID ViSDM understands."""


class BlobNotFoundError(StorageError, LookupError):
    """The store holds no content under this CID."""


class CidMismatchError(StorageError, ValueError):
    """Bytes returned for a CID do not hash to that CID."""


class BlobTooLargeError(StorageError, ValueError):
    """Content is larger than the caller accepts; it was not read in full."""


class StorageUnavailableError(StorageError, ConnectionError):
    """The storage backend cannot be reached."""


class ChainError(VisdmError):
    """Talking to the chain failed."""

    exit_code = 6


class ChainNotRunningError(ChainError, ConnectionError):
    """No JSON-RPC node answers at the configured URL."""


class ChainTimeoutError(ChainError, TimeoutError):
    """The node did not answer, or a transaction was not mined, in time."""


class WrongChainError(ChainError, ValueError):
    """The node's chain id differs from the deployment's."""


class DeploymentNotFoundError(ChainError, FileNotFoundError):
    """No deployment file exists for the requested chain."""


class ContractBuildError(ChainError, RuntimeError):
    """Compiling the Solidity sources failed."""


class ArtifactError(ChainError, LookupError):
    """A compiled contract artifact is missing or malformed."""


class TransactionFailedError(ChainError, RuntimeError):
    """A transaction was mined but failed without a decodable reason."""


class ContractRevertError(ChainError, RuntimeError):
    """A contract call reverted with a custom Solidity error.

    ``error_name`` is the Solidity error's name (``StakeholderRegistryAlreadyRegistered``),
    ``error_args`` its decoded arguments by parameter name, ``contract`` the contract whose ABI
    declared it (when known).
    """

    def __init__(
        self,
        error_name: str,
        error_args: Mapping[str, Any] | None = None,
        *,
        contract: str | None = None,
        action: str | None = None,
    ) -> None:
        self.error_name = error_name
        self.error_args: dict[str, Any] = dict(error_args or {})
        self.contract = contract
        self.action = action
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.error_args.items())
        where = f"{action} reverted" if action else "call reverted"
        super().__init__(f"{where}: {error_name}({args})")


class RevertReasonError(ContractRevertError):
    """A call reverted with a plain reason string (``Error(string)``)."""

    def __init__(self, reason: str, *, action: str | None = None) -> None:
        super().__init__("Error", {"reason": reason}, action=action)
        self.reason = reason


class PanicError(ContractRevertError):
    """A call reverted with ``Panic(uint256)``: a failed assert or an arithmetic fault."""

    def __init__(self, code: int, *, action: str | None = None) -> None:
        super().__init__("Panic", {"code": hex(code)}, action=action)
        self.code = code


class SandboxError(VisdmError):
    """A training job could not be run in the compute node's sandbox."""

    exit_code = 7


class SandboxUnavailableError(SandboxError, RuntimeError):
    """``bwrap`` is missing or cannot create namespaces, so no job may touch decrypted data."""


class EntryPointNotAllowedError(SandboxError, PermissionError):
    """A sandbox job names an entry point that is not on the caller's allow-list."""


class IndexDatabaseError(VisdmError):
    """The marketplace index's database (SQLite file or PostgreSQL server) cannot be reached,
    opened or used; the message names the URL with its password hidden."""

    exit_code = 8


class FederationError(VisdmError):
    """A federated round (SuperLink, SuperNodes, their keys or the round itself) failed."""

    exit_code = 11


class FederationProcessError(FederationError, RuntimeError):
    """A SuperLink or SuperNode process would not start, answer or stop."""


class NodeNotInFederationError(FederationError, PermissionError):
    """A SuperNode key is not one of the nodes the proposal names, or not an admitted node's."""


class FederationRoundError(FederationError, RuntimeError):
    """A federated round cannot go on: too few regions left, or a region's reply is bad."""


class ZkProofError(VisdmError):
    """Building, proving or checking a zero-knowledge proof of an accuracy claim failed."""


class ZkInputError(ZkProofError, ValueError):
    """Input to the proof is wrong: k, image shapes, labels, indices or a proof's layout."""

    exit_code = 2


class ZkArtifactError(ZkProofError, FileNotFoundError):
    """A circuit's file (settings, compiled circuit, keys, SRS) is missing or unreadable."""

    exit_code = 2


class ZkBackendError(ZkProofError, RuntimeError):
    """ezkl (or the Solidity compiler it needs) refused or failed a step."""


def _short(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return repr(value) if isinstance(value, str) else str(value)
