"""Strategic merge patch: merge keys of pods and workloads, every directive, kubectl's own patches."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cluster.apiserver.patch import PatchError, strategic_merge_patch, supports_strategic_merge

POD = ("v1", "Pod")
DEPLOYMENT = ("apps/v1", "Deployment")


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": spec}


def deployment(**pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}},
    }


def c(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


CASES = [
    pytest.param(
        POD,
        pod(containers=[c("a", image="a:1"), c("b", image="b:1")]),
        {"spec": {"containers": [c("b", image="b:2")]}},
        pod(containers=[c("a", image="a:1"), c("b", image="b:2")]),
        id="containers-merge-by-name",
    ),
    pytest.param(
        POD,
        pod(containers=[c("a", image="a:1")]),
        {"spec": {"containers": [c("b", image="b:1")]}},
        pod(containers=[c("a", image="a:1"), c("b", image="b:1")]),
        id="container-added-after-server-items",
    ),
    pytest.param(
        POD,
        pod(containers=[c("a"), c("b")]),
        {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}},
        pod(containers=[c("b")]),
        id="list-element-patch-delete",
    ),
    pytest.param(
        POD,
        pod(containers=[c("a"), c("b")]),
        {"spec": {"containers": [c("z", image="z"), {"$patch": "replace"}]}},
        pod(containers=[c("z", image="z")]),
        id="list-patch-replace",
    ),
    pytest.param(
        POD,
        pod(nodeSelector={"a": "1", "b": "2"}),
        {"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}},
        pod(nodeSelector={"c": "3"}),
        id="map-patch-replace",
    ),
    pytest.param(
        POD,
        pod(nodeSelector={"a": "1"}, hostname="h"),
        {"spec": {"nodeSelector": {"$patch": "delete"}}},
        pod(nodeSelector={}, hostname="h"),
        id="map-patch-delete-empties-it",
    ),
    pytest.param(
        POD,
        pod(containers=[c("a", env=[{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}])]),
        {"spec": {"containers": [c("a", env=[{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}])]}},
        pod(
            containers=[
                c(
                    "a",
                    env=[
                        {"name": "X", "value": "1"},
                        {"name": "Y", "value": "3"},
                        {"name": "Z", "value": "4"},
                    ],
                )
            ]
        ),
        id="env-merge-by-name",
    ),
    pytest.param(
        POD,
        pod(containers=[c("a", ports=[{"containerPort": 80, "name": "http"}, {"containerPort": 443}])]),
        {"spec": {"containers": [c("a", ports=[{"containerPort": 80, "name": "web"}])]}},
        pod(containers=[c("a", ports=[{"containerPort": 80, "name": "web"}, {"containerPort": 443}])]),
        id="ports-merge-by-containerPort",
    ),
    pytest.param(
        POD,
        pod(containers=[c("a", volumeMounts=[{"mountPath": "/x", "name": "v1"}])]),
        {"spec": {"containers": [c("a", volumeMounts=[{"mountPath": "/x", "readOnly": True}])]}},
        pod(containers=[c("a", volumeMounts=[{"mountPath": "/x", "name": "v1", "readOnly": True}])]),
        id="volumeMounts-merge-by-mountPath",
    ),
    pytest.param(
        POD,
        pod(volumes=[{"name": "v", "emptyDir": {}}], imagePullSecrets=[{"name": "s1"}]),
        {"spec": {"volumes": [{"name": "w", "emptyDir": {}}], "imagePullSecrets": [{"name": "s2"}]}},
        pod(
            volumes=[{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}],
            imagePullSecrets=[{"name": "s1"}, {"name": "s2"}],
        ),
        id="volumes-and-imagePullSecrets-merge-by-name",
    ),
    pytest.param(
        POD,
        pod(hostAliases=[{"ip": "1.1.1.1", "hostnames": ["a"]}]),
        {"spec": {"hostAliases": [{"ip": "1.1.1.1", "hostnames": ["b"]}]}},
        pod(hostAliases=[{"ip": "1.1.1.1", "hostnames": ["b"]}]),
        id="hostAliases-merge-by-ip-hostnames-replaced",
    ),
    pytest.param(
        POD,
        pod(tolerations=[{"key": "a", "operator": "Exists"}]),
        {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}},
        pod(tolerations=[{"key": "b", "operator": "Exists"}]),
        id="tolerations-replaced-whole",
    ),
    pytest.param(
        POD,
        pod(containers=[c("a", args=["x", "y"], envFrom=[{"configMapRef": {"name": "m"}}])]),
        {"spec": {"containers": [c("a", args=["z"], envFrom=[{"secretRef": {"name": "s"}}])]}},
        pod(containers=[c("a", args=["z"], envFrom=[{"secretRef": {"name": "s"}}])]),
        id="args-and-envFrom-replaced-whole",
    ),
    pytest.param(
        POD,
        {"metadata": {"name": "p", "finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["c", "a"]}},
        {"metadata": {"name": "p", "finalizers": ["b", "c", "a"]}},
        id="finalizers-merge-as-set",
    ),
    pytest.param(
        POD,
        {"metadata": {"name": "p", "finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {"name": "p", "finalizers": ["a", "c"]}},
        id="deleteFromPrimitiveList",
    ),
    pytest.param(
        POD,
        {"metadata": {"name": "p"}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {"name": "p"}},
        id="deleteFromPrimitiveList-absent-field",
    ),
    pytest.param(
        POD,
        {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}},
        {"metadata": {"ownerReferences": [{"uid": "2", "controller": True}]}},
        {
            "metadata": {
                "ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b", "controller": True}]
            }
        },
        id="ownerReferences-merge-by-uid",
    ),
    pytest.param(
        POD,
        {
            "status": {
                "conditions": [{"type": "Ready", "status": "False"}, {"type": "Scheduled", "status": "True"}]
            }
        },
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}]
            }
        },
        id="status-conditions-merge-by-type",
    ),
    pytest.param(
        ("v1", "Node"),
        {"spec": {"podCIDR": "10.0.0.0/24"}},
        {"spec": {"unschedulable": True}},
        {"spec": {"podCIDR": "10.0.0.0/24", "unschedulable": True}},
        id="kubectl-cordon",
    ),
    pytest.param(
        ("v1", "Node"),
        {"spec": {"podCIDR": "10.0.0.0/24", "unschedulable": True}},
        {"spec": {"unschedulable": None}},
        {"spec": {"podCIDR": "10.0.0.0/24"}},
        id="kubectl-uncordon-null-deletes",
    ),
    pytest.param(
        ("v1", "Node"),
        {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}},
        {"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}},
        {"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}},
        id="node-taints-replaced-whole",
    ),
    pytest.param(
        ("v1", "Service"),
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}], "selector": {"app": "a"}}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}], "selector": {"tier": "b"}}},
        {
            "spec": {
                "ports": [{"port": 80, "targetPort": 9090}, {"port": 443}],
                "selector": {"app": "a", "tier": "b"},
            }
        },
        id="service-ports-merge-by-port",
    ),
    pytest.param(
        DEPLOYMENT,
        deployment(containers=[c("nginx", image="nginx:1.25")]),
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "T"}}}}},
        {
            **deployment(containers=[c("nginx", image="nginx:1.25")]),
            "spec": {
                "replicas": 1,
                "template": {
                    "metadata": {
                        "labels": {"app": "web"},
                        "annotations": {"kubectl.kubernetes.io/restartedAt": "T"},
                    },
                    "spec": {"containers": [c("nginx", image="nginx:1.25")]},
                },
            },
        },
        id="kubectl-rollout-restart",
    ),
    pytest.param(
        DEPLOYMENT,
        deployment(containers=[c("nginx", image="nginx:1.25", imagePullPolicy="IfNotPresent")]),
        {
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "nginx"}],
                        "containers": [{"image": "nginx:1.26", "name": "nginx"}],
                    }
                }
            },
        },
        {
            **deployment(containers=[c("nginx", image="nginx:1.26", imagePullPolicy="IfNotPresent")]),
            "metadata": {
                "name": "web",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            },
        },
        id="kubectl-client-side-apply-image-change",
    ),
    pytest.param(
        DEPLOYMENT,
        deployment(containers=[c("a"), c("b"), c("sidecar")]),
        {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "a"}],
                        "containers": [{"$patch": "delete", "name": "b"}],
                    }
                }
            }
        },
        deployment(containers=[c("a"), c("sidecar")]),
        id="kubectl-client-side-apply-container-removed",
    ),
    pytest.param(
        DEPLOYMENT,
        deployment(containers=[c("a"), c("b")]),
        {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                        "containers": [c("c")],
                    }
                }
            }
        },
        deployment(containers=[c("c"), c("b"), c("a")]),
        id="setElementOrder-reorders",
    ),
    pytest.param(
        DEPLOYMENT,
        deployment(containers=[c("a"), c("server-only"), c("b")]),
        {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}},
        deployment(containers=[c("server-only"), c("b"), c("a")]),
        id="setElementOrder-without-list-keeps-server-items",
    ),
    pytest.param(
        POD,
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}},
        {"metadata": {"finalizers": ["c", "b", "a"]}},
        id="setElementOrder-primitives",
    ),
    pytest.param(
        DEPLOYMENT,
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}},
        {"spec": {"strategy": {"type": "Recreate"}}},
        id="retainKeys-deployment-strategy",
    ),
    pytest.param(
        POD,
        pod(volumes=[{"name": "v", "emptyDir": {}}]),
        {
            "spec": {
                "volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/d"}}]
            }
        },
        pod(volumes=[{"name": "v", "hostPath": {"path": "/d"}}]),
        id="retainKeys-volume-source-switch",
    ),
    pytest.param(
        ("batch/v1", "CronJob"),
        {
            "spec": {
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [c("a", image="1"), c("b")]}}}}
            }
        },
        {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [c("a", image="2")]}}}}}},
        {
            "spec": {
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [c("a", image="2"), c("b")]}}}}
            }
        },
        id="cronjob-containers-merge-by-name",
    ),
    pytest.param(
        ("apps/v1", "StatefulSet"),
        {"spec": {"template": {"spec": {"initContainers": [c("init", image="1")]}}}},
        {"spec": {"template": {"spec": {"initContainers": [c("init", image="2")]}}}},
        {"spec": {"template": {"spec": {"initContainers": [c("init", image="2")]}}}},
        id="statefulset-initContainers-merge",
    ),
    pytest.param(
        ("example.com/v1", "Widget"),
        {"spec": {"items": [{"name": "a"}]}},
        {"spec": {"items": [{"name": "b"}]}},
        {"spec": {"items": [{"name": "b"}]}},
        id="unknown-kind-lists-replaced",
    ),
    pytest.param(
        POD,
        pod(),
        {
            "spec": {
                "containers": [c("a", env=[{"name": "X", "$patch": "delete"}, {"name": "Y", "value": None}])]
            }
        },
        pod(containers=[c("a", env=[{"name": "Y"}])]),
        id="new-values-carry-no-directives-or-nulls",
    ),
    pytest.param(
        POD,
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": None, "c": "3"}}},
        {"metadata": {"labels": {"b": "2", "c": "3"}}},
        id="labels-merge-null-deletes",
    ),
]


@pytest.mark.parametrize(("kind_key", "doc", "patch", "expected"), CASES)
def test_strategic_merge(kind_key: tuple[str, str], doc: dict[str, Any], patch: Any, expected: Any) -> None:
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    result = strategic_merge_patch(doc, patch, kind_key)
    assert result == expected
    assert list(_order(result)) == list(_order(expected))
    assert doc == before_doc and patch == before_patch


def _order(value: Any) -> Any:
    """Names of list items in document order, to check list ordering beyond dict equality."""
    if isinstance(value, dict):
        for child in value.values():
            yield from _order(child)
    elif isinstance(value, list):
        for item in value:
            yield item.get("name") if isinstance(item, dict) else item
            yield from _order(item)


ERRORS = [
    pytest.param(
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}},
        422,
        "doesn't match retainKeys",
        id="retainKeys-mismatch",
    ),
    pytest.param(
        {"spec": {"strategy": {"$retainKeys": "type"}}}, 400, "retainKeys", id="retainKeys-not-a-list"
    ),
    pytest.param(
        {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
        500,
        "does not contain declared merge key: name",
        id="missing-merge-key",
    ),
    pytest.param(
        {"spec": {"template": {"spec": {"$setElementOrder/containers": {"name": "a"}}}}},
        400,
        "setElementOrder",
        id="setElementOrder-not-a-list",
    ),
    pytest.param(
        {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
        400,
        "primitive list",
        id="deleteFromPrimitiveList-not-a-list",
    ),
    pytest.param({"metadata": {"finalizers": [["a"]]}}, 422, "lists of lists", id="list-of-lists"),
    pytest.param({"spec": {"$patch": "frob"}}, 500, "unknown patch type", id="unknown-map-directive"),
    pytest.param(
        {"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}},
        500,
        "merging lists",
        id="list-merge-directive",
    ),
    pytest.param([{"op": "add"}], 400, "cannot unmarshal", id="not-an-object"),
]


@pytest.mark.parametrize(("patch", "code", "fragment"), ERRORS)
def test_errors(patch: Any, code: int, fragment: str) -> None:
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(deployment(containers=[c("a")]), patch, DEPLOYMENT)
    assert err.value.code == code
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("kind_key", "supported"),
    [
        pytest.param(POD, True, id="core"),
        pytest.param(DEPLOYMENT, True, id="apps"),
        pytest.param(("networking.k8s.io/v1", "Ingress"), True, id="networking"),
        pytest.param(("example.com/v1", "Widget"), False, id="custom-resource"),
    ],
)
def test_supports_strategic_merge(kind_key: tuple[str, str], supported: bool) -> None:
    assert supports_strategic_merge(kind_key) is supported
