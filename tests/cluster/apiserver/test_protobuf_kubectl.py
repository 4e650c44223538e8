"""The real kubectl 1.32 and 1.33 against a recording stub: which commands send protobuf, and that
every such body decodes to the expected JSON object (docs/kubectl-protobuf.md lists the findings).

Skipped per version when the binary is not installed. Each case is one kubectl run (~0.2 s).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster.apiserver.protobuf import decode_k8s_protobuf
from tests.capabilities import needs
from tests.cluster.apiserver.protobuf_stub import StubServer

BIN = Path("/usr/lib/google-cloud-sdk/bin")
VERSIONS = [
    pytest.param(
        version,
        marks=needs(
            "kubectl", None if (BIN / f"kubectl.{version}").exists() else f"kubectl.{version} not installed"
        ),
        id=version,
    )
    for version in ("1.32", "1.33")
]

RBAC = "rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
NS = "/api/v1/namespaces/default"
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {}, "status": {}}
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default"},
    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
    "status": {"phase": "Running"},
}
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {}},
}
OBJECTS = {
    "/api/v1/nodes/n1": NODE,
    "/api/v1/pods": {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [POD]},
    "/apis/apps/v1/namespaces/default/deployments/web": DEPLOYMENT,
    "/apis/apps/v1/namespaces/default/deployments/web/scale": {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3},
        "status": {"replicas": 3, "selector": "app=web"},
    },
}


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    server = StubServer(OBJECTS)
    yield server
    server.close()


def run_kubectl(
    stub: StubServer, version: str, cache: Path, args: list[str]
) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / f"kubectl.{version}"), "--kubeconfig", "/dev/null", "--server", stub.url]
    return subprocess.run(
        [*command, "--cache-dir", str(cache), *args], capture_output=True, text=True, timeout=60, check=False
    )


def deployment(name: str, replicas: int, containers: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, **meta, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
            "strategy": {},
        },
        "status": {},
    }


def service(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, **spec}
        if "ports" not in spec
        else {**spec, "selector": {"app": name}},
        "status": {},
    }


def ordered_service(name: str, ports: list[dict[str, Any]], service_type: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"ports": ports, "selector": {"app": name}, "type": service_type},
        "status": {},
    }


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": name}


CASES = [
    pytest.param(
        ["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "--port=80", "-n", "team-a"],
        "/apis/apps/v1/namespaces/team-a/deployments",
        deployment(
            "web",
            2,
            [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "resources": {}}],
            namespace="team-a",
        ),
        id="create-deployment",
    ),
    pytest.param(
        ["create", "deployment", "zero", "--image=a", "--image=b:2", "--replicas=0"],
        "/apis/apps/v1/namespaces/default/deployments",
        deployment(
            "zero",
            0,
            [{"name": "a", "image": "a", "resources": {}}, {"name": "b", "image": "b:2", "resources": {}}],
        ),
        id="create-deployment-two-images-zero-replicas",
    ),
    pytest.param(
        ["create", "deployment", "cmd", "--image=busybox", "--", "sleep", "10"],
        "/apis/apps/v1/namespaces/default/deployments",
        deployment(
            "cmd", 1, [{"name": "busybox", "image": "busybox", "command": ["sleep", "10"], "resources": {}}]
        ),
        id="create-deployment-command",
    ),
    pytest.param(
        ["create", "job", "j", "--image=busybox", "--", "echo", "hi"],
        "/apis/batch/v1/namespaces/default/jobs",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "metadata": {},
                    "spec": {
                        "containers": [
                            {"name": "j", "image": "busybox", "command": ["echo", "hi"], "resources": {}}
                        ],
                        "restartPolicy": "Never",
                    },
                }
            },
            "status": {},
        },
        id="create-job",
    ),
    pytest.param(
        [
            "create",
            "cronjob",
            "c",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--restart=OnFailure",
            "--",
            "date",
        ],
        "/apis/batch/v1/namespaces/default/cronjobs",
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "c"},
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {
                    "metadata": {"name": "c"},
                    "spec": {
                        "template": {
                            "metadata": {},
                            "spec": {
                                "containers": [
                                    {"name": "c", "image": "busybox", "command": ["date"], "resources": {}}
                                ],
                                "restartPolicy": "OnFailure",
                            },
                        }
                    },
                },
            },
            "status": {},
        },
        id="create-cronjob",
    ),
    pytest.param(
        ["create", "service", "clusterip", "s", "--tcp=80:8080", "--tcp=443"],
        f"{NS}/services",
        ordered_service(
            "s",
            [
                {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "443", "protocol": "TCP", "port": 443, "targetPort": 443},
            ],
            "ClusterIP",
        ),
        id="create-service-clusterip",
    ),
    pytest.param(
        ["create", "service", "nodeport", "np", "--tcp=80:http", "--node-port=30080"],
        f"{NS}/services",
        ordered_service(
            "np",
            [{"name": "80-http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": 30080}],
            "NodePort",
        ),
        id="create-service-nodeport-named-target",
    ),
    pytest.param(
        ["create", "service", "loadbalancer", "lb", "--tcp=80:8080"],
        f"{NS}/services",
        ordered_service(
            "lb", [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}], "LoadBalancer"
        ),
        id="create-service-loadbalancer",
    ),
    pytest.param(
        ["create", "service", "externalname", "ext", "--external-name=example.com"],
        f"{NS}/services",
        service("ext", {"type": "ExternalName", "externalName": "example.com"}),
        id="create-service-externalname",
    ),
    pytest.param(
        ["create", "service", "clusterip", "headless", "--clusterip=None"],
        f"{NS}/services",
        service("headless", {"clusterIP": "None", "type": "ClusterIP"}),
        id="create-service-headless",
    ),
    pytest.param(
        ["create", "serviceaccount", "sa"],
        f"{NS}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
        id="create-serviceaccount",
    ),
    pytest.param(
        ["create", "role", "r", "--verb=get,list", "--resource=pods,deployments.apps", "--resource-name=a"],
        f"/apis/{RBAC}/namespaces/default/roles",
        {
            "apiVersion": RBAC,
            "kind": "Role",
            "metadata": {"name": "r"},
            "rules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
                {
                    "verbs": ["get", "list"],
                    "apiGroups": ["apps"],
                    "resources": ["deployments"],
                    "resourceNames": ["a"],
                },
            ],
        },
        id="create-role",
    ),
    pytest.param(
        ["create", "clusterrole", "cr", "--verb=get", "--resource=nodes", "--non-resource-url=/healthz"],
        f"/apis/{RBAC}/clusterroles",
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": "cr"},
            "rules": [
                {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]},
                {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
            ],
        },
        id="create-clusterrole",
    ),
    pytest.param(
        ["create", "clusterrole", "agg", "--aggregation-rule=rbac.example.com/agg=true"],
        f"/apis/{RBAC}/clusterroles",
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": "agg"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/agg": "true"}}]},
        },
        id="create-clusterrole-aggregation",
    ),
    pytest.param(
        ["create", "rolebinding", "rb", "--role=r", "--user=u", "--group=g", "--serviceaccount=ns:sa"],
        f"/apis/{RBAC}/namespaces/default/rolebindings",
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding",
            "metadata": {"name": "rb"},
            "subjects": [
                user("u"),
                {"kind": "Group", "apiGroup": RBAC_GROUP, "name": "g"},
                {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
            ],
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "r"},
        },
        id="create-rolebinding",
    ),
    pytest.param(
        ["create", "clusterrolebinding", "crb", "--clusterrole=cr", "--user=u"],
        f"/apis/{RBAC}/clusterrolebindings",
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "crb"},
            "subjects": [user("u")],
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cr"},
        },
        id="create-clusterrolebinding",
    ),
    pytest.param(
        ["create", "quota", "q", "--hard=pods=10,cpu=2,requests.memory=1Gi", "--scopes=BestEffort"],
        f"{NS}/resourcequotas",
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "q"},
            "spec": {"hard": {"cpu": "2", "pods": "10", "requests.memory": "1Gi"}, "scopes": ["BestEffort"]},
            "status": {},
        },
        id="create-quota",
    ),
    pytest.param(
        ["create", "priorityclass", "pc", "--value=1000", "--description=d", "--global-default"],
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": "pc"},
            "value": 1000,
            "globalDefault": True,
            "description": "d",
            "preemptionPolicy": "PreemptLowerPriority",
        },
        id="create-priorityclass",
    ),
    pytest.param(
        ["create", "priorityclass", "zero", "--value=0", "--preemption-policy=Never"],
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": "zero"},
            "value": 0,
            "preemptionPolicy": "Never",
        },
        id="create-priorityclass-value-zero",
    ),
    pytest.param(
        ["create", "poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=1"],
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "pdb"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            "status": {},
        },
        id="create-pdb-min-available",
    ),
    pytest.param(
        ["create", "poddisruptionbudget", "pdb2", "--selector=app=web", "--max-unavailable=50%"],
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "pdb2"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "maxUnavailable": "50%"},
            "status": {},
        },
        id="create-pdb-max-unavailable-percent",
    ),
    pytest.param(
        [
            "create",
            "ingress",
            "ing",
            "--rule=foo.com/bar=svc:8080,tls=sec",
            "--rule=/*=other:http",
            "--class=nginx",
            "--default-backend=def:80",
        ],
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "ing"},
            "spec": {
                "defaultBackend": {"service": {"name": "def", "port": {"number": 80}}},
                "tls": [{"hosts": ["foo.com"], "secretName": "sec"}],
                "rules": [
                    {
                        "host": "foo.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/bar",
                                    "backend": {"service": {"name": "svc", "port": {"number": 8080}}},
                                    "pathType": "Exact",
                                }
                            ]
                        },
                    },
                    {
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "backend": {"service": {"name": "other", "port": {"name": "http"}}},
                                    "pathType": "Prefix",
                                }
                            ]
                        }
                    },
                ],
                "ingressClassName": "nginx",
            },
            "status": {},
        },
        id="create-ingress",
    ),
    pytest.param(
        ["create", "token", "sa", "--duration=1h", "--audience=a", "--audience=b"],
        f"{NS}/serviceaccounts/sa/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {},
            "spec": {"audiences": ["a", "b"], "expirationSeconds": 3600},
            "status": {},
        },
        id="create-token",
    ),
    pytest.param(
        [
            "create",
            "token",
            "sa",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
            "--bound-object-uid=u-1",
        ],
        f"{NS}/serviceaccounts/sa/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {},
            "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u-1"}},
            "status": {},
        },
        id="create-token-bound-object",
    ),
    pytest.param(
        ["drain", "n1", "--force", "--ignore-daemonsets", "--disable-eviction"],
        f"{NS}/pods/p",
        {"apiVersion": "v1", "kind": "DeleteOptions"},
        id="drain-disable-eviction-delete",
    ),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("args", "path", "expected"), CASES)
def test_protobuf_body_decodes(
    stub: StubServer, tmp_path: Path, version: str, args: list[str], path: str, expected: dict[str, Any]
) -> None:
    before = len(stub.requests)
    result = run_kubectl(stub, version, tmp_path, args)
    assert result.returncode == 0, result.stderr
    [body] = [r for r in stub.writes_since(before) if r.is_protobuf]
    assert body.path == path
    assert decode_k8s_protobuf(body.body) == expected


HPA_SPEC_V1 = {
    "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
    "minReplicas": 1,
    "maxReplicas": 3,
    "targetCPUUtilizationPercentage": 50,
}
HPA_SPEC_V2 = {
    "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
    "minReplicas": 1,
    "maxReplicas": 3,
    "metrics": [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
        }
    ],
}


@pytest.mark.parametrize(
    ("version", "api_version", "spec"),
    [
        pytest.param(
            *VERSIONS[0].values, "autoscaling/v1", HPA_SPEC_V1, marks=VERSIONS[0].marks, id="1.32-v1"
        ),
        pytest.param(
            *VERSIONS[1].values, "autoscaling/v2", HPA_SPEC_V2, marks=VERSIONS[1].marks, id="1.33-v2"
        ),
    ],
)
def test_autoscale_posts_hpa(
    stub: StubServer, tmp_path: Path, version: str, api_version: str, spec: dict[str, Any]
) -> None:
    before = len(stub.requests)
    result = run_kubectl(
        stub, version, tmp_path, ["autoscale", "deployment", "web", "--min=1", "--max=3", "--cpu-percent=50"]
    )
    assert result.returncode == 0, result.stderr
    [body] = stub.writes_since(before)
    assert body.is_protobuf
    assert body.path == f"/apis/{api_version}/namespaces/default/horizontalpodautoscalers"
    assert decode_k8s_protobuf(body.body) == {
        "apiVersion": api_version,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": spec,
        "status": {},
    }


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("args", "method", "path", "content_type"),
    [
        pytest.param(
            ["run", "x", "--image=nginx", "--port=80"], "POST", f"{NS}/pods", "application/json", id="run"
        ),
        pytest.param(
            ["expose", "deployment", "web", "--port=80"],
            "POST",
            f"{NS}/services",
            "application/json",
            id="expose",
        ),
        pytest.param(
            ["scale", "deployment", "web", "--replicas=3"],
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            "application/merge-patch+json",
            id="scale",
        ),
        pytest.param(
            ["delete", "pod", "p", "--wait=false"], "DELETE", f"{NS}/pods/p", "application/json", id="delete"
        ),
        pytest.param(
            ["drain", "n1", "--force", "--ignore-daemonsets"],
            "POST",
            f"{NS}/pods/p/eviction",
            "application/json",
            id="drain-eviction",
        ),
    ],
)
def test_commands_that_still_send_json(
    stub: StubServer, tmp_path: Path, version: str, args: list[str], method: str, path: str, content_type: str
) -> None:
    before = len(stub.requests)
    result = run_kubectl(stub, version, tmp_path, args)
    assert result.returncode == 0, result.stderr
    writes = [r for r in stub.writes_since(before) if r.path == path]
    assert [(r.method, r.content_type) for r in writes] == [(method, content_type)]
