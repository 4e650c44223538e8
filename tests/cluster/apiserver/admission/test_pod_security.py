"""PodSecurity: the standards' checks with kube's reasons and details, and the plugin's enforce, warn
and audit modes from namespace labels."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.apiserver.admission import pod_security_checks as psc
from cluster.apiserver.admission.interfaces import Operation
from cluster.apiserver.admission.pod_security import AUDIT_ANNOTATION, PodSecurity, policy
from cluster.apiserver.context import begin_audit_annotations, begin_warnings
from cluster.apiserver.errors import StatusError
from tests.cluster.apiserver.admission.helpers import attrs, pod, refused, resource, run

RESTRICTED_OK: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "web",
            "image": "busybox",
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
    ],
}


def spec_with(container_sc: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "image": "busybox"}
    if container_sc is not None:
        container["securityContext"] = container_sc
    return {"containers": [container], **spec}


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        pytest.param(
            spec_with(hostNetwork=True, hostPID=True),
            ("host namespaces", "hostNetwork=true, hostPID=true"),
            id="host-namespaces",
        ),
        pytest.param(
            spec_with({"privileged": True}),
            ("privileged", 'container "web" must not set securityContext.privileged=true'),
            id="privileged",
        ),
        pytest.param(
            spec_with({"capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}}),
            (
                "non-default capabilities",
                'container "web" must not include "NET_ADMIN", "SYS_ADMIN" '
                "in securityContext.capabilities.add",
            ),
            id="capabilities",
        ),
        pytest.param(
            spec_with(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
            ("hostPath volumes", 'volume "h"'),
            id="host-path",
        ),
        pytest.param(
            {
                "containers": [
                    {"name": "a", "ports": [{"containerPort": 80, "hostPort": 80}]},
                    {"name": "b", "ports": [{"hostPort": 443}]},
                ]
            },
            ("hostPort", 'containers "a", "b" use hostPorts 80, 443'),
            id="host-ports",
        ),
        pytest.param(
            spec_with({"procMount": "Unmasked"}),
            ("procMount", 'container "web" must not set securityContext.procMount to "Unmasked"'),
            id="proc-mount",
        ),
        pytest.param(
            spec_with({"seLinuxOptions": {"type": "spc_t", "user": "root"}}),
            (
                "seLinuxOptions",
                'container "web" set forbidden securityContext.seLinuxOptions: '
                'type "spc_t"; user may not be set',
            ),
            id="selinux",
        ),
        pytest.param(
            spec_with(securityContext={"seccompProfile": {"type": "Unconfined"}}),
            ("seccompProfile", 'pod must not set securityContext.seccompProfile.type to "Unconfined"'),
            id="seccomp",
        ),
        pytest.param(
            spec_with(
                securityContext={
                    "sysctls": [
                        {"name": "kernel.msgmax", "value": "1"},
                        {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                    ]
                }
            ),
            ("forbidden sysctls", "kernel.msgmax"),
            id="sysctls",
        ),
    ],
)
def test_baseline_checks(spec: dict[str, Any], want: tuple[str, str]) -> None:
    assert psc.evaluate(psc.BASELINE, {}, spec) == [want]
    assert psc.evaluate(psc.PRIVILEGED, {}, spec) == []


def test_apparmor_annotation() -> None:
    meta = {"annotations": {"container.apparmor.security.beta.kubernetes.io/web": "unconfined"}}
    assert psc.evaluate(psc.BASELINE, meta, spec_with()) == [
        ("forbidden AppArmor profile", 'container.apparmor.security.beta.kubernetes.io/web="unconfined"')
    ]


def test_restricted_accepts_a_hardened_pod_and_lists_each_gap_in_order() -> None:
    assert psc.evaluate(psc.RESTRICTED, {}, RESTRICTED_OK) == []
    results = psc.evaluate(
        psc.RESTRICTED,
        {},
        spec_with({"privileged": True}, volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
    )
    assert [r for r, _ in results] == [
        "privileged",
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "restricted volume types",
        "runAsNonRoot != true",
        "seccompProfile",
    ]
    assert (
        psc.describe(results[3:4])
        == 'restricted volume types (volume "h" uses restricted volume type "hostPath")'
    )


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        pytest.param(
            spec_with({"runAsNonRoot": False}, securityContext={"runAsNonRoot": False}),
            (
                "runAsNonRoot != true",
                'pod and container "web" must not set securityContext.runAsNonRoot=false',
            ),
            id="non-root-false",
        ),
        pytest.param(
            spec_with(securityContext={"runAsNonRoot": True, "runAsUser": 0}),
            ("runAsUser=0", "pod must not set runAsUser=0"),
            id="run-as-user-0",
        ),
        pytest.param(
            spec_with({"capabilities": {"drop": ["ALL"], "add": ["SYS_TIME", "NET_BIND_SERVICE"]}}),
            (
                "unrestricted capabilities",
                'container "web" must not include "SYS_TIME" in securityContext.capabilities.add',
            ),
            id="adds",
        ),
    ],
)
def test_restricted_details(spec: dict[str, Any], want: tuple[str, str]) -> None:
    assert want in psc.evaluate(psc.RESTRICTED, {}, spec)


def test_user_namespaces_relax_the_root_checks() -> None:
    results = psc.evaluate(psc.RESTRICTED, {}, spec_with(hostUsers=False))
    assert "runAsNonRoot != true" not in [r for r, _ in results]


class Namespaces:
    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels

    async def get_namespace(self, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name, "labels": self.labels}}


class Pods:
    def __init__(self, *pods: dict[str, Any]) -> None:
        self.pods = list(pods)

    async def namespaced_objects(
        self, group: str, version: str, plural: str, namespace: str
    ) -> list[dict[str, Any]]:
        return self.pods


PRIVILEGED_POD = pod(securityContext={})
PRIVILEGED_POD["spec"]["containers"][0]["securityContext"] = {"privileged": True}
LABEL = "pod-security.kubernetes.io/"


def test_policy_from_labels() -> None:
    assert policy({}, "enforce") == ("privileged", "latest")
    assert policy({LABEL + "enforce": "baseline", LABEL + "enforce-version": "v1.30"}, "enforce") == (
        "baseline",
        "v1.30",
    )
    assert policy({LABEL + "enforce": "bogus"}, "enforce") == ("restricted", "latest")  # fails closed


def test_enforce_refuses_with_kubes_message() -> None:
    plugin = PodSecurity(Namespaces({LABEL + "enforce": "baseline"}))
    assert refused(plugin.validate(attrs(PRIVILEGED_POD))) == (
        'pods "web" is forbidden: violates PodSecurity "baseline:latest": '
        'privileged (container "web" must not set securityContext.privileged=true)'
    )


def test_warn_and_audit_admit_with_a_warning_and_an_annotation() -> None:
    plugin = PodSecurity(Namespaces({LABEL + "warn": "baseline", LABEL + "audit": "baseline"}))

    async def go() -> tuple[list[str], dict[str, str]]:
        warnings, annotations = begin_warnings(), begin_audit_annotations()
        await plugin.validate(attrs(PRIVILEGED_POD))
        return warnings, annotations

    warnings, annotations = run(go())
    text = (
        'would violate PodSecurity "baseline:latest": '
        'privileged (container "web" must not set securityContext.privileged=true)'
    )
    assert warnings == [text]
    assert annotations[AUDIT_ANNOTATION] == text
    assert annotations["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"


def test_workload_templates_only_warn() -> None:
    deployment = {
        "metadata": {"name": "d"},
        "spec": {"template": {"metadata": {}, "spec": PRIVILEGED_POD["spec"]}},
    }
    plugin = PodSecurity(Namespaces({LABEL + "enforce": "restricted", LABEL + "warn": "baseline"}))

    async def go() -> list[str]:
        warnings = begin_warnings()
        await plugin.validate(attrs(deployment, resource("apps", "v1", "deployments")))
        return warnings

    assert run(go()) == [
        'would violate PodSecurity "baseline:latest": '
        'privileged (container "web" must not set securityContext.privileged=true)'
    ]


def test_status_and_metadata_updates_are_not_rechecked() -> None:
    plugin = PodSecurity(Namespaces({LABEL + "enforce": "baseline"}))
    run(plugin.validate(attrs(PRIVILEGED_POD, operation=Operation.UPDATE, old=PRIVILEGED_POD)))
    run(plugin.validate(attrs(PRIVILEGED_POD, operation=Operation.UPDATE, old=pod(), subresource="status")))
    refused(plugin.validate(attrs(PRIVILEGED_POD, operation=Operation.UPDATE, old=pod())))


def test_a_stricter_enforce_label_warns_about_existing_pods() -> None:
    namespaces = resource("", "v1", "namespaces")
    others = [pod(f"p{i}") for i in range(2)]
    for other in others:
        other["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    plugin = PodSecurity(Namespaces({}), Pods(*others, pod("fine")))
    new = {"metadata": {"name": "team", "labels": {LABEL + "enforce": "baseline"}}}

    async def go() -> list[str]:
        warnings = begin_warnings()
        await plugin.validate(
            attrs(
                new,
                namespaces,
                operation=Operation.UPDATE,
                namespace=None,
                old={"metadata": {"name": "team"}},
            )
        )
        return warnings

    assert run(go()) == [
        'existing pods in namespace "team" violate the new PodSecurity enforce level "baseline:latest"',
        "p0 (and 1 other pod): privileged",
    ]


def test_namespace_labels_must_be_valid() -> None:
    namespaces = resource("", "v1", "namespaces")
    plugin = PodSecurity(Namespaces({}), Pods())
    bad = {
        "metadata": {"name": "team", "labels": {LABEL + "enforce": "bogus", LABEL + "warn-version": "1.30"}}
    }
    with pytest.raises(StatusError) as err:
        run(plugin.validate(attrs(bad, namespaces, namespace=None)))
    assert (err.value.code, err.value.message) == (
        422,
        'Namespace "team" is invalid: [metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "bogus": must be one of privileged, baseline, restricted, '
        "metadata.labels[pod-security.kubernetes.io/warn-version]: "
        'Invalid value: "1.30": must be "latest" or "v1.x"]',
    )
    # an update that leaves the bad labels as they were (changing something else) passes
    run(plugin.validate(attrs(bad, namespaces, namespace=None, operation=Operation.UPDATE, old=bad)))
    good = {
        "metadata": {
            "name": "team",
            "labels": {LABEL + "enforce": "baseline", LABEL + "enforce-version": "v1.33"},
        }
    }
    run(plugin.validate(attrs(good, namespaces, namespace=None)))
