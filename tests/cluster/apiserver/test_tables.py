"""Server-side Tables: columns and cells as ``kubectl get`` shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.apiserver.resources import RESOURCES, lookup
from cluster.apiserver.tables import (
    human_duration,
    requested_table_version,
    table_content_type_requested,
    to_table,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CREATED = "2024-05-01T11:55:00Z"  # 5m before NOW


def _pod(
    status: dict[str, Any], *, spec: dict[str, Any] | None = None, deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "default", "creationTimestamp": CREATED}
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T11:59:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec or {"containers": [{"name": "nginx", "image": "nginx"}]},
        "status": status,
    }


def _running(ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": "nginx", "ready": ready, "restartCount": restarts, "state": {"running": {}}, **extra}


def _cells(plural: str, obj: dict[str, Any], group: str = "") -> list[Any]:
    info = lookup(group, "v1", plural)
    assert info is not None
    return to_table(info, [obj], now=NOW)["rows"][0]["cells"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(-5, "<invalid>", id="future"),
        pytest.param(-1, "0s", id="clock-skew"),
        pytest.param(45, "45s", id="seconds"),
        pytest.param(119, "119s", id="under-two-minutes"),
        pytest.param(300, "5m", id="five-minutes"),
        pytest.param(310, "5m10s", id="minutes-seconds"),
        pytest.param(3 * 3600 + 120, "3h2m", id="hours-minutes"),
        pytest.param(10 * 3600, "10h", id="hours"),
        pytest.param(2 * 86400, "2d", id="two-days"),
        pytest.param(3 * 86400 + 5 * 3600, "3d5h", id="days-hours"),
        pytest.param(30 * 86400, "30d", id="month"),
        pytest.param(3 * 365 * 86400 + 10 * 86400, "3y10d", id="years-days"),
        pytest.param(9 * 365 * 86400, "9y", id="years"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("pod", "ready", "status", "restarts"),
    [
        pytest.param(_pod({"phase": "Pending"}), "0/1", "Pending", "0", id="pending-unscheduled"),
        pytest.param(
            _pod(
                {
                    "phase": "Pending",
                    "containerStatuses": [
                        {
                            "name": "nginx",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"waiting": {"reason": "ContainerCreating"}},
                        }
                    ],
                }
            ),
            "0/1",
            "ContainerCreating",
            "0",
            id="container-creating",
        ),
        pytest.param(
            _pod(
                {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [_running()],
                }
            ),
            "1/1",
            "Running",
            "0",
            id="running",
        ),
        pytest.param(
            _pod(
                {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "nginx",
                            "ready": False,
                            "restartCount": 4,
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "lastState": {
                                "terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:58:00Z"}
                            },
                        }
                    ],
                }
            ),
            "0/1",
            "CrashLoopBackOff",
            "4 (2m ago)",
            id="crashloop-with-restart-age",
        ),
        pytest.param(
            _pod(
                {
                    "phase": "Succeeded",
                    "containerStatuses": [
                        {
                            "name": "nginx",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                        }
                    ],
                }
            ),
            "0/1",
            "Completed",
            "0",
            id="completed",
        ),
        pytest.param(
            _pod(
                {
                    "phase": "Failed",
                    "containerStatuses": [
                        {
                            "name": "nginx",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": {"exitCode": 137}},
                        }
                    ],
                }
            ),
            "0/1",
            "ExitCode:137",
            "0",
            id="terminated-without-reason",
        ),
        pytest.param(
            _pod({"phase": "Running", "containerStatuses": [_running()]}, deleting=True),
            "1/1",
            "Terminating",
            "0",
            id="terminating",
        ),
        pytest.param(
            _pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {
                            "name": "init",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"waiting": {"reason": "PodInitializing"}},
                        }
                    ],
                },
                spec={
                    "initContainers": [{"name": "init"}, {"name": "init2"}],
                    "containers": [{"name": "nginx"}],
                },
            ),
            "0/1",
            "Init:0/2",
            "0",
            id="init-0-of-2",
        ),
        pytest.param(
            _pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {
                            "name": "init",
                            "ready": False,
                            "restartCount": 3,
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        }
                    ],
                },
                spec={"initContainers": [{"name": "init"}], "containers": [{"name": "nginx"}]},
            ),
            "0/1",
            "Init:CrashLoopBackOff",
            "3",
            id="init-crashloop",
        ),
        pytest.param(
            _pod(
                {
                    "phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [
                        {
                            "name": "proxy",
                            "ready": True,
                            "started": True,
                            "restartCount": 0,
                            "state": {"running": {}},
                        }
                    ],
                    "containerStatuses": [_running()],
                },
                spec={
                    "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                    "containers": [{"name": "nginx"}],
                },
            ),
            "2/2",
            "Running",
            "0",
            id="sidecar-counts",
        ),
        pytest.param(
            _pod(
                {
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
                }
            ),
            "0/1",
            "SchedulingGated",
            "0",
            id="scheduling-gated",
        ),
        pytest.param(
            _pod({"phase": "Failed", "reason": "Evicted"}),
            "0/1",
            "Evicted",
            "0",
            id="status-reason",
        ),
    ],
)
def test_pod_cells(pod: dict[str, Any], ready: str, status: str, restarts: str) -> None:
    cells = _cells("pods", pod)
    assert cells[:5] == ["web", ready, status, restarts, "5m"]


def test_pod_wide_cells_and_conditions() -> None:
    pod = _pod(
        {
            "phase": "Succeeded",
            "podIPs": [{"ip": "10.1.0.5"}],
            "conditions": [{"type": "www.example.com/gate", "status": "True"}],
        },
        spec={
            "nodeName": "node-a",
            "containers": [{"name": "c"}],
            "readinessGates": [{"conditionType": "www.example.com/gate"}, {"conditionType": "other"}],
        },
    )
    info = lookup("", "v1", "pods")
    assert info is not None
    table = to_table(info, [pod], now=NOW)
    row = table["rows"][0]
    assert row["cells"][5:] == ["10.1.0.5", "node-a", "<none>", "1/2"]
    assert row["conditions"][0]["type"] == "Completed"
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    assert table["columnDefinitions"][0]["format"] == "name"
    assert all(c["description"] for c in table["columnDefinitions"])


def _service(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web", "creationTimestamp": CREATED}, "spec": spec, "status": status or {}}


@pytest.mark.parametrize(
    ("svc", "expected"),
    [
        pytest.param(
            _service(
                {
                    "type": "NodePort",
                    "clusterIP": "10.96.0.10",
                    "clusterIPs": ["10.96.0.10"],
                    "ports": [
                        {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                        {"port": 53, "protocol": "UDP"},
                    ],
                    "selector": {"app": "web"},
                }
            ),
            ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "5m", "app=web"],
            id="nodeport",
        ),
        pytest.param(
            _service({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
            ["web", "ClusterIP", "None", "<none>", "<none>", "5m", "<none>"],
            id="headless",
        ),
        pytest.param(
            _service({"type": "LoadBalancer", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 443}]}),
            ["web", "LoadBalancer", "10.0.0.1", "<pending>", "443/TCP", "5m", "<none>"],
            id="lb-pending",
        ),
        pytest.param(
            _service(
                {"type": "LoadBalancer", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 443}]},
                {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}},
            ),
            ["web", "LoadBalancer", "10.0.0.1", "1.2.3.4", "443/TCP", "5m", "<none>"],
            id="lb-ready",
        ),
        pytest.param(
            _service({"type": "ExternalName", "externalName": "example.com"}),
            ["web", "ExternalName", "<none>", "example.com", "<none>", "5m", "<none>"],
            id="external-name",
        ),
    ],
)
def test_service_cells(svc: dict[str, Any], expected: list[Any]) -> None:
    assert _cells("services", svc) == expected


def test_deployment_cells() -> None:
    deploy = {
        "metadata": {"name": "web", "creationTimestamp": "2024-04-29T12:00:00Z"},
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}],
            },
            "template": {
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.25"},
                        {"name": "log", "image": "busybox"},
                    ]
                }
            },
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert _cells("deployments", deploy, "apps") == [
        "web",
        "2/3",
        3,
        2,
        "2d",
        "nginx,log",
        "nginx:1.25,busybox",
        "app=web,tier in (be,fe)",
    ]


@pytest.mark.parametrize(
    ("plural", "group", "obj", "expected"),
    [
        pytest.param(
            "nodes",
            "",
            {
                "metadata": {
                    "name": "n1",
                    "creationTimestamp": CREATED,
                    "labels": {"node-role.kubernetes.io/control-plane": ""},
                },
                "spec": {"unschedulable": True},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "nodeInfo": {"kubeletVersion": "v1.33.0"},
                    "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                },
            },
            [
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane",
                "5m",
                "v1.33.0",
                "192.168.1.2",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
            id="node",
        ),
        pytest.param(
            "namespaces",
            "",
            {"metadata": {"name": "dev", "creationTimestamp": CREATED}, "status": {"phase": "Active"}},
            ["dev", "Active", "5m"],
            id="namespace",
        ),
        pytest.param(
            "configmaps",
            "",
            {
                "metadata": {"name": "c", "creationTimestamp": CREATED},
                "data": {"a": "1", "b": "2"},
                "binaryData": {"c": "AA=="},
            },
            ["c", 3, "5m"],
            id="configmap",
        ),
        pytest.param(
            "secrets",
            "",
            {
                "metadata": {"name": "s", "creationTimestamp": CREATED},
                "type": "Opaque",
                "data": {"a": "MQ=="},
            },
            ["s", "Opaque", 1, "5m"],
            id="secret",
        ),
        pytest.param(
            "endpoints",
            "",
            {
                "metadata": {"name": "web", "creationTimestamp": CREATED},
                "subsets": [
                    {"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)], "ports": [{"port": 80}]}
                ],
            },
            ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...", "5m"],
            id="endpoints-more",
        ),
        pytest.param(
            "jobs",
            "batch",
            {
                "metadata": {"name": "pi", "creationTimestamp": CREATED},
                "spec": {
                    "completions": 1,
                    "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}},
                },
                "status": {
                    "succeeded": 1,
                    "startTime": "2024-05-01T11:55:00Z",
                    "completionTime": "2024-05-01T11:55:30Z",
                    "conditions": [{"type": "Complete", "status": "True"}],
                },
            },
            ["pi", "Complete", "1/1", "30s", "5m", "pi", "perl", ""],
            id="job-complete",
        ),
        pytest.param(
            "cronjobs",
            "batch",
            {
                "metadata": {"name": "cj", "creationTimestamp": CREATED},
                "spec": {
                    "schedule": "*/5 * * * *",
                    "suspend": False,
                    "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
                },
                "status": {"active": [{"name": "x"}], "lastScheduleTime": "2024-05-01T11:59:00Z"},
            },
            ["cj", "*/5 * * * *", "<none>", "False", 1, "60s", "5m", "", "", ""],
            id="cronjob",
        ),
        pytest.param(
            "rolebindings",
            "rbac.authorization.k8s.io",
            {
                "metadata": {"name": "rb", "creationTimestamp": CREATED},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [
                    {"kind": "User", "name": "alice"},
                    {"kind": "Group", "name": "devs"},
                    {"kind": "ServiceAccount", "name": "bot", "namespace": "ci"},
                ],
            },
            ["rb", "ClusterRole/view", "5m", "alice", "devs", "ci:bot"],
            id="rolebinding",
        ),
        pytest.param(
            "clusterroles",
            "rbac.authorization.k8s.io",
            {"metadata": {"name": "view", "creationTimestamp": CREATED}},
            ["view", "2024-05-01T11:55:00Z"],
            id="clusterrole-created-at",
        ),
        pytest.param(
            "storageclasses",
            "storage.k8s.io",
            {
                "metadata": {
                    "name": "std",
                    "creationTimestamp": CREATED,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "rancher.io/local-path",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
            ["std (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", False, "5m"],
            id="storageclass-default",
        ),
        pytest.param(
            "persistentvolumeclaims",
            "",
            {
                "metadata": {"name": "data", "creationTimestamp": CREATED},
                "spec": {"volumeName": "pv-1", "storageClassName": "std"},
                "status": {
                    "phase": "Bound",
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                },
            },
            ["data", "Bound", "pv-1", "1Gi", "RWO", "std", "<unset>", "5m", "<unset>"],
            id="pvc-bound",
        ),
        pytest.param(
            "poddisruptionbudgets",
            "policy",
            {
                "metadata": {"name": "p", "creationTimestamp": CREATED},
                "spec": {"minAvailable": 1},
                "status": {"disruptionsAllowed": 0},
            },
            ["p", "1", "N/A", 0, "5m"],
            id="pdb",
        ),
        pytest.param(
            "controllerrevisions",
            "apps",
            {
                "metadata": {
                    "name": "web-5d8",
                    "creationTimestamp": CREATED,
                    "ownerReferences": [
                        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}
                    ],
                },
                "revision": 2,
            },
            ["web-5d8", "statefulset.apps/web", 2, "5m"],
            id="controllerrevision",
        ),
        pytest.param(
            "selfsubjectaccessreviews",
            "authorization.k8s.io",
            {"metadata": {"name": "x"}},
            ["x", "<unknown>"],
            id="default-printer",
        ),
    ],
)
def test_other_cells(plural: str, group: str, obj: dict[str, Any], expected: list[Any]) -> None:
    assert _cells(plural, obj, group) == expected


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        pytest.param("Metadata", "PartialObjectMetadata", id="metadata"),
        pytest.param("Object", "ConfigMap", id="object"),
        pytest.param("None", None, id="none"),
    ],
)
def test_include_object(include: str, expected: str | None) -> None:
    info = lookup("", "v1", "configmaps")
    assert info is not None
    obj = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c", "labels": {"a": "b"}}}
    table = to_table(info, [obj], now=NOW, include_object=include, resource_version="42")
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    row = table["rows"][0]
    if expected is None:
        assert "object" not in row
    else:
        assert row["object"]["kind"] == expected
        assert row["object"]["metadata"]["labels"] == {"a": "b"}


def test_every_resource_renders_matching_cells() -> None:
    for info in RESOURCES:
        table = to_table(info, [{"metadata": {"name": "x", "creationTimestamp": CREATED}}, {}], now=NOW)
        for row in table["rows"]:
            assert len(row["cells"]) == len(table["columnDefinitions"]), info.plural


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        pytest.param(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            "v1",
            id="kubectl",
        ),
        pytest.param("application/json;as=Table;v=v1beta1;g=meta.k8s.io", "v1beta1", id="v1beta1-only"),
        pytest.param("application/json", None, id="plain"),
        pytest.param("application/json;as=Table;v=v2;g=meta.k8s.io", None, id="unknown-version"),
        pytest.param(
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", None, id="not-table"
        ),
    ],
)
def test_table_accept(accept: str, version: str | None) -> None:
    assert requested_table_version(accept) == version
    assert table_content_type_requested(accept) is (version is not None)
