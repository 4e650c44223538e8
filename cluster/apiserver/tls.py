"""TLS material for the API server: the serving certificate, the admin and user client certificates.

Role: make the API server reachable over HTTPS by the real kubectl and the Python client, and let
client certificates authenticate users the way kube-apiserver does (CN = user name, each O = a group).

Invariants:
- ``ensure_pki`` is idempotent: existing files are reused; the CA is created once and only replaced
  if its files are missing or unreadable, in which case every leaf is re-issued with it.
- A leaf (server or admin certificate) is re-issued when it is missing, does not match its key, was not
  signed by the current CA, is expired or expires within ``RENEW_BEFORE``, or (server only) lacks a SAN
  for a requested host.
- Every file is written atomically (temporary file in the same directory, fsync, rename) with its
  final mode: 0600 for keys and certificates alike, the PKI directory 0700 (``cluster.machinery.files``).
- Keys are EC P-256: small, fast to generate, and accepted by Go's crypto/tls and OpenSSL alike.

The certificate primitives (CA, issuing, loading, the renewal rule) are ``cluster.machinery.pki``;
this module decides which certificates the API server needs and how it reads client identities.

Randomness (keys, serial numbers) comes from the OS through ``cryptography``; time defaults to the
current UTC time but every entry point takes ``now`` so tests can pin it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster.machinery import pki as certutil
from cluster.machinery.files import private_dir

ADMIN_COMMON_NAME = "raykube-admin"
ADMIN_GROUPS = ("system:masters",)

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


def serving_hosts(nodes: Iterable[tuple[str, str]], service_ip: str, extra: Iterable[str] = ()) -> list[str]:
    """The names the serving certificate must carry besides ``DEFAULT_SERVER_HOSTS``: each
    control-plane node's (IP, host name), the ``kubernetes`` Service's ClusterIP (the first Service
    address, which pods use) and the operator's ``--tls-san`` names (public addresses, DNS names,
    load balancers). In order, without repeats or blanks."""
    out: list[str] = []
    for host in [*(h for node in nodes for h in node), service_ip, *extra]:
        host = host.strip()
        if host and host not in out:
            out.append(host)
    return out


def ensure_pki(pki_dir: Path, *, hosts: list[str], now: datetime | None = None, exact: bool = False) -> Pki:
    """Create or reuse the CA, server and admin certificates under ``pki_dir``; return their paths.

    The serving certificate names ``DEFAULT_SERVER_HOSTS`` and ``hosts``. By default a host it already
    names is kept when re-issuing (adding a host never drops another); with ``exact`` it names exactly
    those and is re-issued whenever the set differs (``raykube up``: a removed ``--tls-san`` or a
    control-plane node that left is dropped). The CA is kept either way.

    Idempotent and safe to call on every start. Not safe to run concurrently against the same
    directory from two processes (both may re-issue; the last rename wins, leaving a consistent
    pair per file but possibly a server cert from one run and its key from another, which the next
    call detects and repairs).
    """
    now = now or datetime.now(UTC)
    private_dir(pki_dir, tighten=True)
    pki = Pki.in_dir(pki_dir)

    ca = certutil.load_pair(pki.ca_cert, pki.ca_key)
    if ca is None or not certutil.fresh(ca[0], now):
        ca = certutil.new_ca(now)
        certutil.store_pair(pki.ca_cert, pki.ca_key, *ca)
    ca_cert, ca_key = ca

    wanted_hosts = [*DEFAULT_SERVER_HOSTS, *hosts]
    server = certutil.load_pair(pki.server_cert, pki.server_key)
    wanted = {certutil.normalize_host(h) for h in wanted_hosts if h}
    have = certutil.certificate_hosts(server[0]) if server is not None else set()
    if (
        server is None
        or not certutil.signed_by(server[0], ca_cert)
        or not certutil.fresh(server[0], now)
        or not wanted <= have
        or (exact and wanted != have)
    ):
        # Unless exact, keep the SANs the old certificate had, so adding a host never drops another.
        old_hosts = sorted(have) if not exact else []
        cert, key = certutil.issue_leaf(
            ca_cert,
            ca_key,
            subject=certutil.subject_name("raykube-apiserver"),
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            now=now,
            validity=certutil.LEAF_VALIDITY,
            sans=certutil.san_entries([*wanted_hosts, *old_hosts]),
        )
        certutil.store_pair(pki.server_cert, pki.server_key, cert, key)

    admin = certutil.load_pair(pki.admin_cert, pki.admin_key)
    if admin is None or not certutil.signed_by(admin[0], ca_cert) or not certutil.fresh(admin[0], now):
        cert, key = certutil.issue_leaf(
            ca_cert,
            ca_key,
            subject=certutil.subject_name(ADMIN_COMMON_NAME, ADMIN_GROUPS),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            now=now,
            validity=certutil.LEAF_VALIDITY,
        )
        certutil.store_pair(pki.admin_cert, pki.admin_key, cert, key)
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
    cert, key = certutil.issue_leaf(
        *certutil.load_ca(pki),
        subject=certutil.subject_name(common_name, groups),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now or datetime.now(UTC),
        validity=timedelta(days=days),
    )
    return certutil.cert_pem(cert), certutil.key_pem(key)


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
