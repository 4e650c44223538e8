"""cluster.identities: each component's kubeconfig carries a certificate from the cluster CA for its
own user (CN) and groups (O), and reaches the same API servers as the admin kubeconfig. No Ray."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import warnings
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.x509.oid import NameOID

from cluster import identities
from cluster.apiserver.kubeconfig import write_kubeconfig
from cluster.apiserver.tls import Pki, ensure_pki, peer_identity, server_ssl_context
from cluster.client.kubeconfig import load_kubeconfig_text
from cluster.controllers.actor import AUTOSCALER_ACCOUNT, FOLLOWER_ACCOUNT
from cluster.controllers.registry import SERVICE_ACCOUNTS

SERVERS = ["https://127.0.0.1:6443", "https://10.0.0.5:6443", "https://10.0.0.6:6443"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    pki = ensure_pki(data / "pki", hosts=["10.0.0.5"])
    write_kubeconfig(data / "kubeconfig", server=SERVERS[0], pki=pki, servers=SERVERS)
    return data


def subject(text: str) -> tuple[str, list[str]]:
    document = yaml.safe_load(text)
    pem = base64.b64decode(document["users"][0]["user"]["client-certificate-data"])
    with warnings.catch_warnings():  # a CN past X.509's 64-character bound is what some are
        warnings.simplefilter("ignore", UserWarning)
        name = x509.load_pem_x509_certificate(pem).subject
    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return str(cn), [str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


@pytest.mark.parametrize(
    ("identity", "user", "groups"),
    [
        pytest.param(identities.SCHEDULER, "system:kube-scheduler", [], id="scheduler"),
        pytest.param(identities.CONTROLLER_MANAGER, "system:kube-controller-manager", [], id="kcm"),
        pytest.param(identities.KUBE_PROXY, "system:kube-proxy", [], id="proxy"),
        pytest.param(
            identities.DNS,
            "system:serviceaccount:kube-system:kube-dns",
            ["system:serviceaccounts", "system:serviceaccounts:kube-system"],
            id="dns",
        ),
        pytest.param(identities.Identity.node("n1"), "system:node:n1", ["system:nodes"], id="node"),
    ],
)
def test_component_certificate_names_its_user_and_groups(
    data_dir: Path, identity: identities.Identity, user: str, groups: list[str]
) -> None:
    text = identities.component_kubeconfig(data_dir, identity)
    assert subject(text) == (user, groups)
    settings = load_kubeconfig_text(text, str(data_dir))
    assert settings.server == SERVERS[0]
    assert list(settings.servers) == SERVERS
    assert settings.ca_data == (data_dir / "pki" / "ca.crt").read_bytes()


def test_one_kubeconfig_per_controller_service_account(data_dir: Path) -> None:
    texts = identities.service_account_kubeconfigs(data_dir, {"deployment-controller", "node-controller"})
    assert sorted(texts) == ["deployment-controller", "node-controller"]
    assert subject(texts["node-controller"])[0] == "system:serviceaccount:kube-system:node-controller"
    assert "system:masters" not in subject(texts["deployment-controller"])[1]


def test_a_service_account_name_past_the_64_character_common_name_bound_still_authenticates(
    data_dir: Path,
) -> None:
    """``system:serviceaccount:kube-system:clusterrole-aggregation-controller`` has 68 characters;
    the API server's TLS context verifies the certificate and reads the full name from it."""
    identity = identities.Identity.service_account("clusterrole-aggregation-controller")
    pki = Pki.in_dir(data_dir / "pki")
    cert_pem, key_pem = identities.issue(pki, identity)
    (data_dir / "c.pem").write_bytes(cert_pem)
    (data_dir / "k.pem").write_bytes(key_pem)
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[object] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ssl_context(pki).wrap_socket(conn, server_side=True) as tls:
            seen.append(peer_identity(tls))
            tls.recv(1)

    thread = threading.Thread(target=serve)
    thread.start()
    client = ssl.create_default_context(cafile=str(pki.ca_cert))
    client.load_cert_chain(str(data_dir / "c.pem"), str(data_dir / "k.pem"))
    with (
        socket.create_connection(listener.getsockname()) as raw,
        client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b".")
    thread.join(10)
    listener.close()
    assert seen == [(identity.user, list(identity.groups))]


def test_every_controller_account_gets_a_certificate(data_dir: Path) -> None:
    accounts = set(SERVICE_ACCOUNTS.values()) | {FOLLOWER_ACCOUNT, AUTOSCALER_ACCOUNT}
    texts = identities.service_account_kubeconfigs(data_dir, accounts)
    assert {subject(t)[0] for t in texts.values()} == {
        f"system:serviceaccount:kube-system:{a}" for a in accounts
    }
