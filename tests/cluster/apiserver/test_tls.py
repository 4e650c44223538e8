"""TLS material and kubeconfig files: certificate contents, idempotency and repair, real loopback TLS
handshakes that read the client identity back, and kubeconfigs loaded by yaml, the Python client and
(when installed) kubectl itself."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster.apiserver.kubeconfig import kubeconfig_for_user, write_kubeconfig
from cluster.apiserver.tls import (
    DEFAULT_SERVER_HOSTS,
    Pki,
    client_ssl_context,
    ensure_pki,
    issue_client_cert,
    peer_identity,
    server_ssl_context,
)
from cluster.machinery.pki import certificate_hosts
from tests.capabilities import needs

# Real handshakes check validity against the wall clock, so "now" is today, pinned for the module
# (to the second, the precision of X.509 times) so validity arithmetic stays exact.
NOW = datetime.now(UTC).replace(microsecond=0)
EXTRA_HOSTS = ["10.96.0.1", "api.example.com", "fd00::10"]


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def names(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in cert.subject.get_attributes_for_oid(oid)]


def snapshot(pki: Pki) -> dict[str, bytes]:
    return {name: getattr(pki, name).read_bytes() for name in Pki.__dataclass_fields__}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki") / "pki", hosts=EXTRA_HOSTS, now=NOW)


# ---------------------------------------------------------------------------------------------
# Certificate contents


def test_ca_is_a_ten_year_self_signed_ca(pki: Pki) -> None:
    ca = load(pki.ca_cert)
    assert names(ca, NameOID.COMMON_NAME) == ["raykube-ca"]
    assert ca.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.not_valid_after_utc - NOW >= timedelta(days=3650)
    ca.verify_directly_issued_by(ca)


@pytest.mark.parametrize(
    ("attribute", "usage", "common_name", "orgs"),
    [
        pytest.param("server_cert", ExtendedKeyUsageOID.SERVER_AUTH, "raykube-apiserver", [], id="server"),
        pytest.param(
            "admin_cert", ExtendedKeyUsageOID.CLIENT_AUTH, "raykube-admin", ["system:masters"], id="admin"
        ),
    ],
)
def test_leaves_are_signed_by_the_ca(
    pki: Pki, attribute: str, usage: x509.ObjectIdentifier, common_name: str, orgs: list[str]
) -> None:
    cert = load(getattr(pki, attribute))
    cert.verify_directly_issued_by(load(pki.ca_cert))
    assert names(cert, NameOID.COMMON_NAME) == [common_name]
    assert names(cert, NameOID.ORGANIZATION_NAME) == orgs
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc


@pytest.mark.parametrize("host", [*DEFAULT_SERVER_HOSTS, *EXTRA_HOSTS])
def test_server_sans_use_the_right_type(pki: Pki, host: str) -> None:
    san = load(pki.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        assert host in san.get_values_for_type(x509.DNSName)
        assert host not in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    else:
        assert address in san.get_values_for_type(x509.IPAddress)
        assert host not in san.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    ("attribute", "mode"),
    [
        pytest.param("ca_key", 0o600, id="ca-key"),
        pytest.param("server_key", 0o600, id="server-key"),
        pytest.param("admin_key", 0o600, id="admin-key"),
        pytest.param("ca_cert", 0o600, id="ca-cert"),
        pytest.param("server_cert", 0o600, id="server-cert"),
        pytest.param("admin_cert", 0o600, id="admin-cert"),
    ],
)
def test_file_modes(pki: Pki, attribute: str, mode: int) -> None:
    assert stat.S_IMODE(getattr(pki, attribute).stat().st_mode) == mode
    assert stat.S_IMODE(pki.ca_cert.parent.stat().st_mode) == 0o700


def test_no_temporary_files_left(pki: Pki) -> None:
    assert sorted(p.name for p in pki.ca_cert.parent.iterdir()) == sorted(
        getattr(pki, name).name for name in Pki.__dataclass_fields__
    )


# ---------------------------------------------------------------------------------------------
# Idempotency and repair


@pytest.fixture
def fresh(tmp_path: Path) -> Pki:
    return ensure_pki(tmp_path / "pki", hosts=["10.0.0.5"], now=NOW)


def test_second_call_reuses_every_file(fresh: Pki) -> None:
    before = snapshot(fresh)
    again = ensure_pki(fresh.ca_cert.parent, hosts=["10.0.0.5", "localhost"], now=NOW + timedelta(days=1))
    assert again == fresh
    assert snapshot(again) == before


def test_new_host_reissues_only_the_server_cert_and_keeps_old_sans(fresh: Pki) -> None:
    before = snapshot(fresh)
    ensure_pki(fresh.ca_cert.parent, hosts=["node-2.internal"], now=NOW)
    after = snapshot(fresh)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"server_cert", "server_key"}
    hosts = certificate_hosts(load(fresh.server_cert))
    assert {"node-2.internal", "10.0.0.5", "kubernetes.default.svc.cluster.local"} <= hosts
    load(fresh.server_cert).verify_directly_issued_by(load(fresh.ca_cert))


@pytest.mark.parametrize("ipv6", ["::1", "0:0:0:0:0:0:0:1"], ids=["short", "long-form"])
def test_ip_hosts_compare_normalized(fresh: Pki, ipv6: str) -> None:
    before = snapshot(fresh)
    ensure_pki(fresh.ca_cert.parent, hosts=[ipv6], now=NOW)
    assert snapshot(fresh) == before


def _delete(path: Path) -> None:
    path.unlink()


def _corrupt(path: Path) -> None:
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")


@dataclass(frozen=True)
class Damage:
    attribute: str
    action: Any
    reissued: frozenset[str]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(
            Damage("server_key", _delete, frozenset({"server_cert", "server_key"})), id="server-key-missing"
        ),
        pytest.param(
            Damage("server_cert", _corrupt, frozenset({"server_cert", "server_key"})),
            id="server-cert-corrupt",
        ),
        pytest.param(
            Damage("admin_cert", _delete, frozenset({"admin_cert", "admin_key"})), id="admin-cert-missing"
        ),
        pytest.param(
            Damage("ca_key", _delete, frozenset(Pki.__dataclass_fields__)),
            id="ca-key-missing-reissues-everything",
        ),
    ],
)
def test_damaged_files_are_repaired(fresh: Pki, damage: Damage) -> None:
    before = snapshot(fresh)
    damage.action(getattr(fresh, damage.attribute))
    ensure_pki(fresh.ca_cert.parent, hosts=["10.0.0.5"], now=NOW)
    after = snapshot(fresh)
    assert {name for name in before if before[name] != after[name]} == set(damage.reissued)
    ca = load(fresh.ca_cert)
    for leaf in (fresh.server_cert, fresh.admin_cert):
        load(leaf).verify_directly_issued_by(ca)


def test_mismatched_key_is_detected(fresh: Pki) -> None:
    # A server key from another pair (e.g. a crash between writing key and cert) forces a re-issue.
    shutil.copy(fresh.admin_key, fresh.server_key)
    ensure_pki(fresh.ca_cert.parent, hosts=[], now=NOW)
    context = server_ssl_context(fresh)  # load_cert_chain fails on a mismatched pair
    assert context.verify_mode == ssl.CERT_OPTIONAL


@pytest.mark.parametrize(
    ("later", "reissued"),
    [
        pytest.param(timedelta(days=300), set(), id="well-within-validity"),
        pytest.param(
            timedelta(days=340), {"server_cert", "server_key", "admin_cert", "admin_key"}, id="near-expiry"
        ),
        pytest.param(
            timedelta(days=400), {"server_cert", "server_key", "admin_cert", "admin_key"}, id="expired"
        ),
    ],
)
def test_leaves_are_renewed_before_they_expire(fresh: Pki, later: timedelta, reissued: set[str]) -> None:
    before = snapshot(fresh)
    ensure_pki(fresh.ca_cert.parent, hosts=["10.0.0.5"], now=NOW + later)
    after = snapshot(fresh)
    assert {name for name in before if before[name] != after[name]} == reissued


# ---------------------------------------------------------------------------------------------
# Client certificates and identities


def test_issue_client_cert(pki: Pki) -> None:
    cert_pem, key_pem = issue_client_cert(pki, "alice", ["dev", "ops"], days=7, now=NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(load(pki.ca_cert))
    assert names(cert, NameOID.COMMON_NAME) == ["alice"]
    assert names(cert, NameOID.ORGANIZATION_NAME) == ["dev", "ops"]
    assert cert.not_valid_after_utc == NOW + timedelta(days=7)
    assert b"PRIVATE KEY" in key_pem


@pytest.mark.parametrize(
    ("args", "error"),
    [
        pytest.param(("", ["g"], 30), ValueError, id="empty-name"),
        pytest.param(("bob", [], 0), ValueError, id="zero-days"),
    ],
)
def test_issue_client_cert_rejects(
    pki: Pki, args: tuple[str, list[str], int], error: type[Exception]
) -> None:
    with pytest.raises(error):
        issue_client_cert(pki, *args)


def test_issue_client_cert_needs_a_ca(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        issue_client_cert(Pki.in_dir(tmp_path), "carol", [])


class FakeSslObject:
    def __init__(self, peer: Any) -> None:
        self.peer = peer

    def getpeercert(self) -> Any:
        return self.peer


@pytest.mark.parametrize(
    ("ssl_object", "expected"),
    [
        pytest.param(None, None, id="no-tls"),
        pytest.param(FakeSslObject(None), None, id="no-client-cert"),
        pytest.param(FakeSslObject({}), None, id="unverified-cert"),
        pytest.param(FakeSslObject({"subject": ((("organizationName", "g"),),)}), None, id="no-cn"),
        pytest.param(
            FakeSslObject(
                {
                    "subject": (
                        (("organizationName", "system:masters"),),
                        (("organizationName", "dev"),),
                        (("commonName", "alice"),),
                    )
                }
            ),
            ("alice", ["system:masters", "dev"]),
            id="cn-and-orgs",
        ),
    ],
)
def test_peer_identity(ssl_object: FakeSslObject | None, expected: tuple[str, list[str]] | None) -> None:
    assert peer_identity(ssl_object) == expected


# ---------------------------------------------------------------------------------------------
# Real TLS handshakes on loopback


def _handshake(pki: Pki, client: ssl.SSLContext, server_hostname: str) -> tuple[str, list[str]] | None:
    """Connect once; return the identity the server read, or raise the first TLS error seen."""
    server_context = server_ssl_context(pki)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcome: dict[str, Any] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_context.wrap_socket(conn, server_side=True) as tls:
                outcome["identity"] = peer_identity(tls)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            assert tls.recv(2) == b"ok"
    finally:
        thread.join(timeout=10)
        listener.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["identity"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "server_hostname",
    ["127.0.0.1", "localhost", "kubernetes.default.svc", "api.example.com", "10.96.0.1"],
)
def test_handshake_verifies_the_server_for_each_san(pki: Pki, server_hostname: str) -> None:
    assert _handshake(pki, client_ssl_context(pki), server_hostname) is None


def test_handshake_rejects_a_name_not_in_the_sans(pki: Pki) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(pki, client_ssl_context(pki), "evil.example.com")


def test_handshake_reads_the_admin_identity(pki: Pki) -> None:
    client = client_ssl_context(pki, cert=pki.admin_cert, key=pki.admin_key)
    assert _handshake(pki, client, "127.0.0.1") == ("raykube-admin", ["system:masters"])


def test_handshake_reads_an_issued_identity(pki: Pki, tmp_path: Path) -> None:
    cert_pem, key_pem = issue_client_cert(pki, "alice", ["dev", "ops"], now=NOW)
    (tmp_path / "alice.crt").write_bytes(cert_pem)
    (tmp_path / "alice.key").write_bytes(key_pem)
    client = client_ssl_context(pki, cert=tmp_path / "alice.crt", key=tmp_path / "alice.key")
    assert _handshake(pki, client, "localhost") == ("alice", ["dev", "ops"])


def test_handshake_rejects_a_client_cert_from_another_ca(pki: Pki, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path / "other", hosts=[], now=NOW)
    client = client_ssl_context(pki, cert=other.admin_cert, key=other.admin_key)
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(pki, client, "127.0.0.1")


def test_aiohttp_reads_identity_from_the_transport(pki: Pki) -> None:
    async def scenario() -> list[Any]:
        seen: list[Any] = []

        async def whoami(request: web.Request) -> web.Response:
            identity = peer_identity(
                request.transport.get_extra_info("ssl_object") if request.transport else None
            )
            seen.append(identity)
            return web.json_response({"user": identity[0] if identity else None})

        app = web.Application()
        app.router.add_get("/whoami", whoami)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
        await site.start()
        port = runner.addresses[0][1]
        import aiohttp

        try:
            for context in (
                client_ssl_context(pki, cert=pki.admin_cert, key=pki.admin_key),
                client_ssl_context(pki),
            ):
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"https://127.0.0.1:{port}/whoami", ssl=context) as response,
                ):
                    assert response.status == 200
        finally:
            await runner.cleanup()
        return seen

    assert asyncio.run(scenario()) == [("raykube-admin", ["system:masters"]), None]


# ---------------------------------------------------------------------------------------------
# Kubeconfig


SERVER = "https://127.0.0.1:6443"


def test_embedded_kubeconfig_round_trips_through_yaml(pki: Pki, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "sub" / "admin.kubeconfig", server=SERVER, pki=pki)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = yaml.safe_load(path.read_text())
    assert (doc["apiVersion"], doc["kind"], doc["current-context"]) == ("v1", "Config", "raykube")
    assert doc["contexts"] == [
        {"name": "raykube", "context": {"cluster": "raykube", "user": "raykube-admin"}}
    ]
    [cluster] = doc["clusters"]
    [user] = doc["users"]
    assert cluster["name"] == "raykube" and cluster["cluster"]["server"] == SERVER
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == pki.ca_cert.read_bytes()
    assert base64.b64decode(user["user"]["client-certificate-data"]) == pki.admin_cert.read_bytes()
    assert base64.b64decode(user["user"]["client-key-data"]) == pki.admin_key.read_bytes()


def test_referencing_kubeconfig_points_at_the_pki_files(pki: Pki, tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "k", server=SERVER, pki=pki, cluster_name="c", user="u", context="x", embed=False
    )
    doc = yaml.safe_load(path.read_text())
    assert doc["clusters"][0]["cluster"] == {"server": SERVER, "certificate-authority": str(pki.ca_cert)}
    assert doc["users"] == [
        {"name": "u", "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)}}
    ]
    assert doc["current-context"] == "x"


def test_rewriting_replaces_the_file(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, server="https://old:1", pki=pki)
    write_kubeconfig(path, server=SERVER, pki=pki)
    assert yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"] == SERVER
    assert [p.name for p in tmp_path.iterdir()] == ["kubeconfig"]


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "referenced"])
def test_python_client_loads_the_kubeconfig(pki: Pki, tmp_path: Path, embed: bool) -> None:
    from kubernetes import client, config

    path = write_kubeconfig(tmp_path / "kubeconfig", server=SERVER, pki=pki, embed=embed)
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == SERVER
    assert Path(configuration.ssl_ca_cert).read_bytes() == pki.ca_cert.read_bytes()
    assert Path(configuration.cert_file).read_bytes() == pki.admin_cert.read_bytes()
    assert Path(configuration.key_file).read_bytes() == pki.admin_key.read_bytes()
    assert configuration.verify_ssl is True


def test_kubeconfig_for_user(pki: Pki, tmp_path: Path) -> None:
    from kubernetes import client, config

    cert_pem, key_pem = issue_client_cert(pki, "alice", ["dev"], now=NOW)
    path = kubeconfig_for_user(
        tmp_path / "alice",
        server=SERVER,
        pki=pki,
        user="alice",
        cert_pem=cert_pem,
        key_pem=key_pem,
        namespace="dev",
    )
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "alice@raykube"
    assert doc["contexts"][0]["context"] == {"cluster": "raykube", "user": "alice", "namespace": "dev"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert Path(configuration.cert_file).read_bytes() == cert_pem


KUBECTL = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.32")


@needs("kubectl", None if KUBECTL.exists() else f"{KUBECTL} is not installed")
def test_kubectl_authenticates_with_the_kubeconfig(pki: Pki, tmp_path: Path) -> None:
    """kubectl verifies our server cert and presents the admin cert from an embedded kubeconfig."""

    async def scenario() -> tuple[subprocess.CompletedProcess[str], list[Any]]:
        seen: list[Any] = []

        async def version(request: web.Request) -> web.Response:
            seen.append(
                peer_identity(request.transport.get_extra_info("ssl_object") if request.transport else None)
            )
            return web.json_response(
                {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"}
            )

        app = web.Application()
        app.router.add_get("/version", version)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
        await site.start()
        port = runner.addresses[0][1]
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server=f"https://127.0.0.1:{port}", pki=pki)
        try:
            process = await asyncio.create_subprocess_exec(
                str(KUBECTL), "--kubeconfig", str(kubeconfig), "version", "-o", "json",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        finally:
            await runner.cleanup()
        result = subprocess.CompletedProcess([], process.returncode or 0, out.decode(), err.decode())
        return result, seen

    result, seen = asyncio.run(scenario())
    assert result.returncode == 0, result.stderr
    assert '"gitVersion": "v1.32.0"' in result.stdout
    assert seen and all(identity == ("raykube-admin", ["system:masters"]) for identity in seen)
