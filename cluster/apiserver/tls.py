"""TLS material for the API server: a private CA, the serving certificate, client certificates.

Role: make the API server reachable over HTTPS by the real kubectl and the Python client, and let
client certificates authenticate users the way kube-apiserver does (CN = user name, each O = a group).

Invariants:
- ``ensure_pki`` is idempotent: existing files are reused; the CA is created once and only replaced
  if its files are missing or unreadable, in which case every leaf is re-issued with it.
- A leaf (server or admin certificate) is re-issued when it is missing, does not match its key, was not
  signed by the current CA, is expired or expires within ``RENEW_BEFORE``, or (server only) lacks a SAN
  for a requested host.
- Every file is written atomically (temporary file in the same directory, fsync, rename) with its
  final mode: 0600 for keys and certificates alike, the PKI directory 0700 (``cluster.datadir``).
- Keys are EC P-256: small, fast to generate, and accepted by Go's crypto/tls and OpenSSL alike.

Randomness (keys, serial numbers) comes from the OS through ``cryptography``; time defaults to the
current UTC time but every entry point takes ``now`` so tests can pin it.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster.datadir import private_dir
from cluster.datadir import write_file_atomic as write_file_atomic  # re-exported

CA_COMMON_NAME = "raykube-ca"
ADMIN_COMMON_NAME = "raykube-admin"
ADMIN_GROUPS = ("system:masters",)
CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
# Backdate notBefore so a peer whose clock is slightly behind still accepts a fresh certificate.
CLOCK_SKEW = timedelta(minutes=5)

# The names in-cluster clients use for the API server, plus loopback; always in the server's SANs.
DEFAULT_SERVER_HOSTS = (
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

_KEY_MODE = 0o600
_CERT_MODE = 0o600  # public, but nothing in a data directory is for other users

PrivateKey = ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class Pki:
    """Paths of the PEM files that ``ensure_pki`` maintains."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path

    @classmethod
    def in_dir(cls, pki_dir: Path) -> Pki:
        return cls(
            ca_cert=pki_dir / "ca.crt",
            ca_key=pki_dir / "ca.key",
            server_cert=pki_dir / "apiserver.crt",
            server_key=pki_dir / "apiserver.key",
            admin_cert=pki_dir / "admin.crt",
            admin_key=pki_dir / "admin.key",
        )


class SslObjectLike(Protocol):
    """What ``peer_identity`` needs from ``ssl.SSLObject`` / ``ssl.SSLSocket``."""

    def getpeercert(self) -> Any: ...


# ---------------------------------------------------------------------------------------------
# File helpers (``write_file_atomic`` comes from ``cluster.datadir`` and stays importable from here)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, PrivateKey] | None:
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


def _store_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: PrivateKey) -> None:
    # Key first: a crash between the two writes leaves a mismatched pair, which _load_pair rejects.
    write_file_atomic(key_path, _key_pem(key), mode=_KEY_MODE)
    write_file_atomic(cert_path, _cert_pem(cert), mode=_CERT_MODE)


# ---------------------------------------------------------------------------------------------
# Certificate construction


def _new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _new_ca(now: datetime) -> tuple[x509.Certificate, PrivateKey]:
    key = _new_key()
    subject = _name(CA_COMMON_NAME)
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


def _san_entries(hosts: Iterable[str]) -> list[x509.GeneralName]:
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


def _issue_leaf(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    now: datetime,
    validity: timedelta,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    key = _new_key()
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
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _fresh(cert: x509.Certificate, now: datetime) -> bool:
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


def _normalize_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


# ---------------------------------------------------------------------------------------------
# Public API


def ensure_pki(pki_dir: Path, *, hosts: list[str], now: datetime | None = None) -> Pki:
    """Create or reuse the CA, server and admin certificates under ``pki_dir``; return their paths.

    Idempotent and safe to call on every start. Not safe to run concurrently against the same
    directory from two processes (both may re-issue; the last rename wins, leaving a consistent
    pair per file but possibly a server cert from one run and its key from another, which the next
    call detects and repairs).
    """
    now = now or datetime.now(UTC)
    private_dir(pki_dir, tighten=True)
    pki = Pki.in_dir(pki_dir)

    ca = _load_pair(pki.ca_cert, pki.ca_key)
    if ca is None or not _fresh(ca[0], now):
        ca = _new_ca(now)
        _store_pair(pki.ca_cert, pki.ca_key, *ca)
    ca_cert, ca_key = ca

    wanted_hosts = [*DEFAULT_SERVER_HOSTS, *hosts]
    server = _load_pair(pki.server_cert, pki.server_key)
    if (
        server is None
        or not _signed_by(server[0], ca_cert)
        or not _fresh(server[0], now)
        or not {_normalize_host(h) for h in wanted_hosts if h} <= certificate_hosts(server[0])
    ):
        # Keep the SANs the old certificate had, so adding a host never drops another one.
        old_hosts = sorted(certificate_hosts(server[0])) if server is not None else []
        cert, key = _issue_leaf(
            ca_cert,
            ca_key,
            subject=_name("raykube-apiserver"),
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            now=now,
            validity=LEAF_VALIDITY,
            sans=_san_entries([*wanted_hosts, *old_hosts]),
        )
        _store_pair(pki.server_cert, pki.server_key, cert, key)

    admin = _load_pair(pki.admin_cert, pki.admin_key)
    if admin is None or not _signed_by(admin[0], ca_cert) or not _fresh(admin[0], now):
        cert, key = _issue_leaf(
            ca_cert,
            ca_key,
            subject=_name(ADMIN_COMMON_NAME, ADMIN_GROUPS),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            now=now,
            validity=LEAF_VALIDITY,
        )
        _store_pair(pki.admin_cert, pki.admin_key, cert, key)
    return pki


def issue_client_cert(
    pki: Pki,
    common_name: str,
    groups: list[str],
    days: int = 365,
    *,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """Sign a client certificate for user ``common_name`` in ``groups``; return (cert PEM, key PEM).

    Nothing is written to disk; the caller stores or embeds the pair (see ``kubeconfig_for_user``).
    ``pki`` must come from ``ensure_pki``.
    """
    if not common_name:
        raise ValueError("common_name must not be empty")
    if days <= 0:
        raise ValueError("days must be positive")
    loaded = _load_pair(pki.ca_cert, pki.ca_key)
    if loaded is None:
        raise FileNotFoundError(f"no usable CA at {pki.ca_cert} / {pki.ca_key}")
    cert, key = _issue_leaf(
        *loaded,
        subject=_name(common_name, groups),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now or datetime.now(UTC),
        validity=timedelta(days=days),
    )
    return _cert_pem(cert), _key_pem(key)


def server_ssl_context(pki: Pki) -> ssl.SSLContext:
    """A server-side context for aiohttp: serves the API server certificate and asks for a client one.

    Client certificates are optional (``CERT_OPTIONAL``) so bearer tokens and anonymous requests
    still connect; a certificate that is presented must chain to our CA or the handshake fails, as
    in kube-apiserver. Read the identity with ``peer_identity``.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(pki.server_cert), keyfile=str(pki.server_key))
    context.load_verify_locations(cafile=str(pki.ca_cert))
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_ssl_context(pki: Pki, *, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client-side context that trusts our CA and, if given, presents ``cert``/``key``."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_cert))
    if cert is not None:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key) if key else None)
    return context


def peer_identity(ssl_object: SslObjectLike | None) -> tuple[str, list[str]] | None:
    """(user, groups) from the verified client certificate: CN is the user, each O a group.

    None when there is no TLS, no client certificate, or the certificate has no CN. Only verified
    certificates reach here: ``getpeercert()`` returns an empty dict for unverified ones.
    """
    if ssl_object is None:
        return None
    peer = ssl_object.getpeercert()
    if not peer:
        return None
    user: str | None = None
    groups: list[str] = []
    for rdn in peer.get("subject", ()):
        for attribute, value in rdn:
            if attribute == "commonName" and user is None:
                user = value
            elif attribute == "organizationName":
                groups.append(value)
    if not user:
        return None
    return user, groups
