"""Test kit for the Ingress data path: API objects as the API server stores them, small local HTTP
backends that say who they are, a real nginx under a private prefix, and HTTP(S) clients that set
Host/SNI (curl's ``--resolve`` in Python)."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service(ns: str, name: str, ports: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name},
        "spec": {"ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]},
    }


def endpoint_slice(
    ns: str, svc: str, port_name: str, endpoints: list[tuple[str, int, bool]], name: str | None = None
) -> dict[str, Any]:
    """One slice per (address, port, ready): ports differ per backend on one loopback address."""
    return {
        "metadata": {
            "namespace": ns,
            "name": name or f"{svc}-{port_name}",
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip, _, ready in endpoints],
        "ports": [{"name": port_name, "port": endpoints[0][1], "protocol": "TCP"}] if endpoints else [],
    }


def backend(svc: str, port: int | str) -> dict[str, Any]:
    ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {"service": {"name": svc, "port": ref}}


def ingress(
    ns: str, name: str, rules: list[dict[str, Any]], *, created: str = "2026-01-01T00:00:00Z", **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name, "creationTimestamp": created},
        "spec": {"ingressClassName": "raykube", "rules": rules, **spec},
    }


def rule(host: str | None, *paths: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    r: dict[str, Any] = {"http": {"paths": [{"path": p, "pathType": t, "backend": b} for p, t, b in paths]}}
    if host:
        r["host"] = host
    return r


INGRESS_CLASS = {
    "metadata": {"name": "raykube", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
    "spec": {"controller": "raykube.io/ingress-nginx"},
}


def tls_secret(ns: str, name: str, cert_pem: bytes, key_pem: bytes) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert_pem).decode(),
            "tls.key": base64.b64encode(key_pem).decode(),
        },
    }


class Backend:
    """An HTTP server on 127.0.0.1 answering ``<name> <path>``; ``/slow`` waits for ``release``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.release = threading.Event()
        self.slow_started = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path.startswith("/slow"):
                    outer.slow_started.set()
                    outer.release.wait(60)
                body = f"{outer.name} {self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def backends(*names: str) -> Iterator[dict[str, Backend]]:
    made = {n: Backend(n) for n in names}
    try:
        yield made
    finally:
        for b in made.values():
            b.close()


def get(
    port: int, host: str, path: str, *, timeout: float = 30.0, address: str = "127.0.0.1"
) -> tuple[int, str]:
    """GET ``path`` from ``address``:``port`` with ``Host: host``."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def get_tls(port: int, host: str, path: str, cafile: str, *, address: str = "127.0.0.1") -> tuple[int, str]:
    """GET over TLS with SNI ``host``, verifying the certificate against ``cafile``."""
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPConnection(address, port, timeout=30)
    # SNI and the verified name are ``host`` while the address is ours: curl's --resolve.
    conn.sock = ctx.wrap_socket(socket.create_connection((address, port), timeout=30), server_hostname=host)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def self_signed(host: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``host`` and its key, PEM."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
