"""Issue 16's 401/403 matrix against the session's `raykube up` cluster (Node,RBAC, anonymous on):
every credential that must not get in is refused with kube's exact Status, and every refusal has a
control case showing the same kind of credential does get in when valid (no false allow, no false
deny). Also: a Secret's value is nowhere in the data directory (encryption at rest, from outside).

The 401 body is kube's ``{"kind":"Status",...,"message":"Unauthorized","reason":"Unauthorized",
"code":401}``; a 403 names the authenticated user, which shows who the credential was taken for.
"""

from __future__ import annotations

import base64
import secrets
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster.apiserver import tokens
from cluster.apiserver.kubeconfig import kubeconfig_document
from cluster.machinery import pki as certutil
from tests.integration.auth_support import (
    UNAUTHORIZED,
    Caller,
    admin,
    anonymous,
    create_token,
    eventually,
    forbidden_list,
    unique,
    user,
)
from tests.integration.conftest import RaykubeCluster

pytestmark = pytest.mark.integration


def secrets_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets"


def refused_as(caller: Caller, namespace: str) -> tuple[Any, ...]:
    """What listing Secrets in ``namespace`` answers (a 403 names the user the server saw)."""
    return caller.get(secrets_path(namespace)).status_fields()


def forbidden_secrets(user_name: str, namespace: str) -> tuple[Any, ...]:
    return 403, "Forbidden", forbidden_list(user_name, "secrets", namespace=namespace)


# ------------------------------------------------------------------------------------ anonymous


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/version"])
def test_anonymous_reads_public_info(raykube_cluster: RaykubeCluster, tmp_path: Path, path: str) -> None:
    reply = anonymous(raykube_cluster, tmp_path).get(path)
    assert reply.status == 200, reply.body[:500]


def test_anonymous_is_forbidden_pods_and_discovery(raykube_cluster: RaykubeCluster, tmp_path: Path) -> None:
    caller = anonymous(raykube_cluster, tmp_path)
    pods = caller.get("/api/v1/pods")
    assert pods.status_fields() == (403, "Forbidden", forbidden_list("system:anonymous", "pods"))
    assert pods.json()["details"] == {"kind": "pods"}
    # Discovery is system:discovery's, bound to system:authenticated only (kube >= 1.14).
    assert caller.get("/api").status_fields() == (
        403,
        "Forbidden",
        'forbidden: User "system:anonymous" cannot get path "/api"',
    )
    secret = caller.get("/api/v1/namespaces/default/secrets/x")
    assert secret.status_fields() == (
        403,
        "Forbidden",
        'secrets "x" is forbidden: User "system:anonymous" cannot get resource "secrets" in API group "" '
        'in the namespace "default"',
    )


# ------------------------------------------------------------------------------------ tokens


def test_expired_bootstrap_token_is_unauthorized(raykube_cluster: RaykubeCluster, tmp_path: Path) -> None:
    """A bootstrap token past its ``expiration`` is 401; the same shape of token, unexpired, is
    system:bootstrap:<id>."""
    kube_system = admin(raykube_cluster, "kube-system")
    caller = anonymous(raykube_cluster, tmp_path)
    tokens: dict[str, str] = {}
    for label, expiration in (("expired", "2020-01-01T00:00:00Z"), ("valid", "2099-01-01T00:00:00Z")):
        token_id, token_secret = secrets.token_hex(3), secrets.token_hex(8)
        kube_system.apply(
            f"""
apiVersion: v1
kind: Secret
metadata: {{name: bootstrap-token-{token_id}, namespace: kube-system}}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: "{token_id}"
  token-secret: "{token_secret}"
  expiration: "{expiration}"
  usage-bootstrap-authentication: "true"
  auth-extra-groups: "system:bootstrappers:acceptance"
"""
        )
        tokens[label] = f"{token_id}.{token_secret}"
    try:
        valid_id = tokens["valid"].split(".")[0]
        got = eventually(
            lambda: refused_as(caller.with_token(tokens["valid"]), "default"),
            lambda r: r[0] == 403,
        )
        assert got == forbidden_secrets(f"system:bootstrap:{valid_id}", "default")
        assert (
            caller.with_token(tokens["expired"]).get(secrets_path("default")).status_fields() == UNAUTHORIZED
        )
        # A token whose secret half is wrong is no better than an expired one.
        wrong = tokens["valid"].split(".")[0] + "." + secrets.token_hex(8)
        assert caller.with_token(wrong).get(secrets_path("default")).status_fields() == UNAUTHORIZED
    finally:
        for token in tokens.values():
            kube_system.run("delete", "secret", f"bootstrap-token-{token.split('.')[0]}", check=False)


@pytest.fixture
def service_account(raykube_cluster: RaykubeCluster, namespace: str) -> str:
    name = unique("sa")
    admin(raykube_cluster, namespace).out("create", "serviceaccount", name)
    return name


def test_service_account_tokens_expired_or_for_another_audience_are_unauthorized(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str, service_account: str
) -> None:
    caller = anonymous(raykube_cluster, tmp_path)
    sa_user = f"system:serviceaccount:{namespace}:{service_account}"
    fresh = create_token(raykube_cluster, namespace, service_account)
    assert refused_as(caller.with_token(fresh), namespace) == forbidden_secrets(sa_user, namespace)

    other_audience = create_token(
        raykube_cluster, namespace, service_account, "--audience", "https://vault.example"
    )
    assert caller.with_token(other_audience).get(secrets_path(namespace)).status_fields() == UNAUTHORIZED

    # An expired token, signed with the cluster's own service-account key: TokenRequest never
    # issues one (10 minutes at least), so it is signed here as the server would have an hour ago.
    sa = admin(raykube_cluster, namespace).json("get", "serviceaccount", service_account)
    key = tokens.signing_key(raykube_cluster.data_dir / "pki")
    expired, exp, _ = tokens.issue(
        key, sa, {"expirationSeconds": 600}, now=datetime.now(UTC) - timedelta(hours=1)
    )
    assert exp < datetime.now(UTC)
    assert caller.with_token(expired).get(secrets_path(namespace)).status_fields() == UNAUTHORIZED

    # The same claims, signed by a key that is not the cluster's, are refused as well.
    foreign_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged, _, _ = tokens.issue(foreign_key, sa, {})
    assert caller.with_token(forged).get(secrets_path(namespace)).status_fields() == UNAUTHORIZED


def test_deleted_pods_and_service_accounts_tokens_are_unauthorized(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str, service_account: str
) -> None:
    kubectl = admin(raykube_cluster, namespace)
    caller = anonymous(raykube_cluster, tmp_path)
    sa_user = f"system:serviceaccount:{namespace}:{service_account}"
    pod = unique("holder")
    # Bound to a node nobody runs: the pod only has to exist, not to start.
    kubectl.apply(
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: {pod}}}
spec:
  serviceAccountName: {service_account}
  nodeName: nowhere-{secrets.token_hex(3)}
  containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
"""
    )
    pod_token = create_token(
        raykube_cluster, namespace, service_account, "--bound-object-kind", "Pod", "--bound-object-name", pod
    )
    sa_token = create_token(raykube_cluster, namespace, service_account)
    assert refused_as(caller.with_token(pod_token), namespace) == forbidden_secrets(sa_user, namespace)
    assert refused_as(caller.with_token(sa_token), namespace) == forbidden_secrets(sa_user, namespace)

    kubectl.out("delete", "pod", pod, "--grace-period=0", "--force")
    got = eventually(lambda: refused_as(caller.with_token(pod_token), namespace), lambda r: r == UNAUTHORIZED)
    assert got == UNAUTHORIZED
    # The ServiceAccount's unbound token still works: only the pod went.
    assert refused_as(caller.with_token(sa_token), namespace) == forbidden_secrets(sa_user, namespace)

    kubectl.out("delete", "serviceaccount", service_account)
    got = eventually(lambda: refused_as(caller.with_token(sa_token), namespace), lambda r: r == UNAUTHORIZED)
    assert got == UNAUTHORIZED
    # A ServiceAccount of the same name made again is a new object (new uid): the old token stays out.
    kubectl.out("create", "serviceaccount", service_account)
    assert caller.with_token(sa_token).get(secrets_path(namespace)).status_fields() == UNAUTHORIZED


# ------------------------------------------------------------------------------------ certificates


def test_certificate_from_a_foreign_ca_gets_nothing(raykube_cluster: RaykubeCluster, tmp_path: Path) -> None:
    """A client certificate for system:masters signed by another CA: the TLS handshake refuses it
    (raykube's choice; kube-apiserver answers 401 instead). Never an answer with data."""
    now = datetime.now(UTC)
    foreign_ca, foreign_ca_key = certutil.new_ca(now)
    cert, key = certutil.issue_leaf(
        foreign_ca,
        foreign_ca_key,
        subject=certutil.subject_name("intruder", ["system:masters"]),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now,
        validity=timedelta(days=1),
    )
    (tmp_path / "foreign.crt").write_bytes(certutil.cert_pem(cert))
    (tmp_path / "foreign.key").write_bytes(certutil.key_pem(key))
    base = anonymous(raykube_cluster, tmp_path)
    caller = Caller(base.host, base.port, base.ca_file, tmp_path / "foreign.crt", tmp_path / "foreign.key")
    try:
        reply = caller.get("/api/v1/namespaces/kube-system/secrets")
    except (ssl.SSLError, ConnectionError):
        pass  # refused during the handshake (TLS 1.3 reports the alert at the first read): no answer
    else:
        assert reply.status_fields() == UNAUTHORIZED
    # kubectl with that certificate gets no list either.
    document = kubeconfig_document(
        server=raykube_cluster.server,
        cluster_name="raykube",
        user="intruder",
        context="raykube",
        certificate_authority=base.ca_file.read_bytes(),
        client_certificate=certutil.cert_pem(cert),
        client_key=certutil.key_pem(key),
    )
    (tmp_path / "intruder.kubeconfig").write_text(yaml.safe_dump(document))
    proc = subprocess.run(
        [
            "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
            "--kubeconfig",
            str(tmp_path / "intruder.kubeconfig"),
            "get",
            "secrets",
            "-A",
            "--request-timeout=20s",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)


def test_user_without_bindings_is_forbidden(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str
) -> None:
    nobody = user(raykube_cluster, tmp_path, unique("nobody"), ("acceptance-testers",))
    assert refused_as(nobody.caller, namespace) == forbidden_secrets(nobody.name, namespace)
    pods = nobody.caller.get(f"/api/v1/namespaces/{namespace}/pods")
    assert pods.status_fields() == (
        403,
        "Forbidden",
        forbidden_list(nobody.name, "pods", namespace=namespace),
    )
    create = nobody.caller.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
    )
    assert create.status_fields() == (
        403,
        "Forbidden",
        f'configmaps is forbidden: User "{nobody.name}" cannot create resource "configmaps" in API group "" '
        f'in the namespace "{namespace}"',
    )
    nodes = nobody.caller.get("/api/v1/nodes")
    assert nodes.status_fields() == (403, "Forbidden", forbidden_list(nobody.name, "nodes"))
    # Non-resource paths are denied by default too (/metrics is system:monitoring's).
    assert nobody.caller.get("/metrics").status_fields() == (
        403,
        "Forbidden",
        f'forbidden: User "{nobody.name}" cannot get path "/metrics"',
    )
    # Authenticated, so discovery and the public endpoints are still open to it.
    assert nobody.caller.get("/api").status == 200
    assert nobody.caller.get("/version").status == 200
    err = nobody.kubectl(namespace).fails("get", "pods")
    assert (
        f'Error from server (Forbidden): pods is forbidden: User "{nobody.name}" cannot list resource "pods" '
        f'in API group "" in the namespace "{namespace}"'
    ) in err


def test_service_account_bound_in_another_namespace_only(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str, service_account: str
) -> None:
    other = unique("t-other")
    admin(raykube_cluster).out("create", "namespace", other)
    try:
        admin(raykube_cluster, other).out(
            "create",
            "rolebinding",
            "reads-there",
            "--clusterrole=view",
            f"--serviceaccount={namespace}:{service_account}",
        )
        caller = anonymous(raykube_cluster, tmp_path).with_token(
            create_token(raykube_cluster, namespace, service_account)
        )
        sa_user = f"system:serviceaccount:{namespace}:{service_account}"
        there = eventually(lambda: caller.get(f"/api/v1/namespaces/{other}/pods"), lambda r: r.status == 200)
        assert there.status == 200 and there.json()["kind"] == "PodList", there.body[:300]
        here = caller.get(f"/api/v1/namespaces/{namespace}/pods")
        assert here.status_fields() == (
            403,
            "Forbidden",
            forbidden_list(sa_user, "pods", namespace=namespace),
        )
        everywhere = caller.get("/api/v1/pods")
        assert everywhere.status_fields() == (403, "Forbidden", forbidden_list(sa_user, "pods"))
        # view never includes Secrets, even where it is bound.
        assert refused_as(caller, other) == forbidden_secrets(sa_user, other)
    finally:
        admin(raykube_cluster).run("delete", "namespace", other, "--wait=false", check=False)


# ------------------------------------------------------------------------------------ secrets at rest


def _grep(data_dir: Path, needle: str) -> list[str]:
    """Files under ``data_dir`` holding ``needle`` (binary files read as text)."""
    proc = subprocess.run(
        ["grep", "-r", "-l", "-F", "-a", "--", needle, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout.splitlines()


def test_secret_values_are_not_in_the_data_directory(raykube_cluster: RaykubeCluster, namespace: str) -> None:
    kubectl = admin(raykube_cluster, namespace)
    value = "acceptance-" + secrets.token_hex(16)
    string_value = "string-" + secrets.token_hex(16)
    control = "control-" + secrets.token_hex(16)
    kubectl.out("create", "configmap", "control", f"--from-literal=v={control}")
    kubectl.out("create", "secret", "generic", "precious", f"--from-literal=v={value}")
    kubectl.apply(
        f"""
apiVersion: v1
kind: Secret
metadata: {{name: precious-string}}
stringData: {{v: "{string_value}"}}
"""
    )
    # An update writes the value again (a second record in the log).
    kubectl.out("label", "secret", "precious", "touched=yes")
    stored = kubectl.json("get", "secret", "precious")
    assert base64.b64decode(stored["data"]["v"]).decode() == value
    # The ConfigMap's value (not encrypted) shows the search reaches where the store writes.
    found = eventually(lambda: _grep(raykube_cluster.data_dir, control), bool)
    assert found, f"the ConfigMap's value is nowhere under {raykube_cluster.data_dir}: wrong place searched"
    for needle in (value, base64.b64encode(value.encode()).decode(), string_value,
                   base64.b64encode(string_value.encode()).decode()):  # fmt: skip
        assert _grep(raykube_cluster.data_dir, needle) == [], needle
