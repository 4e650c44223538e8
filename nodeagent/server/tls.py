"""TLS for the node agent's HTTP server: its serving certificate and a context that requires clients
signed by the cluster CA (the API server's "kubelet client" certificate, as kube-apiserver uses).

Certificates come from the cluster PKI (``cluster.machinery.pki``): the caller must have the CA's
key (the bootstrap's ``ensure_pki`` has run). Files are written atomically; a serving certificate is
re-issued when it is missing, not signed by the current CA, near expiry, or lacks one of the
requested hosts.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster.machinery import pki as certutil
from cluster.machinery.files import private_dir

AGENT_CERT = "agent.crt"
AGENT_KEY = "agent.key"


def ensure_agent_cert(
    pki: certutil.CaFiles, out_dir: Path, node_name: str, hosts: list[str], *, now: datetime | None = None
) -> tuple[Path, Path]:
    """Create or reuse ``out_dir/agent.crt`` and ``agent.key`` (CN ``system:node:<node>``, SANs = hosts
    plus loopback and the node name); return their paths. Idempotent."""
    now = now or datetime.now(UTC)
    private_dir(out_dir)
    cert_path, key_path = out_dir / AGENT_CERT, out_dir / AGENT_KEY
    ca = certutil.load_ca(pki)
    wanted = [node_name, *hosts, "127.0.0.1", "::1", "localhost"]
    have = certutil.load_pair(cert_path, key_path)
    if (
        have is not None
        and certutil.signed_by(have[0], ca[0])
        and certutil.fresh(have[0], now)
        and {certutil.normalize_host(h) for h in wanted if h} <= certutil.certificate_hosts(have[0])
    ):
        return cert_path, key_path
    cert, key = certutil.issue_leaf(
        *ca,
        subject=certutil.subject_name(f"system:node:{node_name}", ["system:nodes"]),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        now=now,
        validity=certutil.LEAF_VALIDITY,
        sans=certutil.san_entries(wanted),
    )
    certutil.store_pair(cert_path, key_path, cert, key)
    return cert_path, key_path


def agent_ssl_context(ca_cert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Server context for ``AgentServer``: serves ``cert`` and requires a client certificate that
    chains to ``ca_cert`` (the handshake fails otherwise)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    context.load_verify_locations(cafile=str(ca_cert))
    context.verify_mode = ssl.CERT_REQUIRED
    return context
