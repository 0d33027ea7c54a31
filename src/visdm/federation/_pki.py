"""Keys and certificates of one federated round.

The coordinator makes a fresh certificate authority per round (:func:`make_round_tls`): the
SuperLink serves TLS with a certificate it signed for the loopback or given address, and the
SuperNodes trust only that CA, so a certificate from an earlier round or another coordinator is
worthless. Each regional node authenticates to the SuperLink with its own EC key
(:func:`new_supernode_key`, P-384 as Flower asks for a NIST curve, OpenSSH encoding as its
``--auth-supernode-private-key`` and ``flwr supernode register`` read it); the coordinator
registers only the public keys of the nodes the proposal names.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["RoundTLS", "SuperNodeKey", "make_round_tls", "new_supernode_key"]

_VALIDITY = datetime.timedelta(days=2)  # a round's deadlines are hours, not days


@dataclass(frozen=True, slots=True)
class RoundTLS:
    """Paths of a round's CA certificate and the SuperLink's certificate and key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True, slots=True)
class SuperNodeKey:
    """A regional node's SuperNode key pair on disk (private key readable by its owner only)."""

    private_key: Path
    public_key: Path

    def public_openssh(self) -> bytes:
        """The public key as ``ecdsa-sha2-nistp384 AAAA...``, what the coordinator registers."""
        return self.public_key.read_bytes().strip()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_round_tls(directory: Path, *, host: str = "127.0.0.1") -> RoundTLS:
    """A new CA and a SuperLink certificate for ``host`` (an IP address or a DNS name)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "visdm round CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA384())
    )
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    tls = RoundTLS(directory / "ca.pem", directory / "superlink.pem", directory / "superlink.key")
    tls.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        tls.server_key,
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return tls


def new_supernode_key(directory: Path, name: str) -> SuperNodeKey:
    """A fresh P-384 key pair for one SuperNode, as ``<name>`` and ``<name>.pub``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    pair = SuperNodeKey(directory / name, directory / f"{name}.pub")
    _write_private(
        pair.private_key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    pair.public_key.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )
    return pair
