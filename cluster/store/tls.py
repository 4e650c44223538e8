"""The store's TLS: certificates from the cluster CA for its client and peer ports, and who may use it.

Made at ``raykube up`` (``ensure_store_pki``), kept under ``DATA_DIR/pki`` in kubeadm's layout and
reused while fresh, so a second ``up`` does not change what running replicas serve:

* ``etcd/server.crt``: the replicas' client port (server auth). Its SANs are loopback
  (``127.0.0.1``, ``::1``, ``localhost``), the IP addresses and host names of the Ray nodes alive at
  ``up`` and the replica names (``store-1``, ...); a different set re-issues it.
* ``etcd/peer.crt``: replica to replica, mutual TLS on the peer port (server and client auth; CN
  ``PEER_COMMON_NAME``). ``peer_ssl_contexts`` builds the two sides from the PEMs.
* ``apiserver-etcd-client.crt``: our components' client identity (CN ``kube-apiserver-etcd-client``,
  kubeadm's name). At the top of the PKI directory, which ``raykube up`` ships to every API server's
  host, so an API server on another node has it.
* ``etcd/etcdctl.crt``: the operator's, for ``etcdctl`` (``raykube store env`` points at it).

Who may use the store: the client port requires a client certificate that chains to the cluster CA
(the TLS handshake refuses anything else), and then ``ClientIdentityInterceptor`` lets through only
the identities in ``CLIENT_IDENTITIES`` (CN and exactly those O's); every other certificate of the
cluster CA (a kubectl user's, a node's, a ServiceAccount's) gets ``PermissionDenied``
(``etcdserver: permission denied``). Minting such an identity needs the CA key (``raykube kubeconfig
--user``) or an administrator approving a CertificateSigningRequest: both already hold the cluster.
All files are 0600 in a 0700 directory (``cluster.machinery.pki``).
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster.machinery import pki as certutil
from cluster.machinery.files import private_dir

STORE_PKI = "etcd"  # DATA_DIR/pki/etcd, as kubeadm's /etc/kubernetes/pki/etcd
SERVER_COMMON_NAME = "raykube-store"
PEER_COMMON_NAME = "raykube-store-peer"
APISERVER_CLIENT = "kube-apiserver-etcd-client"  # kubeadm's name for the API server's identity
ETCDCTL_CLIENT = "raykube-etcdctl"
STORE_CLIENTS_GROUP = "raykube:store-clients"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

# (CN, O's) of the certificates the client port serves; anything else of the cluster CA is refused.
CLIENT_IDENTITIES = frozenset(
    {
        (APISERVER_CLIENT, (STORE_CLIENTS_GROUP,)),
        (ETCDCTL_CLIENT, (STORE_CLIENTS_GROUP,)),
        (PEER_COMMON_NAME, (STORE_CLIENTS_GROUP,)),  # a follower forwarding to the leader
    }
)


@dataclass(frozen=True, slots=True)
class StorePki:
    """Paths of the store's PEM files under a PKI directory (``DATA_DIR/pki``)."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    peer_cert: Path
    peer_key: Path
    apiserver_client_cert: Path
    apiserver_client_key: Path
    etcdctl_cert: Path
    etcdctl_key: Path

    @classmethod
    def in_dir(cls, pki_dir: Path) -> StorePki:
        store = pki_dir / STORE_PKI
        return cls(
            ca_cert=pki_dir / "ca.crt",
            ca_key=pki_dir / "ca.key",
            server_cert=store / "server.crt",
            server_key=store / "server.key",
            peer_cert=store / "peer.crt",
            peer_key=store / "peer.key",
            apiserver_client_cert=pki_dir / "apiserver-etcd-client.crt",
            apiserver_client_key=pki_dir / "apiserver-etcd-client.key",
            etcdctl_cert=store / "etcdctl.crt",
            etcdctl_key=store / "etcdctl.key",
        )


@dataclass(frozen=True, slots=True)
class StoreTls:
    """The PEMs a replica actor gets in its constructor (it may run on a node without the data
    directory): the CA, its serving pair, its peer pair."""

    ca: bytes
    server_cert: bytes
    server_key: bytes
    peer_cert: bytes
    peer_key: bytes

    @staticmethod
    def load(pki: StorePki) -> StoreTls:
        return StoreTls(
            ca=pki.ca_cert.read_bytes(),
            server_cert=pki.server_cert.read_bytes(),
            server_key=pki.server_key.read_bytes(),
            peer_cert=pki.peer_cert.read_bytes(),
            peer_key=pki.peer_key.read_bytes(),
        )


@dataclass(frozen=True, slots=True)
class ClientTls:
    """What a client of the store presents and trusts (PEMs): ``client_tls`` reads it."""

    ca: bytes
    cert: bytes
    key: bytes

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


def server_hosts(nodes: Iterable[tuple[str, str]], replica_names: Iterable[str]) -> list[str]:
    """The serving certificate's names: loopback, each node's (IP, host name), the replica names; in
    order, without blanks or repeats."""
    out: list[str] = []
    for host in [*LOOPBACK_HOSTS, *(h for node in nodes for h in node), *replica_names]:
        host = host.strip()
        if host and host not in out:
            out.append(host)
    return out


def _usable(pair: Any, ca_cert: x509.Certificate, now: datetime) -> bool:
    return pair is not None and certutil.signed_by(pair[0], ca_cert) and certutil.fresh(pair[0], now)


def ensure_store_pki(pki_dir: Path, hosts: list[str], *, now: datetime | None = None) -> StorePki:
    """Create or reuse the store's certificates under ``pki_dir`` (whose CA ``ensure_pki`` made).

    A pair is re-issued when missing, mismatched, not signed by the current CA or not fresh; the
    serving and peer certificates also when their SANs are not exactly ``hosts`` (``server_hosts``).
    Idempotent; not safe to run concurrently against one directory (as ``ensure_pki``)."""
    now = now or datetime.now(UTC)
    pki = StorePki.in_dir(pki_dir)
    private_dir(pki.server_cert.parent)
    ca_cert, ca_key = certutil.load_ca(pki)
    wanted = {certutil.normalize_host(h) for h in hosts if h}
    server_auth, client_auth = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    leaves: list[tuple[Path, Path, x509.Name, list[x509.ObjectIdentifier], bool]] = [
        (pki.server_cert, pki.server_key, certutil.subject_name(SERVER_COMMON_NAME), [server_auth], True),
        (
            pki.peer_cert,
            pki.peer_key,
            certutil.subject_name(PEER_COMMON_NAME, [STORE_CLIENTS_GROUP]),
            [server_auth, client_auth],
            True,
        ),
        (
            pki.apiserver_client_cert,
            pki.apiserver_client_key,
            certutil.subject_name(APISERVER_CLIENT, [STORE_CLIENTS_GROUP]),
            [client_auth],
            False,
        ),
        (
            pki.etcdctl_cert,
            pki.etcdctl_key,
            certutil.subject_name(ETCDCTL_CLIENT, [STORE_CLIENTS_GROUP]),
            [client_auth],
            False,
        ),
    ]
    for cert_path, key_path, subject, usages, named in leaves:
        pair = certutil.load_pair(cert_path, key_path)
        if _usable(pair, ca_cert, now) and (not named or certutil.certificate_hosts(pair[0]) == wanted):  # type: ignore[index]
            continue
        cert, key = certutil.issue_leaf(
            ca_cert,
            ca_key,
            subject=subject,
            usage=usages,
            now=now,
            validity=certutil.LEAF_VALIDITY,
            sans=certutil.san_entries(hosts) if named else None,
        )
        certutil.store_pair(cert_path, key_path, cert, key)
    return pki


def client_tls(pki_dir: Path, *, operator: bool = False) -> ClientTls:
    """Our components' client identity (``apiserver-etcd-client``), or with ``operator`` the one for
    ``etcdctl``, from a PKI directory ``raykube up`` filled."""
    pki = StorePki.in_dir(pki_dir)
    cert, key = (
        (pki.etcdctl_cert, pki.etcdctl_key)
        if operator
        else (pki.apiserver_client_cert, pki.apiserver_client_key)
    )
    return ClientTls(ca=pki.ca_cert.read_bytes(), cert=cert.read_bytes(), key=key.read_bytes())


# ---------------------------------------------------------------------------------------------
# Who may use the client port


def identity(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """(CN, sorted O's) of a certificate's subject."""
    name = cert.subject
    cns = [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = tuple(sorted(str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)))
    return (cns[0] if len(cns) == 1 else ""), orgs


def allowed_pem(pem: bytes) -> bool:
    """Whether a peer certificate (PEM; its chain already verified by the handshake) is one of
    ``CLIENT_IDENTITIES``."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return False
    return identity(cert) in CLIENT_IDENTITIES


def allowed_peer_pem(pem: bytes) -> bool:
    """Whether a peer certificate (PEM; chain verified) is the replicas' own (``PEER_COMMON_NAME``)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return False
    return identity(cert) == (PEER_COMMON_NAME, (STORE_CLIENTS_GROUP,))


PERMISSION_DENIED = "etcdserver: permission denied"  # etcd's rpctypes.ErrGRPCPermissionDenied


class ClientIdentityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses (``PermissionDenied``) every call whose TLS peer certificate is not one of
    ``CLIENT_IDENTITIES``. The verdict is cached per certificate (a handful of identities)."""

    def __init__(self) -> None:
        self._verdicts: dict[bytes, bool] = {}

    def allowed(self, context: grpc.aio.ServicerContext[Any, Any]) -> bool:
        pems = context.auth_context().get("x509_pem_cert") or []
        if len(pems) != 1:
            return False
        verdict = self._verdicts.get(pems[0])
        if verdict is None:
            if len(self._verdicts) > 1024:
                self._verdicts.clear()
            verdict = self._verdicts[pems[0]] = allowed_pem(pems[0])
        return verdict

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return _guarded(handler, self.allowed)


def _guarded(handler: grpc.RpcMethodHandler, allowed: Callable[[Any], bool]) -> grpc.RpcMethodHandler:
    """``handler`` with the identity check before its behaviour, for each of the four call shapes."""

    async def refuse(context: Any) -> None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, PERMISSION_DENIED)

    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            if not allowed(context):
                await refuse(context)
            return await inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: Any) -> Any:
            if not allowed(context):
                await refuse(context)
            async for response in inner_us(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary is not None:
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: Any) -> Any:
            if not allowed(context):
                await refuse(context)
            return await inner_su(requests, context)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary, handler.request_deserializer, handler.response_serializer
        )
    inner_ss = handler.stream_stream

    async def stream_stream(requests: Any, context: Any) -> Any:
        if not allowed(context):
            await refuse(context)
        result = inner_ss(requests, context)
        if hasattr(result, "__aiter__"):
            async for response in result:
                yield response
        else:  # a handler that writes through context.write and returns None
            await result

    return grpc.stream_stream_rpc_method_handler(
        stream_stream, handler.request_deserializer, handler.response_serializer
    )


def server_credentials(tls: StoreTls) -> grpc.ServerCredentials:
    """The client port's credentials: our serving certificate; a client certificate of the cluster
    CA required (then ``ClientIdentityInterceptor`` checks whose it is)."""
    return grpc.ssl_server_credentials(
        [(tls.server_key, tls.server_cert)], root_certificates=tls.ca, require_client_auth=True
    )


def forwarding_tls(tls: StoreTls) -> ClientTls:
    """A follower's identity towards the leader's client port: its peer certificate."""
    return ClientTls(ca=tls.ca, cert=tls.peer_cert, key=tls.peer_key)


# ---------------------------------------------------------------------------------------------
# Replica to replica


def peer_ssl_contexts(tls: StoreTls) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server side, client side) of mutual TLS between replicas: each presents the peer
    certificate, requires the other's, verified against the cluster CA. Host names are not checked
    (replicas dial each other by address, and every replica's certificate is the same); instead
    call ``peer_is_replica`` on the connection's SSL object once the handshake is done."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for context in (server, client):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=tls.ca.decode())
        _load_chain(context, tls.peer_cert, tls.peer_key)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_REQUIRED
    return server, client


def _load_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``load_cert_chain`` takes files only: write the pair to a private temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "peer.crt"), Path(tmp, "peer.key")
        cert_path.write_bytes(cert)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        context.load_cert_chain(str(cert_path), str(key_path))


def peer_is_replica(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> bool:
    """Whether the other end of an established peer connection presented the replicas' certificate
    (CN ``PEER_COMMON_NAME``), not another certificate of the cluster CA."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return False
    cert = x509.load_der_x509_certificate(der)
    return identity(cert) == (PEER_COMMON_NAME, (STORE_CLIENTS_GROUP,))
