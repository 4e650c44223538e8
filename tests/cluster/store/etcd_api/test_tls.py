"""build_server with TLS and a required client certificate: etcdctl and gRPC with a certificate of the
CA are served, a client without one (or with another CA's) is refused in the handshake."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster.machinery import pki
from cluster.store.etcd_api.server import ServerTLS
from cluster.store.etcdpb import rpc_pb2
from tests.capabilities import require
from tests.cluster.store.etcd_api.served import ETCDCTL, Served, Stubs

NOW = datetime.now(UTC)


def issue(
    ca: tuple[x509.Certificate, pki.PrivateKey],
    cn: str,
    usage: x509.ObjectIdentifier,
    hosts: Sequence[str] = (),
) -> tuple[bytes, bytes]:
    cert, key = pki.issue_leaf(
        ca[0],
        ca[1],
        subject=pki.subject_name(cn),
        usage=usage,
        now=NOW,
        validity=timedelta(days=1),
        sans=pki.san_entries(hosts) or None,
    )
    return pki.cert_pem(cert), pki.key_pem(key)


@pytest.fixture
def tls_setup(tmp_path: Path) -> Iterator[tuple[Served, dict[str, Path], bytes]]:
    require("etcd", None if Path(ETCDCTL).exists() else f"etcdctl is not installed at {ETCDCTL}")
    ca = pki.new_ca(NOW)
    ca_pem = pki.cert_pem(ca[0])
    server_cert, server_key = issue(ca, "raykube-store", ExtendedKeyUsageOID.SERVER_AUTH, ["127.0.0.1"])
    client_cert, client_key = issue(ca, "etcdctl", ExtendedKeyUsageOID.CLIENT_AUTH)
    other = pki.new_ca(NOW)
    stranger_cert, stranger_key = issue(other, "etcdctl", ExtendedKeyUsageOID.CLIENT_AUTH)
    files = {
        "ca": ca_pem,
        "cert": client_cert,
        "key": client_key,
        "stranger-cert": stranger_cert,
        "stranger-key": stranger_key,
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.pem"
        paths[name].write_bytes(data)
    served = Served(
        tmp_path / "data", 3, tls=ServerTLS(ca_pem, server_cert, server_key, require_client_cert=True)
    )
    try:
        yield served, paths, ca_pem
    finally:
        served.close()


def test_client_certificate_required(tls_setup: tuple[Served, dict[str, Path], bytes]) -> None:
    served, paths, ca_pem = tls_setup
    f = served.follower_id()
    creds = ["--cacert", str(paths["ca"]), "--cert", str(paths["cert"]), "--key", str(paths["key"])]
    out = served.etcdctl(*creds, "put", "/tls", "yes", rid=f)
    assert (out.returncode, out.stdout) == (0, "OK\n"), out.stderr
    out = served.etcdctl(*creds, "get", "/tls", rid=f)
    assert out.stdout == "/tls\nyes\n", out.stderr
    listed = served.etcdctl(*creds, "member", "list", rid=f)
    assert f"https://127.0.0.1:{served.ports[f]}" in listed.stdout

    # No client certificate: the handshake fails, etcdctl gives up after its dial timeout.
    refused = served.etcdctl(
        "--dial-timeout=1s", "--command-timeout=2s", "--cacert", str(paths["ca"]), "get", "/tls", rid=f
    )
    assert refused.returncode != 0 and "/tls" not in refused.stdout
    assert "context deadline exceeded" in refused.stderr or "certificate" in refused.stderr, refused.stderr
    # A certificate of another CA: refused too.
    stranger = [
        "--cacert",
        str(paths["ca"]),
        "--cert",
        str(paths["stranger-cert"]),
        "--key",
        str(paths["stranger-key"]),
    ]
    refused = served.etcdctl("--dial-timeout=1s", "--command-timeout=2s", *stranger, "get", "/tls", rid=f)
    assert refused.returncode != 0 and "/tls" not in refused.stdout

    # gRPC from Python: with the client certificate served, without it UNAVAILABLE (handshake).
    good = grpc.ssl_channel_credentials(ca_pem, paths["key"].read_bytes(), paths["cert"].read_bytes())
    with grpc.secure_channel(served.endpoint(f), good) as channel:
        assert Stubs(channel).kv.Range(rpc_pb2.RangeRequest(key=b"/tls")).kvs[0].value == b"yes"
    with grpc.secure_channel(served.endpoint(f), grpc.ssl_channel_credentials(ca_pem)) as channel:
        with pytest.raises(grpc.RpcError) as e:
            Stubs(channel).kv.Range(rpc_pb2.RangeRequest(key=b"/tls"), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(served.endpoint(f)) as channel:
        with pytest.raises(grpc.RpcError) as e:
            Stubs(channel).kv.Range(rpc_pb2.RangeRequest(key=b"/tls"), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
