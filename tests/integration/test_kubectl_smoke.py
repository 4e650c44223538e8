"""Real kubectl (1.27, 1.30, 1.32, 1.33) against a real `raykube up`: the commands every version must run.

Only behaviour that can differ by kubectl version is parametrized here (discovery flavour, OpenAPI
v2 vs v3 for apply, JSON vs protobuf bodies from typed `create`); the bulk of the commands runs with
1.33 in ``test_kubectl_commands.py``.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import KUBECTL_VERSIONS, Kubectl, RaykubeCluster

VERSIONS = [pytest.param(v, id=f"kubectl-{v}") for v in KUBECTL_VERSIONS]


def pod_manifest(namespace: str, image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
            # no node matches, so the pod stays Pending (the session's real node would otherwise run it)
            "spec": {
                "containers": [{"name": "nginx", "image": image}],
                "nodeSelector": {"raykube.test/no-such-node": "true"},
            },
        }
    )


@pytest.fixture(params=VERSIONS)
def versioned(request: pytest.FixtureRequest, raykube_cluster: RaykubeCluster, namespace: str) -> Kubectl:
    return Kubectl(raykube_cluster, request.param, namespace)


def test_version_shows_server(versioned: Kubectl) -> None:
    info = json.loads(versioned.out("version", "-o", "json", namespaced=False))
    assert info["clientVersion"]["gitVersion"].startswith(f"v{versioned.version}.")
    assert info["serverVersion"]["major"] == "1"
    assert info["serverVersion"]["gitVersion"].startswith("v1.")


def test_api_resources_short_names(versioned: Kubectl) -> None:
    rows = {line.split()[0]: line.split() for line in versioned.out("api-resources").splitlines()[1:]}
    assert rows["pods"][1] == "po"
    assert rows["deployments"][1] == "deploy"
    assert rows["deployments"][2] == "apps/v1"
    assert "configmaps" in rows and rows["namespaces"][1] == "ns"


def test_apply_get_describe_delete(versioned: Kubectl) -> None:
    k, ns = versioned, versioned.namespace
    assert ns is not None
    assert k.apply(pod_manifest(ns, "nginx:1.25")).strip() == "pod/web created"
    assert k.apply(pod_manifest(ns, "nginx:1.25")).strip() == "pod/web unchanged"
    assert k.apply(pod_manifest(ns, "nginx:1.26")).strip() == "pod/web configured"
    assert k.json("get", "pod", "web")["spec"]["containers"][0]["image"] == "nginx:1.26"

    lines = k.out("get", "pods").splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["web", "0/1", "Pending", "0"]

    described = k.out("describe", "pod", "web")
    assert "Name:" in described and "web" in described
    assert f"Namespace:        {ns}" in described or f"Namespace:    {ns}" in described or ns in described
    assert "nginx:1.26" in described

    assert k.out("delete", "pod", "web", "--wait=true", timeout=90).strip() == 'pod "web" deleted'
    assert "NotFound" in k.fails("get", "pod", "web")


def test_create_configmap_from_literal(versioned: Kubectl) -> None:
    k = versioned
    assert k.out("create", "configmap", "cm", "--from-literal=a=1", "--from-literal=b=two").strip() == (
        "configmap/cm created"
    )
    assert k.json("get", "configmap", "cm")["data"] == {"a": "1", "b": "two"}
    # typed `create` prints the message without the reason, as against Kubernetes
    assert 'configmaps "cm" already exists' in k.fails("create", "configmap", "cm", "--from-literal=a=1")


def test_typed_create_deployment_and_secret(versioned: Kubectl) -> None:
    """kubectl 1.32+ sends these typed `create` bodies as protobuf; older versions send JSON."""
    k = versioned
    k.run("create", "secret", "generic", "s", "--from-literal=pw=s3cr3t")
    assert k.json("get", "secret", "s")["data"] == {"pw": "czNjcjN0"}
    proc = k.run("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2")
    assert proc.stdout.strip() == "deployment.apps/web created", proc.stderr
    deploy = k.json("get", "deployment", "web")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert "Replicas:" in k.out("describe", "deployment", "web")
