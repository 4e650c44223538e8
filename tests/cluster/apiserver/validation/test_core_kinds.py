"""Services, ConfigMaps, Secrets, Namespaces and the other core kinds, plus the smaller groups."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.cluster.apiserver.validation.conftest import create_details, edit, meta


def obj(
    api_version: str, kind: str, name: str = "web", namespace: str | None = "default", **body: Any
) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": meta(name, namespace), **body}


SVC = obj("v1", "Service", spec={"selector": {"app": "web"}, "ports": [{"port": 80}]})
CM = obj("v1", "ConfigMap", data={"app.conf": "x"})
SECRET = obj("v1", "Secret", data={"token": base64.b64encode(b"s3cret").decode()})
DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
CONFIG_KEY = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "  # noqa: E501
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
RULE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
REF = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
RBAC = "rbac.authorization.k8s.io/v1"


@pytest.mark.parametrize(
    ("value", "namespaced", "expected"),
    [
        pytest.param(SVC, True, [], id="svc-valid"),
        pytest.param(
            edit(SVC, "spec.type", "Bogus"),
            True,
            [
                'spec.type: Unsupported value: "Bogus": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'  # noqa: E501
            ],
            id="svc-bad-type",
        ),
        pytest.param(
            edit(SVC, "metadata.name", "1web"),
            True,
            [f'metadata.name: Invalid value: "1web": {DNS1035}'],
            id="svc-name-dns1035",
        ),
        pytest.param(edit(SVC, "spec.ports", []), True, ["spec.ports: Required value"], id="svc-no-ports"),
        pytest.param(
            edit(edit(SVC, "spec.ports", []), "spec.clusterIP", "None"), True, [], id="svc-headless-no-ports"
        ),
        pytest.param(
            edit(SVC, "spec.ports", [{"port": 0}]),
            True,
            [
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                # targetPort defaults to port, so it is out of range as well (as in Kubernetes).
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            ],
            id="svc-port-range",
        ),
        pytest.param(
            edit(SVC, "spec.ports", [{"port": 80, "targetPort": 70000}]),
            True,
            ["spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"],
            id="svc-target-port-range",
        ),
        pytest.param(
            edit(SVC, "spec.ports", [{"port": 80, "name": "a"}, {"port": 81}]),
            True,
            ["spec.ports[1].name: Required value"],
            id="svc-multi-port-names",
        ),
        pytest.param(
            edit(SVC, "spec.ports", [{"port": 80, "nodePort": 30080}]),
            True,
            ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
            id="svc-node-port-on-cluster-ip",
        ),
        pytest.param(
            edit(edit(SVC, "spec.type", "NodePort"), "spec.ports", [{"port": 80, "nodePort": 80}]),
            True,
            [
                "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"  # noqa: E501
            ],
            id="svc-node-port-range",
        ),
        pytest.param(
            edit(SVC, "spec.sessionAffinity", "Sticky"),
            True,
            ['spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"'],
            id="svc-affinity",
        ),
        pytest.param(
            obj("v1", "Service", spec={"type": "ExternalName"}),
            True,
            ["spec.externalName: Required value"],
            id="svc-external-name-required",
        ),
        pytest.param(CM, True, [], id="cm-valid"),
        pytest.param(
            edit(CM, "data", {"bad key": "x"}),
            True,
            [f'data[bad key]: Invalid value: "bad key": {CONFIG_KEY}'],
            id="cm-bad-key",
        ),
        pytest.param(
            edit(CM, "data", {"..x": "y"}),
            True,
            ["data[..x]: Invalid value: \"..x\": must not start with '..'"],
            id="cm-dotdot",
        ),
        pytest.param(
            edit(CM, "binaryData", {"app.conf": "eA=="}),
            True,
            [
                'data[app.conf]: Invalid value: "app.conf": duplicate of key present in binaryData',
                'binaryData[app.conf]: Invalid value: "app.conf": duplicate of key present in data',
            ],
            id="cm-duplicate-across-bags",
        ),
        pytest.param(
            edit(CM, "data", {"a": "x" * (1024 * 1024), "b": "y"}),
            True,
            ["Too long: must have at most 1048576 bytes"],
            id="cm-too-big",
        ),
        pytest.param(SECRET, True, [], id="secret-valid"),
        pytest.param(
            edit(SECRET, "type", "kubernetes.io/tls"),
            True,
            ["data[tls.crt]: Required value", "data[tls.key]: Required value"],
            id="secret-tls-keys",
        ),
        pytest.param(edit(SECRET, "stringData", {"pw": "x"}), True, [], id="secret-string-data-merged"),
        pytest.param(obj("v1", "Namespace", "team-a", None), False, [], id="ns-valid"),
        pytest.param(
            obj("v1", "Namespace", "team.a", None),
            False,
            [f'metadata.name: Invalid value: "team.a": {LABEL}'],
            id="ns-name-is-label",
        ),
        pytest.param(obj("v1", "Node", "node-1.example", None), False, [], id="node-valid"),
        pytest.param(
            obj("v1", "Node", "n1", None, spec={"taints": [{"key": "k", "effect": "Sometimes"}]}),
            False,
            [
                'spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoExecute", "NoSchedule", "PreferNoSchedule"'  # noqa: E501
            ],
            id="node-taint-effect",
        ),
        pytest.param(
            obj(
                "v1",
                "PersistentVolumeClaim",
                spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            ),
            True,
            [],
            id="pvc-valid",
        ),
        pytest.param(
            obj("v1", "PersistentVolumeClaim", spec={}),
            True,
            [
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ],
            id="pvc-empty",
        ),
        pytest.param(
            obj(
                "v1",
                "PersistentVolume",
                "pv1",
                None,
                spec={"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}},
            ),
            False,
            ["spec: Required value: must specify a volume type"],
            id="pv-no-source",
        ),
        pytest.param(
            obj("v1", "ResourceQuota", spec={"hard": {"pods": "-1"}}),
            True,
            ['spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0'],
            id="quota-negative",
        ),
        pytest.param(
            obj("v1", "LimitRange", spec={"limits": [{"max": {"cpu": "1"}}]}),
            True,
            ["spec.limits[0].type: Required value"],
            id="limitrange-type",
        ),
        pytest.param(obj("v1", "ServiceAccount"), True, [], id="sa-valid"),
        pytest.param(
            obj("v1", "Event", "web.1", involvedObject={"kind": "Pod", "name": "web", "namespace": "other"}),
            True,
            ['involvedObject.namespace: Invalid value: "other": does not match event.namespace'],
            id="event-namespace-mismatch",
        ),
        pytest.param(
            obj("events.k8s.io/v1", "Event", "web.1", type="Normal"),
            True,
            [
                "reportingController: Required value",
                "reportingInstance: Required value",
                "action: Required value",
                "reason: Required value",
                "eventTime: Required value",
            ],
            id="events-v1-required",
        ),
        pytest.param(obj(RBAC, "Role", "pod-reader", rules=[RULE]), True, [], id="role-valid"),
        pytest.param(
            obj(RBAC, "Role", "pod-reader", rules=[{**RULE, "verbs": []}]),
            True,
            ["rules[0].verbs: Required value: verbs must contain at least one value"],
            id="role-no-verbs",
        ),
        pytest.param(
            obj(
                RBAC,
                "ClusterRole",
                "system:reader",
                None,
                rules=[{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}],
            ),
            False,
            [],
            id="clusterrole-colon-name-and-urls",
        ),
        pytest.param(
            obj(RBAC, "Role", "r", rules=[{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]),
            True,
            [
                'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs'  # noqa: E501
            ],
            id="role-non-resource-urls",
        ),
        pytest.param(
            obj(RBAC, "RoleBinding", "rb", roleRef=REF, subjects=[{"kind": "User", "name": "jane"}]),
            True,
            [],
            id="rolebinding-user-apigroup-defaulted",
        ),
        pytest.param(
            obj(
                RBAC,
                "ClusterRoleBinding",
                "crb",
                None,
                roleRef=REF,
                subjects=[{"kind": "ServiceAccount", "name": "sa"}],
            ),
            False,
            [
                'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
                "subjects[0].namespace: Required value",
            ],
            id="crb-role-kind-and-sa-namespace",
        ),
        pytest.param(
            obj(
                "networking.k8s.io/v1",
                "Ingress",
                spec={
                    "rules": [
                        {
                            "http": {
                                "paths": [
                                    {
                                        "path": "api",
                                        "pathType": "Prefix",
                                        "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                    }
                                ]
                            }
                        }
                    ]
                },
            ),
            True,
            ['spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path'],
            id="ingress-relative-path",
        ),
        pytest.param(
            obj("networking.k8s.io/v1", "Ingress", spec={}),
            True,
            [
                "spec.rules: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"  # noqa: E501
            ],
            id="ingress-empty",
        ),
        pytest.param(
            obj(
                "networking.k8s.io/v1", "NetworkPolicy", spec={"podSelector": {}, "policyTypes": ["Sideways"]}
            ),
            True,
            ['spec.policyTypes[0]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"'],
            id="netpol-policy-type",
        ),
        pytest.param(
            obj("networking.k8s.io/v1", "IngressClass", "nginx", None, spec={"controller": "nginx"}),
            False,
            [
                'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")'  # noqa: E501
            ],
            id="ingressclass-controller",
        ),
        pytest.param(
            obj("scheduling.k8s.io/v1", "PriorityClass", "high", None, value=2_000_000_000),
            False,
            ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"],
            id="priorityclass-value",
        ),
        pytest.param(
            obj("storage.k8s.io/v1", "StorageClass", "fast", None),
            False,
            ["provisioner: Required value"],
            id="storageclass-provisioner",
        ),
        pytest.param(
            obj("policy/v1", "PodDisruptionBudget", spec={"minAvailable": 1, "maxUnavailable": 1}),
            True,
            ["spec.minAvailable: Invalid value: 1: minAvailable and maxUnavailable cannot be both set"],
            id="pdb-both",
        ),
        pytest.param(
            obj("coordination.k8s.io/v1", "Lease", spec={"leaseDurationSeconds": 0}),
            True,
            ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"],
            id="lease-duration",
        ),
        pytest.param(
            obj(
                "discovery.k8s.io/v1",
                "EndpointSlice",
                addressType="IPv4",
                endpoints=[{"addresses": ["10.0.0.300"]}],
            ),
            True,
            [
                'endpoints[0].addresses[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'  # noqa: E501
            ],
            id="endpointslice-ip",
        ),
        pytest.param(
            obj("v1", "Endpoints", subsets=[{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]),
            True,
            [],
            id="endpoints-valid",
        ),
        pytest.param(
            obj("apps/v1", "ControllerRevision", revision=1),
            True,
            ["data: Required value: data is mandatory"],
            id="controllerrevision-data",
        ),
        pytest.param(
            obj("example.com/v1", "Widget", "Bad_Name", spec={"anything": -1}),
            True,
            ["metadata.name"],
            id="unknown-kind-metadata-only",
        ),
    ],
)
def test_create(value: dict[str, Any], namespaced: bool, expected: list[str]) -> None:
    details = create_details(value, namespaced=namespaced)
    if expected == ["metadata.name"]:
        assert len(details) == 1 and details[0].startswith('metadata.name: Invalid value: "Bad_Name"')
    else:
        assert details == expected
