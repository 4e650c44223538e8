"""The store's certificates and who may use its client port: real TLS over real gRPC and real sockets.

The server here is a one-method generic gRPC service behind ``ClientIdentityInterceptor`` (the
store's services are cluster.store.etcd_api's); clients present certificates of the cluster CA
made by ``ensure_pki`` / ``ensure_store_pki`` / a kubectl user's ``issue_client_cert``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster.apiserver.tls import Pki, ensure_pki, issue_client_cert
from cluster.store.tls import (
    APISERVER_CLIENT,
    ETCDCTL_CLIENT,
    PERMISSION_DENIED,
    ClientIdentityInterceptor,
    ClientTls,
    StorePki,
    StoreTls,
    client_tls,
    ensure_store_pki,
    forwarding_tls,
    identity,
    peer_is_replica,
    peer_ssl_contexts,
    server_credentials,
    server_hosts,
)

HOSTS = server_hosts([("10.0.0.7", "node-a"), ("10.0.0.8", "node-b")], ["store-1", "store-2"])


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    pki_dir = tmp_path / "pki"
    ensure_pki(pki_dir, hosts=[])
    ensure_store_pki(pki_dir, HOSTS)
    return pki_dir


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def usages(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def sans(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.IPAddress)] + san.get_values_for_type(x509.DNSName)


def test_server_hosts_are_loopback_then_nodes_then_replica_names() -> None:
    assert HOSTS == [
        "127.0.0.1",
        "::1",
        "localhost",
        "10.0.0.7",
        "node-a",
        "10.0.0.8",
        "node-b",
        "store-1",
        "store-2",
    ]


def test_certificates_have_their_usages_names_and_private_modes(pki_dir: Path) -> None:
    pki = StorePki.in_dir(pki_dir)
    server, peer = load(pki.server_cert), load(pki.peer_cert)
    assert usages(server) == {ExtendedKeyUsageOID.SERVER_AUTH}
    assert usages(peer) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert set(sans(server)) == {
        "127.0.0.1",
        "::1",
        "10.0.0.7",
        "10.0.0.8",
        "localhost",
        "node-a",
        "node-b",
        "store-1",
        "store-2",
    }
    assert identity(load(pki.apiserver_client_cert)) == (APISERVER_CLIENT, ("raykube:store-clients",))
    assert identity(load(pki.etcdctl_cert)) == (ETCDCTL_CLIENT, ("raykube:store-clients",))
    assert usages(load(pki.etcdctl_cert)) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    for path in (pki.server_key, pki.peer_key, pki.etcdctl_key, pki.etcdctl_cert, pki.apiserver_client_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(pki.server_cert.parent.stat().st_mode) == 0o700


def test_a_second_run_keeps_fresh_certificates_and_reissues_for_new_hosts(pki_dir: Path) -> None:
    pki = StorePki.in_dir(pki_dir)
    before = {p: p.read_bytes() for p in (pki.server_cert, pki.peer_cert, pki.etcdctl_cert)}
    ensure_store_pki(pki_dir, HOSTS)
    assert {p: p.read_bytes() for p in before} == before
    ensure_store_pki(pki_dir, [*HOSTS, "10.0.0.9"])
    assert pki.server_cert.read_bytes() != before[pki.server_cert]
    assert pki.peer_cert.read_bytes() != before[pki.peer_cert]
    assert pki.etcdctl_cert.read_bytes() == before[pki.etcdctl_cert]  # no names: kept
    assert "10.0.0.9" in sans(load(pki.server_cert))


def test_certificates_near_expiry_are_reissued(pki_dir: Path) -> None:
    pki = StorePki.in_dir(pki_dir)
    before = pki.etcdctl_cert.read_bytes()
    ensure_store_pki(pki_dir, HOSTS, now=datetime.now(UTC) + timedelta(days=340))
    assert pki.etcdctl_cert.read_bytes() != before


# ------------------------------------------------------------------------- the client port over gRPC


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"echo:" + request


async def call(port: int, credentials: grpc.ChannelCredentials) -> bytes:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        method = channel.unary_unary("/test.Echo/Echo")
        return bytes(await method(b"hi", timeout=10))


async def serve_and_call(pki_dir: Path, clients: dict[str, grpc.ChannelCredentials]) -> dict[str, str]:
    """Call the echo service with each credential; the outcome is the reply or the status code and
    details."""
    server = grpc.aio.server(interceptors=[ClientIdentityInterceptor()], options=[("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(StoreTls.load(StorePki.in_dir(pki_dir))))
    await server.start()
    outcomes: dict[str, str] = {}
    try:
        for name, credentials in clients.items():
            try:
                outcomes[name] = (await call(port, credentials)).decode()
            except grpc.aio.AioRpcError as err:
                outcomes[name] = (
                    f"{err.code().name}: {err.details()}"
                    if err.code() == grpc.StatusCode.PERMISSION_DENIED
                    else err.code().name
                )
    finally:
        await server.stop(None)
    return outcomes


def test_only_the_store_identities_may_call(pki_dir: Path) -> None:
    ca = (pki_dir / "ca.crt").read_bytes()
    user_cert, user_key = issue_client_cert(Pki.in_dir(pki_dir), "alice", ["system:masters"])
    admin = Pki.in_dir(pki_dir)
    tls = StoreTls.load(StorePki.in_dir(pki_dir))
    outcomes = asyncio.run(
        serve_and_call(
            pki_dir,
            {
                "apiserver": client_tls(pki_dir).channel_credentials(),
                "etcdctl": client_tls(pki_dir, operator=True).channel_credentials(),
                "follower": forwarding_tls(tls).channel_credentials(),
                "kubectl user": ClientTls(ca, user_cert, user_key).channel_credentials(),
                "cluster admin": ClientTls(
                    ca, admin.admin_cert.read_bytes(), admin.admin_key.read_bytes()
                ).channel_credentials(),
                "no certificate": grpc.ssl_channel_credentials(ca),
            },
        )
    )
    assert outcomes == {
        "apiserver": "echo:hi",
        "etcdctl": "echo:hi",
        "follower": "echo:hi",
        "kubectl user": f"PERMISSION_DENIED: {PERMISSION_DENIED}",
        "cluster admin": f"PERMISSION_DENIED: {PERMISSION_DENIED}",
        "no certificate": "UNAVAILABLE",  # the handshake itself refuses it
    }


def test_a_store_name_with_another_group_is_refused(pki_dir: Path) -> None:
    """CN alone is not enough: a kubectl user named like our client but without its O."""
    ca = (pki_dir / "ca.crt").read_bytes()
    cert, key = issue_client_cert(Pki.in_dir(pki_dir), APISERVER_CLIENT, ["system:masters"])
    outcomes = asyncio.run(
        serve_and_call(pki_dir, {"lookalike": ClientTls(ca, cert, key).channel_credentials()})
    )
    assert outcomes == {"lookalike": f"PERMISSION_DENIED: {PERMISSION_DENIED}"}


# ------------------------------------------------------------------------- replica to replica


async def peer_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[bool, bool]:
    """Connect with the two contexts; (server sees a replica, client sees a replica)."""
    seen: list[bool] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(peer_is_replica(writer.get_extra_info("ssl_object")))
        writer.write(b"x")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        await reader.read(1)
        client_sees = peer_is_replica(writer.get_extra_info("ssl_object"))
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return seen[0], client_sees


def test_peers_authenticate_each_other(pki_dir: Path) -> None:
    server_ctx, client_ctx = peer_ssl_contexts(StoreTls.load(StorePki.in_dir(pki_dir)))
    assert asyncio.run(peer_handshake(server_ctx, client_ctx)) == (True, True)


def test_a_client_certificate_of_the_cluster_ca_is_not_a_peer(pki_dir: Path) -> None:
    tls = StoreTls.load(StorePki.in_dir(pki_dir))
    server_ctx, _ = peer_ssl_contexts(tls)
    user_cert, user_key = issue_client_cert(Pki.in_dir(pki_dir), "alice", [])
    _, impostor = peer_ssl_contexts(StoreTls(tls.ca, b"", b"", user_cert, user_key))
    assert asyncio.run(peer_handshake(server_ctx, impostor))[0] is False


def test_a_peer_of_another_ca_fails_the_handshake(pki_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    ensure_pki(other, hosts=[])
    ensure_store_pki(other, HOSTS)
    server_ctx, _ = peer_ssl_contexts(StoreTls.load(StorePki.in_dir(pki_dir)))
    _, stranger = peer_ssl_contexts(StoreTls.load(StorePki.in_dir(other)))
    with pytest.raises((ssl.SSLError, ConnectionError, IndexError)):
        asyncio.run(peer_handshake(server_ctx, stranger))
