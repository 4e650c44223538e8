"""Defaulting: golden outputs for minimal objects of the kinds kubectl round-trips, idempotence,
and the admission-time additions kept apart in admission_defaults_pod."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cluster.apiserver.defaults import admission_defaults_pod, apply_defaults
from cluster.apiserver.defaults.pod import default_pull_policy

CONTAINER_DEFAULTS = {
    "imagePullPolicy": "IfNotPresent",
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}
TEMPLATE_SPEC_DEFAULTS = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
    "schedulerName": "default-scheduler",
}


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "web", "image": "nginx:1.27", **extra}


def template(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container()], **spec}}


def defaulted_template(**spec: Any) -> dict[str, Any]:
    body = {"containers": [{**container(), **CONTAINER_DEFAULTS}], **TEMPLATE_SPEC_DEFAULTS, **spec}
    return {"metadata": {"labels": {"app": "web"}}, "spec": body}


def obj(api_version: str, kind: str, **body: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "web", "namespace": "default"},
        **body,
    }


SELECTOR = {"matchLabels": {"app": "web"}}

GOLDEN = [
    pytest.param(
        obj("v1", "Pod", spec={"containers": [container(ports=[{"containerPort": 80}])]}),
        obj(
            "v1",
            "Pod",
            spec={
                "containers": [
                    {**container(ports=[{"containerPort": 80, "protocol": "TCP"}]), **CONTAINER_DEFAULTS}
                ],
                "enableServiceLinks": True,
                **TEMPLATE_SPEC_DEFAULTS,
            },
        ),
        id="pod",
    ),
    pytest.param(
        obj("apps/v1", "Deployment", spec={"selector": SELECTOR, "template": template()}),
        obj(
            "apps/v1",
            "Deployment",
            spec={
                "selector": SELECTOR,
                "template": defaulted_template(),
                "replicas": 1,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
        ),
        id="deployment",
    ),
    pytest.param(
        obj(
            "apps/v1",
            "StatefulSet",
            spec={"selector": SELECTOR, "serviceName": "web", "template": template()},
        ),
        obj(
            "apps/v1",
            "StatefulSet",
            spec={
                "selector": SELECTOR,
                "serviceName": "web",
                "template": defaulted_template(),
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "replicas": 1,
                "revisionHistoryLimit": 10,
            },
        ),
        id="statefulset",
    ),
    pytest.param(
        obj("apps/v1", "DaemonSet", spec={"selector": SELECTOR, "template": template()}),
        obj(
            "apps/v1",
            "DaemonSet",
            spec={
                "selector": SELECTOR,
                "template": defaulted_template(),
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
                },
                "revisionHistoryLimit": 10,
            },
        ),
        id="daemonset",
    ),
    pytest.param(
        obj("v1", "Service", spec={"selector": {"app": "web"}, "ports": [{"port": 80}]}),
        obj(
            "v1",
            "Service",
            spec={
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "sessionAffinity": "None",
                "type": "ClusterIP",
                "internalTrafficPolicy": "Cluster",
                "ipFamilyPolicy": "SingleStack",
                "ipFamilies": ["IPv4"],
            },
            status={"loadBalancer": {}},
        ),
        id="service",
    ),
    pytest.param(
        obj("batch/v1", "Job", spec={"template": template(restartPolicy="Never")}),
        obj(
            "batch/v1",
            "Job",
            spec={
                "template": defaulted_template(restartPolicy="Never"),
                "completions": 1,
                "parallelism": 1,
                "backoffLimit": 6,
                "completionMode": "NonIndexed",
                "suspend": False,
                "podReplacementPolicy": "TerminatingOrFailed",
            },
        )
        | {"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}},
        id="job",
    ),
    pytest.param(
        obj(
            "batch/v1",
            "CronJob",
            spec={"schedule": "@hourly", "jobTemplate": {"spec": {"template": template()}}},
        ),
        obj(
            "batch/v1",
            "CronJob",
            spec={
                "schedule": "@hourly",
                "jobTemplate": {"spec": {"template": defaulted_template()}},
                "concurrencyPolicy": "Allow",
                "suspend": False,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1,
            },
        ),
        id="cronjob",
    ),
    pytest.param(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}},
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        },
        id="namespace",
    ),
    pytest.param(
        obj("v1", "Secret", stringData={"pw": "hunter2"}),
        obj("v1", "Secret", type="Opaque", data={"pw": "aHVudGVyMg=="}),
        id="secret-string-data",
    ),
    pytest.param(
        obj("v1", "PersistentVolumeClaim", spec={"accessModes": ["ReadWriteOnce"]}),
        obj(
            "v1",
            "PersistentVolumeClaim",
            spec={"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"},
            status={"phase": "Pending"},
        ),
        id="pvc",
    ),
    pytest.param(
        obj(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            spec={"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]},
        ),
        obj(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            spec={
                "podSelector": {},
                "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}],
                "policyTypes": ["Ingress", "Egress"],
            },
        ),
        id="networkpolicy",
    ),
    pytest.param(
        obj(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            subjects=[
                {"kind": "User", "name": "jane"},
                {"kind": "ServiceAccount", "name": "sa", "namespace": "x"},
            ],
        ),
        obj(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            subjects=[
                {"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"},
                {"kind": "ServiceAccount", "name": "sa", "namespace": "x"},
            ],
        ),
        id="rolebinding-subjects",
    ),
    pytest.param(
        obj("v1", "ConfigMap", data={"a": "b"}), obj("v1", "ConfigMap", data={"a": "b"}), id="configmap-none"
    ),
    pytest.param(
        obj("example.com/v1", "Widget", spec={}), obj("example.com/v1", "Widget", spec={}), id="unknown-kind"
    ),
]


@pytest.mark.parametrize(("given", "expected"), GOLDEN)
def test_golden(given: dict[str, Any], expected: dict[str, Any]) -> None:
    original = copy.deepcopy(given)
    assert apply_defaults(given) == expected
    assert given == original, "apply_defaults must not mutate its input"


@pytest.mark.parametrize(("given", "expected"), GOLDEN)
def test_idempotent(given: dict[str, Any], expected: dict[str, Any]) -> None:
    assert apply_defaults(apply_defaults(given)) == expected


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        pytest.param("nginx", "Always", id="untagged"),
        pytest.param("nginx:latest", "Always", id="latest"),
        pytest.param("nginx:1.27", "IfNotPresent", id="tagged"),
        pytest.param("registry:5000/team/app", "Always", id="registry-port-not-a-tag"),
        pytest.param("registry:5000/team/app:v2", "IfNotPresent", id="registry-port-and-tag"),
        pytest.param("nginx@sha256:" + "a" * 64, "IfNotPresent", id="digest-only"),
    ],
)
def test_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def test_explicit_values_are_kept() -> None:
    given = obj(
        "apps/v1",
        "Deployment",
        spec={"replicas": 0, "strategy": {"type": "Recreate"}, "template": template()},
    )
    out = apply_defaults(given)["spec"]
    assert out["replicas"] == 0
    assert out["strategy"] == {"type": "Recreate"}


def test_probe_and_limits_defaults() -> None:
    probe = {"httpGet": {"port": 80}}
    limits = {"limits": {"cpu": "1"}}
    given = obj("v1", "Pod", spec={"containers": [container(livenessProbe=probe, resources=limits)]})
    ctr = apply_defaults(given)["spec"]["containers"][0]
    assert ctr["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert ctr["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}


def test_templates_do_not_get_pod_only_defaults() -> None:
    out = apply_defaults(obj("apps/v1", "Deployment", spec={"template": template()}))
    assert "enableServiceLinks" not in out["spec"]["template"]["spec"]


def test_admission_defaults_pod() -> None:
    pod = apply_defaults(obj("v1", "Pod", spec={"containers": [container()]}))
    spec = admission_defaults_pod(pod)["spec"]
    assert spec["serviceAccountName"] == "default"
    assert spec["serviceAccount"] == "default"
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert "tolerations" not in spec  # DefaultTolerationSeconds is its own plugin
    assert "serviceAccountName" not in pod["spec"], "admission_defaults_pod must not mutate its input"


def test_admission_keeps_existing_tolerations_and_account() -> None:
    tolerate_all = {"operator": "Exists"}
    pod = obj(
        "v1",
        "Pod",
        spec={"containers": [container()], "serviceAccountName": "builder", "tolerations": [tolerate_all]},
    )
    spec = admission_defaults_pod(pod)["spec"]
    assert spec["serviceAccountName"] == "builder"
    assert spec["tolerations"] == [tolerate_all]
