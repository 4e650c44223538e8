"""Authentication against `raykube up` with the real kubectl and the Python client: ServiceAccount
tokens from ``kubectl create token`` (working, expired, another audience, a deleted pod's, a deleted
account's), a certificate from a foreign CA, ``kubectl auth whoami`` for a certificate user, a token
user and a ServiceAccount, ``kubectl --as``, ``raykube kubeconfig --user``, and certificate signing
requests (``kubectl certificate approve``; a node joining with a bootstrap token)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import kubernetes
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster.apiserver import tokens
from cluster.machinery import pki as certutil
from tests.integration.auth_support import cli_user
from tests.integration.conftest import RAYKUBE, Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

T = TypeVar("T")
UNAUTHORIZED = "error: You must be logged in to the server (Unauthorized)"
BUSYBOX = {"name": "c", "image": "busybox", "command": ["sleep", "3600"]}


def eventually(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 60.0) -> T:
    """Poll ``probe`` until ``done``; the caller asserts on the last result (a bound, not a threshold)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def admin_config(cluster: RaykubeCluster) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    return doc


def kubectl_as(cluster: RaykubeCluster, path: Path, user: dict[str, Any], namespace: str | None) -> Kubectl:
    """kubectl 1.33 with a kubeconfig of the cluster's server and CA and ``user``'s credential."""
    config = admin_config(cluster)
    config["users"] = [{"name": "u", "user": user}]
    config["contexts"] = [{"name": "u", "context": {"cluster": config["clusters"][0]["name"], "user": "u"}}]
    config["current-context"] = "u"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return Kubectl(RaykubeCluster(cluster.data_dir, path, cluster.env), "1.33", namespace)


def with_token(cluster: RaykubeCluster, tmp_path: Path, token: str, namespace: str | None = None) -> Kubectl:
    return kubectl_as(cluster, tmp_path / f"token-{secrets.token_hex(3)}", {"token": token}, namespace)


def whoami(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    info: dict[str, Any] = kubectl.json("auth", "whoami", *args, namespaced=False)["status"]["userInfo"]
    return info


def refused(kubectl: Kubectl) -> str:
    return kubectl.fails("auth", "whoami", namespaced=False).strip()


# ---------------------------------------------------------------------------- ServiceAccount tokens


def test_service_account_tokens(
    raykube_cluster: RaykubeCluster, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    kubectl.run("create", "serviceaccount", "robot")
    token = kubectl.out("create", "token", "robot").strip()
    as_robot = with_token(raykube_cluster, tmp_path, token, namespace)
    info = whoami(as_robot)
    sa_uid = kubectl.json("get", "serviceaccount", "robot")["metadata"]["uid"]
    assert info["username"] == f"system:serviceaccount:{namespace}:robot"
    assert info["uid"] == sa_uid
    assert info["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    ]
    assert info["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    # The same token through the Python client.
    config = kubernetes.client.Configuration()
    config.host = raykube_cluster.server
    config.ssl_ca_cert = str(raykube_cluster.data_dir / "pki" / "ca.crt")
    config.api_key = {"authorization": f"Bearer {token}"}
    with kubernetes.client.ApiClient(config) as api:
        review = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review(
            kubernetes.client.V1SelfSubjectReview()
        )
        assert review.status is not None and review.status.user_info is not None
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:robot"
        bad = kubernetes.client.Configuration()
        bad.host, bad.ssl_ca_cert = config.host, config.ssl_ca_cert
        bad.api_key = {"authorization": "Bearer " + token[:-4] + "AAAA"}
        with (
            kubernetes.client.ApiClient(bad) as bad_api,
            pytest.raises(kubernetes.client.ApiException) as err,
        ):
            kubernetes.client.AuthenticationV1Api(bad_api).create_self_subject_review(
                kubernetes.client.V1SelfSubjectReview()
            )
        assert err.value.status == 401
        assert json.loads(err.value.body or "{}")["message"] == "Unauthorized"

    # Another audience than the API server's: refused.
    foo = kubectl.out("create", "token", "robot", "--audience", "foo").strip()
    assert refused(with_token(raykube_cluster, tmp_path, foo)) == UNAUTHORIZED
    # Expired (signed with the cluster's key, as TokenRequest would have three hours ago).
    sa = kubectl.json("get", "serviceaccount", "robot")
    key = tokens.signing_key(raykube_cluster.data_dir / "pki")
    expired, _, _ = tokens.issue(key, sa, {}, now=datetime.now(UTC) - timedelta(hours=3))
    assert refused(with_token(raykube_cluster, tmp_path, expired)) == UNAUTHORIZED
    # The same token while its account lives, then after the account is deleted.
    assert whoami(as_robot)["username"].endswith(":robot")
    kubectl.run("delete", "serviceaccount", "robot")
    assert (
        eventually(
            lambda: as_robot.run("auth", "whoami", check=False, namespaced=False), lambda p: p.returncode != 0
        ).stderr.strip()
        == UNAUTHORIZED
    )
    # An account of the same name again has another uid: the old token stays refused.
    kubectl.run("create", "serviceaccount", "robot")
    assert refused(as_robot) == UNAUTHORIZED


def test_a_deleted_pods_token_is_refused(
    raykube_cluster: RaykubeCluster, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    kubectl.run("create", "serviceaccount", "robot")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"serviceAccountName": "robot", "containers": [BUSYBOX], "terminationGracePeriodSeconds": 1},
    }
    kubectl.apply(json.dumps(pod))
    token = kubectl.out(
        "create", "token", "robot", "--bound-object-kind", "Pod", "--bound-object-name", "p"
    ).strip()
    as_pod = with_token(raykube_cluster, tmp_path, token)
    info = whoami(as_pod)
    uid = kubectl.json("get", "pod", "p")["metadata"]["uid"]
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
    assert info["extra"]["authentication.kubernetes.io/pod-uid"] == [uid]
    kubectl.run("delete", "pod", "p", "--wait=true", timeout=120)
    assert refused(as_pod) == UNAUTHORIZED
    # A token for a pod that does not exist is not issued at all.
    err = kubectl.fails(
        "create", "token", "robot", "--bound-object-kind", "Pod", "--bound-object-name", "nope"
    )
    assert 'pods "nope" not found' in err


# ---------------------------------------------------------------------------- certificates


def test_a_foreign_ca_certificate_is_refused_in_the_handshake(
    raykube_cluster: RaykubeCluster, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    ca_cert, ca_key = certutil.new_ca(now)
    cert, key = certutil.issue_leaf(
        ca_cert,
        ca_key,
        subject=certutil.subject_name("mallory", ["system:masters"]),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now,
        validity=timedelta(days=1),
    )
    user = {
        "client-certificate-data": base64.b64encode(certutil.cert_pem(cert)).decode(),
        "client-key-data": base64.b64encode(certutil.key_pem(key)).decode(),
    }
    err = refused(kubectl_as(raykube_cluster, tmp_path / "foreign", user, None))
    # Python's ssl verifies every certificate it asks for: the TLS handshake fails (kube: 401). With
    # TLS 1.3 the client learns it on its first read: the server's alert or the connection closing.
    assert err.startswith("Unable to connect to the server: "), err
    assert any(s in err for s in ("unknown certificate authority", "connection reset by peer", "EOF")), err


def test_raykube_kubeconfig_for_a_user(raykube_cluster: RaykubeCluster, tmp_path: Path) -> None:
    alice_user = cli_user(raykube_cluster, tmp_path, "alice", ("devs", "qa"))
    assert alice_user.kubeconfig.stat().st_mode & 0o777 == 0o600
    alice = alice_user.kubectl()
    assert whoami(alice) == {"username": "alice", "groups": ["devs", "qa", "system:authenticated"]}
    for version in ("1.28", "1.30"):
        text = alice.with_version(version).out("auth", "whoami", namespaced=False)
        assert "alice" in text and "[devs qa system:authenticated]" in text, (version, text)
    # The admin kubeconfig keeps system:masters.
    admin = Kubectl(raykube_cluster, "1.33", None)
    assert "system:masters" in whoami(admin)["groups"]


def test_impersonation(raykube_cluster: RaykubeCluster, tmp_path: Path) -> None:
    admin = Kubectl(raykube_cluster, "1.33", None)
    info = whoami(admin, "--as", "bob", "--as-group", "devs")
    assert info == {"username": "bob", "groups": ["devs", "system:authenticated"]}
    info = whoami(admin, "--as", "system:serviceaccount:default:default")
    assert info["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ]
    carol = cli_user(raykube_cluster, tmp_path, "carol").kubectl()
    # Discovery as carol herself first: kubectl caches it per server (~/.kube/cache), and with no cache
    # it would discover as bob, be refused there, and print only "Forbidden: unknown" (its discovery
    # client drops the Status message), which made this test depend on the ones before it.
    carol.out("api-resources", namespaced=False)
    # (kubectl auth whoami words every 403 as "not enabled ... or you do not have permission")
    err = carol.fails("get", "namespaces", "--as", "bob", namespaced=False)
    assert (
        'Error from server (Forbidden): users "bob" is forbidden: User "carol" cannot impersonate resource '
        '"users" in API group "" at the cluster scope'
    ) in err


# ---------------------------------------------------------------------------- certificate signing requests


def csr_request(cn: str, orgs: list[str]) -> tuple[str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
        ]
    )
    req = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(req.public_bytes(serialization.Encoding.PEM)).decode(), pem


def csr_manifest(name: str, request: str, signer: str, usages: list[str]) -> str:
    return json.dumps(
        {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": request, "signerName": signer, "usages": usages, "expirationSeconds": 86400},
        }
    )


def issued(admin: Kubectl, name: str) -> dict[str, Any]:
    csr: dict[str, Any] = eventually(
        lambda: admin.json("get", "csr", name, namespaced=False),
        lambda c: bool((c.get("status") or {}).get("certificate")),
    )
    assert (csr.get("status") or {}).get("certificate"), csr
    return csr


def with_cert(cluster: RaykubeCluster, path: Path, csr: dict[str, Any], key_pem: bytes) -> Kubectl:
    user = {
        "client-certificate-data": csr["status"]["certificate"],
        "client-key-data": base64.b64encode(key_pem).decode(),
    }
    return kubectl_as(cluster, path, user, None)


def test_kubectl_certificate_approve(raykube_cluster: RaykubeCluster, tmp_path: Path) -> None:
    admin = Kubectl(raykube_cluster, "1.33", None)
    name = f"dave-{secrets.token_hex(3)}"
    request, key_pem = csr_request("dave", ["testers"])
    admin.out(
        "create",
        "-f",
        "-",
        input=csr_manifest(name, request, "kubernetes.io/kube-apiserver-client", ["client auth"]),
    )
    table = admin.out("get", "csr", name, namespaced=False)
    assert table.split("\n")[0].split() == [
        "NAME",
        "AGE",
        "SIGNERNAME",
        "REQUESTOR",
        "REQUESTEDDURATION",
        "CONDITION",
    ]
    row = table.split("\n")[1].split()
    assert row[2:] == ["kubernetes.io/kube-apiserver-client", "raykube-admin", "24h", "Pending"], table
    assert (
        admin.out("certificate", "approve", name, namespaced=False).strip()
        == f"certificatesigningrequest.certificates.k8s.io/{name} approved"
    )
    csr = issued(admin, name)
    assert admin.out("get", "csr", name, namespaced=False).split("\n")[1].split()[-1] == "Approved,Issued"
    assert whoami(with_cert(raykube_cluster, tmp_path / "dave", csr, key_pem)) == {
        "username": "dave",
        "groups": ["testers", "system:authenticated"],
    }
    # Denied stays denied, and nothing is issued.
    other = f"erin-{secrets.token_hex(3)}"
    request, _ = csr_request("erin", [])
    admin.out(
        "create",
        "-f",
        "-",
        input=csr_manifest(other, request, "kubernetes.io/kube-apiserver-client", ["client auth"]),
    )
    assert (
        admin.out("certificate", "deny", other, namespaced=False).strip()
        == f"certificatesigningrequest.certificates.k8s.io/{other} denied"
    )
    assert admin.out("get", "csr", other, namespaced=False).split("\n")[1].split()[-1] == "Denied"
    # A kube-apiserver-client request for system:masters is refused when created.
    masters, _ = csr_request("mallory", ["system:masters"])
    err = admin.fails(
        "create",
        "-f",
        "-",
        input=csr_manifest("m-" + other, masters, "kubernetes.io/kube-apiserver-client", ["client auth"]),
    )
    assert "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed" in err


def test_node_joins_with_a_bootstrap_token(raykube_cluster: RaykubeCluster, tmp_path: Path) -> None:
    admin = Kubectl(raykube_cluster, "1.33", None)
    token_id, secret = secrets.token_hex(3), secrets.token_hex(8)
    admin.out(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "bootstrap.kubernetes.io/token",
                "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
                "stringData": {
                    "token-id": token_id,
                    "token-secret": secret,
                    "usage-bootstrap-authentication": "true",
                    "auth-extra-groups": "system:bootstrappers:test-nodes",
                },
            }
        ),
    )
    # What kubeadm binds at init: bootstrappers may ask for node client certificates, which are then
    # approved automatically.
    for role in (
        "system:node-bootstrapper",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
    ):
        binding = f"{role.rsplit(':', 1)[-1]}-{token_id}"
        admin.run(
            "create",
            "clusterrolebinding",
            binding,
            f"--clusterrole={role}",
            "--group=system:bootstrappers:test-nodes",
        )
    node_name = f"joiner-{token_id}"
    as_bootstrap = with_token(raykube_cluster, tmp_path, f"{token_id}.{secret}")
    info = whoami(as_bootstrap)
    assert info == {
        "username": f"system:bootstrap:{token_id}",
        "groups": ["system:bootstrappers", "system:bootstrappers:test-nodes", "system:authenticated"],
    }
    request, key_pem = csr_request(f"system:node:{node_name}", ["system:nodes"])
    name = f"node-csr-{token_id}"
    manifest = csr_manifest(
        name, request, "kubernetes.io/kube-apiserver-client-kubelet", ["digital signature", "client auth"]
    )
    as_bootstrap.out("create", "-f", "-", input=manifest, namespaced=False)
    csr = issued(admin, name)
    assert csr["spec"]["username"] == f"system:bootstrap:{token_id}"
    assert [c["reason"] for c in csr["status"]["conditions"]] == ["AutoApproved"]
    as_node = with_cert(raykube_cluster, tmp_path / "node", csr, key_pem)
    assert whoami(as_node) == {
        "username": f"system:node:{node_name}",
        "groups": ["system:nodes", "system:authenticated"],
    }
    # A request a person must approve (another user's name) stays Pending.
    request, _ = csr_request("frank", ["devs"])
    other = f"frank-{token_id}"
    as_bootstrap.out(
        "create",
        "-f",
        "-",
        input=csr_manifest(other, request, "kubernetes.io/kube-apiserver-client", ["client auth"]),
        namespaced=False,
    )
    assert admin.out("get", "csr", other, namespaced=False).split("\n")[1].split()[-1] == "Pending"


# ---------------------------------------------------- a cluster with static tokens, no anonymous


@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaykubeCluster]:
    """`raykube up --token-auth-file ... --anonymous-auth=false` beside the session cluster (own Ray
    namespace), torn down after this module."""
    root = tmp_path_factory.mktemp("raykube-tokens")
    tokens_csv = root / "tokens.csv"
    tokens_csv.write_text('# static users\nalicetoken,alice,1001,"devs,ops"\nbobtoken,bob,1002\n')
    data_dir = root / "data"
    env = dict(
        os.environ, RAYKUBE_NAMESPACE=f"authn-tests-{secrets.token_hex(4)}", RAY_USAGE_STATS_ENABLED="0"
    )
    env.pop("RAYKUBE_DATA_DIR", None)

    def cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*RAYKUBE, *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    up = cli("up", "--port", "0", "--token-auth-file", str(tokens_csv), "--anonymous-auth=false", timeout=300)
    try:
        assert up.returncode == 0, f"raykube up exited {up.returncode}\n{up.stdout}\n{up.stderr}"
        yield RaykubeCluster(data_dir, data_dir / "kubeconfig", env)
    finally:
        cli("down", "--purge", timeout=120)


def test_static_tokens_and_anonymous_off(token_cluster: RaykubeCluster, tmp_path: Path) -> None:
    alice = with_token(token_cluster, tmp_path, "alicetoken")
    assert whoami(alice) == {
        "username": "alice",
        "uid": "1001",
        "groups": ["devs", "ops", "system:authenticated"],
    }
    assert whoami(with_token(token_cluster, tmp_path, "bobtoken"))["username"] == "bob"
    assert refused(with_token(token_cluster, tmp_path, "nosuchtoken")) == UNAUTHORIZED
    # No credential at all: 401 rather than system:anonymous, even for /version and /healthz.
    # (kubectl would prompt for a user name without any credential: plain HTTPS instead.)
    server = urlsplit(token_cluster.server)
    context = ssl.create_default_context(cafile=str(token_cluster.data_dir / "pki" / "ca.crt"))
    for path in ("/version", "/healthz", "/api/v1/namespaces"):
        conn = http.client.HTTPSConnection(
            server.hostname or "127.0.0.1", server.port or 443, context=context
        )
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = json.loads(resp.read())
        finally:
            conn.close()
        assert (resp.status, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized"), path
