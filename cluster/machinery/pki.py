"""The cluster PKI as a public API: a private CA, issuing certificates signed by it, loading and
checking PEM pairs (the role of Kubernetes' certutil/keyutil).

Who uses it: the API server (its serving certificate, the admin and user client certificates), the
node agent (its serving certificate), the bootstrap (kubelet client credentials).

Invariants:
- A pair is stored key first, then certificate, each written atomically with its final mode 0600
  (``cluster.machinery.files``); a crash between the two leaves a mismatched pair, which
  ``load_pair`` rejects, so the caller re-issues it.
- ``fresh`` is the one renewal rule: a certificate is re-issued when it is not yet valid (beyond
  ``CLOCK_SKEW``) or expires within ``RENEW_BEFORE``.
- Keys are EC P-256: small, fast to generate, and accepted by Go's crypto/tls and OpenSSL alike.

Randomness (keys, serial numbers) comes from the OS through ``cryptography``; every function that
depends on time takes ``now`` so tests can pin it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cluster.machinery.files import write_file_atomic

CA_COMMON_NAME = "raykube-ca"
CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
# Backdate notBefore so a peer whose clock is slightly behind still accepts a fresh certificate.
CLOCK_SKEW = timedelta(minutes=5)

KEY_MODE = 0o600
CERT_MODE = 0o600  # public, but nothing in a data directory is for other users

PrivateKey = ec.EllipticCurvePrivateKey


class CaFiles(Protocol):
    """Where a CA's certificate and key live (``cluster.apiserver.tls.Pki`` is one)."""

    @property
    def ca_cert(self) -> Path: ...

    @property
    def ca_key(self) -> Path: ...


# ---------------------------------------------------------------------------------------------
# PEM files


def key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """The certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, PrivateKey] | None:
    """The certificate and key at these paths, or None if either is missing, unreadable or mismatched."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return None
    return cert, key


def store_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: PrivateKey) -> None:
    """Write both files atomically with mode 0600; the parent directory must exist."""
    # Key first: a crash between the two writes leaves a mismatched pair, which load_pair rejects.
    write_file_atomic(key_path, key_pem(key), mode=KEY_MODE)
    write_file_atomic(cert_path, cert_pem(cert), mode=CERT_MODE)


# ---------------------------------------------------------------------------------------------
# Certificate construction


def new_key() -> PrivateKey:
    """A fresh EC P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def subject_name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    """A subject as Kubernetes reads it: CN is the user, each O a group."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def new_ca(now: datetime) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed CA (``CA_COMMON_NAME``) valid for ``CA_VALIDITY`` from ``now``."""
    key = new_key()
    subject = subject_name(CA_COMMON_NAME)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def san_entries(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """IP literals become IP SANs, everything else DNS SANs; duplicates dropped, order kept."""
    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in hosts:
        if not host or host in seen:
            continue
        seen.add(host)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return entries


def issue_leaf(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier | Sequence[x509.ObjectIdentifier],
    now: datetime,
    validity: timedelta,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A new key and a certificate for it signed by the CA, for ``usage`` (server or client auth, or
    both: a sequence), valid for ``validity`` from ``now`` but never past the CA's own expiry."""
    usages = [usage] if isinstance(usage, x509.ObjectIdentifier) else list(usage)
    key = new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether ``cert`` carries a valid signature by ``ca_cert``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def fresh(cert: x509.Certificate, now: datetime) -> bool:
    """Whether ``cert`` is valid at ``now`` and will not need renewing within ``RENEW_BEFORE``."""
    return cert.not_valid_before_utc <= now + CLOCK_SKEW and now + RENEW_BEFORE < cert.not_valid_after_utc


def certificate_hosts(cert: x509.Certificate) -> set[str]:
    """The DNS names and IP addresses (as normalized strings) in a certificate's SANs."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    hosts = set(san.get_values_for_type(x509.DNSName))
    hosts.update(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return hosts


def normalize_host(host: str) -> str:
    """IP literals in their canonical text form (as ``certificate_hosts`` reports them), names as is."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def load_ca(ca: CaFiles) -> tuple[x509.Certificate, PrivateKey]:
    """The CA's certificate and key; ``FileNotFoundError`` if they are missing, unreadable or
    mismatched (the cluster PKI has not been created yet)."""
    loaded = load_pair(ca.ca_cert, ca.ca_key)
    if loaded is None:
        raise FileNotFoundError(f"no usable CA at {ca.ca_cert} / {ca.ca_key}")
    return loaded
