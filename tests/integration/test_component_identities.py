"""raykube's own components hold their own identities, and RBAC holds them to their roles (issue 16):
against the session's `raykube up` (authorization Node,RBAC), real kubectl 1.33 with a certificate
for each component's identity (``cluster.identities``, issued from the data directory's CA as the
bootstrap issues them) is refused what lies outside its role with kube's 403 text, and allowed what
its work needs; a Deployment behind a Service still comes up (scheduler, controllers, proxy and
node agent all working under their identities) and ``kubectl logs`` reaches its pod through the API
server, while the live node agent refuses anyone else: the admin's and a user's certificate get the
kubelet's 403, a client without a certificate does not get past the handshake.
"""

from __future__ import annotations

import functools
import json
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from cluster import identities
from cluster.apiserver.tls import Pki, issue_client_cert
from cluster.identities import Identity
from tests.integration import support
from tests.integration.conftest import Kubectl, RaykubeCluster, kubectl_binary

pytestmark = pytest.mark.integration

wait_until = functools.partial(support.wait_until, timeout=180.0)

CONTROLLER = Identity.service_account

# (identity, kubectl arguments, the refusal's words): each is something the component never does.
REFUSED = [
    pytest.param(
        identities.SCHEDULER,
        ["get", "secrets", "-A"],
        'User "system:kube-scheduler" cannot list resource "secrets" in API group "" at the cluster scope',
        id="scheduler-reads-secrets",
    ),
    pytest.param(
        CONTROLLER("deployment-controller"),
        ["delete", "node", "no-such-node"],
        'User "system:serviceaccount:kube-system:deployment-controller" cannot delete resource "nodes"'
        ' in API group "" at the cluster scope',
        id="deployment-controller-deletes-nodes",
    ),
    pytest.param(
        CONTROLLER("replicaset-controller"),
        ["create", "deployment", "x", "--image=busybox", "-n", "default"],
        'User "system:serviceaccount:kube-system:replicaset-controller" cannot create resource "deployments"'
        ' in API group "apps" in the namespace "default"',
        id="replicaset-controller-creates-deployments",
    ),
    pytest.param(
        identities.CONTROLLER_MANAGER,
        ["delete", "pod", "no-such-pod", "-n", "default"],
        'User "system:kube-controller-manager" cannot delete resource "pods" in API group "" in the namespace'
        ' "default"',
        id="informers-identity-deletes-pods",
    ),
    pytest.param(
        identities.KUBE_PROXY,
        ["create", "configmap", "x", "-n", "default"],
        'User "system:kube-proxy" cannot create resource "configmaps" in API group ""'
        ' in the namespace "default"',
        id="proxy-writes",
    ),
    pytest.param(
        identities.DNS,
        ["get", "secrets", "-n", "kube-system"],
        'User "system:serviceaccount:kube-system:kube-dns" cannot list resource "secrets" in API group ""'
        ' in the namespace "kube-system"',
        id="dns-reads-secrets",
    ),
    pytest.param(
        identities.INGRESS,
        ["create", "secret", "generic", "x", "-n", "default"],
        'User "system:serviceaccount:kube-system:raykube-ingress" cannot create resource "secrets" in API'
        ' group "" in the namespace "default"',
        id="ingress-writes-secrets",
    ),
]

# (identity, kubectl arguments): what the component's work needs.
ALLOWED = [
    pytest.param(identities.SCHEDULER, ["get", "pods", "-A"], id="scheduler-lists-pods"),
    pytest.param(identities.CONTROLLER_MANAGER, ["get", "secrets", "-A"], id="informers-list-everything"),
    pytest.param(CONTROLLER("deployment-controller"), ["get", "replicasets", "-A"], id="deployment-reads-rs"),
    pytest.param(identities.KUBE_PROXY, ["get", "endpointslices", "-A"], id="proxy-lists-slices"),
    pytest.param(identities.DNS, ["get", "services", "-A"], id="dns-lists-services"),
    pytest.param(identities.INGRESS, ["get", "ingresses", "-A"], id="ingress-lists-ingresses"),
]


def run_as(
    cluster: RaykubeCluster, identity: Identity, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    kubeconfig = tmp_path / "component.kubeconfig"
    kubeconfig.write_text(identities.component_kubeconfig(cluster.data_dir, identity))
    return subprocess.run(
        [str(kubectl_binary("1.33")), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("identity", "args", "refusal"), REFUSED)
def test_component_is_refused_outside_its_role(
    raykube_cluster: RaykubeCluster, tmp_path: Path, identity: Identity, args: list[str], refusal: str
) -> None:
    proc = run_as(raykube_cluster, identity, tmp_path, *args)
    assert proc.returncode != 0, proc.stdout
    assert " is forbidden: " in proc.stderr and refusal in proc.stderr, proc.stderr


def test_kubectl_auth_can_i_answers_for_a_controller(raykube_cluster: RaykubeCluster) -> None:
    admin = Kubectl(raykube_cluster, "1.33", None)
    who = "--as=system:serviceaccount:kube-system:deployment-controller"
    assert admin.run("auth", "can-i", "delete", "nodes", who, check=False).stdout.strip() == "no"
    assert admin.run("auth", "can-i", "create", "replicasets", "-n", "default", who).stdout.strip() == "yes"


@pytest.mark.parametrize(("identity", "args"), ALLOWED)
def test_component_is_allowed_its_work(
    raykube_cluster: RaykubeCluster, tmp_path: Path, identity: Identity, args: list[str]
) -> None:
    proc = run_as(raykube_cluster, identity, tmp_path, *args)
    assert proc.returncode == 0, proc.stderr


def agent_get(host: str, port: int, context: ssl.SSLContext, path: str) -> tuple[int, str]:
    """One HTTP/1.1 GET over TLS to the node agent; (status, body)."""
    with socket.create_connection((host, port), timeout=10) as raw, context.wrap_socket(raw) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    if not data:  # TLS 1.3: the server refuses the client's certificate after the client's handshake
        raise ConnectionError("the agent closed the connection without an answer")
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_workloads_run_and_only_the_api_server_reaches_the_node_agent(
    raykube_cluster: RaykubeCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    kubectl.run("create", "deployment", "echo", "--image=busybox", "--replicas=2", "--", "sh", "-c",
                "echo identities-ok; sleep 3600")  # fmt: skip
    kubectl.run("expose", "deployment", "echo", "--port=80")
    kubectl.run("rollout", "status", "deployment/echo", "--timeout=180s", timeout=200)
    slices = wait_until(
        lambda: [
            s
            for s in kubectl.json("get", "endpointslices", "-l", "kubernetes.io/service-name=echo")["items"]
            if len(s.get("endpoints") or []) == 2
        ],
        "the Service's EndpointSlice with both pods",
    )
    assert slices
    pod = kubectl.json("get", "pods", "-l", "app=echo")["items"][0]
    name, node_name = pod["metadata"]["name"], pod["spec"]["nodeName"]
    wait_until(lambda: "identities-ok" in kubectl.out("logs", name), "kubectl logs through the API server")

    node = json.loads(Kubectl(raykube_cluster, "1.33", None).out("get", "node", node_name, "-o", "json"))
    port = int(node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"])
    host = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    pki = Pki.in_dir(raykube_cluster.data_dir / "pki")
    cert_pem, key_pem = issue_client_cert(pki, "alice", ["devs"])
    (tmp_path / "alice.crt").write_bytes(cert_pem)
    (tmp_path / "alice.key").write_bytes(key_pem)
    path = f"/containerLogs/{kubectl.namespace}/{name}/{pod['spec']['containers'][0]['name']}"
    for who, cert, key in (
        ("raykube-admin", pki.admin_cert, pki.admin_key),
        ("alice", tmp_path / "alice.crt", tmp_path / "alice.key"),
    ):
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.check_hostname = False  # the agent's certificate names its node, we dial its IP
        context.load_cert_chain(str(cert), str(key))
        assert agent_get(host, port, context, path) == (
            403,
            f"Forbidden (user={who}, verb=get, resource=nodes, subresource=proxy)",
        )
    anonymous = ssl.create_default_context(cafile=str(pki.ca_cert))
    anonymous.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError)):
        agent_get(host, port, anonymous, path)
