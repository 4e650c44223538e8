"""Update rules: identity metadata, pod spec immutability, selectors, roleRef, immutable payloads."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.apiserver.validation.conftest import edit, meta, pod, update_details, workload

POD = pod()
DEPLOY = workload("Deployment")
STS = workload("StatefulSet", serviceName="web")
JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": meta("pi"),
    "spec": {
        "completions": 1,
        "selector": {"matchLabels": {"job": "pi"}},
        "template": {
            "metadata": {"labels": {"job": "pi"}},
            "spec": {"containers": [{"name": "c", "image": "perl"}], "restartPolicy": "Never"},
        },
    },
}
SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": meta(),
    "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]},
}
CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cfg"), "data": {"a": "1"}, "immutable": True}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": meta("s"), "data": {"a": "MQ=="}}
RB = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": meta("rb"),
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
}
POD_FORBIDDEN = (
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "  # noqa: E501
    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"  # noqa: E501
)


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [
        pytest.param(POD, POD, [], id="pod-unchanged"),
        pytest.param(edit(POD, "spec.containers.0.image", "nginx:1.28"), POD, [], id="pod-image-change"),
        pytest.param(edit(POD, "spec.activeDeadlineSeconds", 30), POD, [], id="pod-set-deadline"),
        pytest.param(
            edit(POD, "spec.activeDeadlineSeconds", 60),
            edit(POD, "spec.activeDeadlineSeconds", 30),
            ["spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"],
            id="pod-raise-deadline",
        ),
        pytest.param(
            edit(POD, "spec.tolerations", [{"key": "a", "operator": "Exists"}]),
            POD,
            [],
            id="pod-add-toleration",
        ),
        pytest.param(
            edit(POD, "spec.schedulingGates", [{"name": "b"}]),
            edit(POD, "spec.schedulingGates", [{"name": "a"}, {"name": "b"}]),
            [],
            id="pod-remove-one-gate",
        ),
        pytest.param(POD, edit(POD, "spec.schedulingGates", [{"name": "a"}]), [], id="pod-remove-all-gates"),
        pytest.param(
            edit(POD, "spec.schedulingGates", [{"name": "g1"}, {"name": "g2"}]),
            edit(POD, "spec.schedulingGates", [{"name": "g1"}]),
            [
                "spec.schedulingGates[1].name: Forbidden: only deletion is allowed, but found new scheduling gate 'g2'"  # noqa: E501
            ],
            id="pod-add-gate",
        ),
        pytest.param(
            edit(POD, "spec.schedulingGates", [{"name": "x"}]),
            POD,
            [
                "spec.schedulingGates[0].name: Forbidden: only deletion is allowed, but found new scheduling gate 'x'"  # noqa: E501
            ],
            id="pod-gate-after-creation",
        ),
        pytest.param(
            edit(POD, "metadata.name", "other"),
            POD,
            ['metadata.name: Invalid value: "other": field is immutable'],
            id="meta-name-immutable",
        ),
        pytest.param(
            edit(POD, "metadata.uid", "u2"),
            edit(POD, "metadata.uid", "u1"),
            ['metadata.uid: Invalid value: "u2": field is immutable'],
            id="meta-uid-immutable",
        ),
        pytest.param(
            edit(DEPLOY, "spec.selector", {"matchLabels": {"app": "web", "tier": "x"}}),
            DEPLOY,
            [
                'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
                "`selector` does not match template `labels`",
                'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", '
                '"tier":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable',
            ],
            id="deploy-selector-immutable",
        ),
        pytest.param(edit(DEPLOY, "spec.replicas", 5), DEPLOY, [], id="deploy-scale"),
        pytest.param(edit(STS, "spec.replicas", 5), STS, [], id="sts-scale"),
        pytest.param(
            edit(STS, "spec.serviceName", "other"),
            STS,
            [
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "  # noqa: E501
                "'minReadySeconds' are forbidden"
            ],
            id="sts-service-name",
        ),
        pytest.param(edit(JOB, "spec.parallelism", 3), JOB, [], id="job-parallelism-mutable"),
        pytest.param(
            edit(JOB, "spec.completions", 4),
            JOB,
            ["spec.completions: Invalid value: 4: field is immutable"],
            id="job-completions-immutable",
        ),
        pytest.param(
            edit(JOB, "spec.template.spec.containers.0.image", "perl:5"),
            JOB,
            ["spec.template"],
            id="job-template-immutable",
        ),
        pytest.param(edit(SVC, "spec.ports", [{"port": 81}]), SVC, [], id="svc-port-change"),
        pytest.param(
            edit(edit(SVC, "spec.clusterIP", "10.96.0.11"), "spec.clusterIPs", ["10.96.0.11"]),
            SVC,
            ['spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set'],
            id="svc-cluster-ip-immutable",
        ),
        pytest.param(
            edit(edit(SVC, "spec.clusterIP", None), "spec.clusterIPs", None),
            SVC,
            [],
            id="svc-cluster-ip-omitted",
        ),
        pytest.param(
            edit(CM, "data", {"a": "2"}),
            CM,
            ["data: Forbidden: field is immutable when `immutable` is set"],
            id="configmap-immutable",
        ),
        pytest.param(
            edit(CM, "immutable", False),
            CM,
            ["immutable: Forbidden: field is immutable when `immutable` is set"],
            id="configmap-unset-immutable",
        ),
        pytest.param(edit(CM, "data", {"a": "2"}), edit(CM, "immutable", None), [], id="configmap-mutable"),
        pytest.param(
            edit(SECRET, "type", "kubernetes.io/basic-auth"),
            SECRET,
            [
                'type: Invalid value: "kubernetes.io/basic-auth": field is immutable',
                "data[username]: Required value",
                "data[password]: Required value",
            ],
            id="secret-type-immutable",
        ),
        pytest.param(
            edit(RB, "roleRef.name", "writer"),
            RB,
            [
                'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", '
                'Name:"writer"}: cannot change roleRef'
            ],
            id="roleref-immutable",
        ),
    ],
)
def test_update(new: dict[str, Any], old: dict[str, Any], expected: list[str]) -> None:
    details = update_details(new, old)
    if expected == ["spec.template"]:
        assert len(details) == 1 and details[0].startswith("spec.template: Invalid value: ")
        assert details[0].endswith(": field is immutable")
    else:
        assert details == expected


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        pytest.param(("spec.restartPolicy", "Never"), "restartPolicy", id="restart-policy"),
        pytest.param(("spec.containers.0.name", "other"), "containers", id="container-name"),
        pytest.param(("spec.tolerations", []), "tolerations", id="remove-toleration"),
    ],
)
def test_pod_spec_mostly_immutable(change: tuple[str, Any], fragment: str) -> None:
    old = edit(POD, "spec.tolerations", [{"key": "a", "operator": "Exists"}])
    details = update_details(edit(old, *change), old)
    assert len(details) == 1
    assert details[0].startswith(POD_FORBIDDEN)
    assert fragment in details[0][len(POD_FORBIDDEN) :]
