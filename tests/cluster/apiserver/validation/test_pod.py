"""Pod and container validation: the kubectl-visible causes, verbatim."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.apiserver.validation.conftest import create_details, edit, meta, pod

SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "  # noqa: E501
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
BASE = pod()


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(BASE, [], id="valid"),
        pytest.param(
            edit(BASE, "spec.containers.0.image", None),
            ["spec.containers[0].image: Required value"],
            id="missing-image",
        ),
        pytest.param(
            edit(BASE, "metadata.name", "Bad_Name"),
            [f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN}'],
            id="bad-name",
        ),
        pytest.param(
            edit(BASE, "metadata", {"namespace": "default"}),
            ["metadata.name: Required value: name or generateName is required"],
            id="no-name",
        ),
        pytest.param(
            edit(BASE, "metadata", meta(generateName="web-", name="web-x7k2p")),
            [],
            id="generate-name-trailing-dash",
        ),
        pytest.param(
            edit(BASE, "metadata", meta(generateName="Web-", name="web-x7k2p")),
            [f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN}'],
            id="generate-name-bad",
        ),
        pytest.param(
            edit(BASE, "metadata.namespace", None), ["metadata.namespace: Required value"], id="no-namespace"
        ),
        pytest.param(
            edit(BASE, "spec.containers", [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
            ['spec.containers[1].name: Duplicate value: "a"'],
            id="duplicate-container",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.name", "Web_1"),
            [f'spec.containers[0].name: Invalid value: "Web_1": {LABEL}'],
            id="container-name-not-label",
        ),
        pytest.param(
            edit(BASE, "spec.containers", []), ["spec.containers: Required value"], id="no-containers"
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.ports", [{"containerPort": 70000}]),
            [
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"  # noqa: E501
            ],
            id="port-range",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.ports", [{"containerPort": 80, "protocol": "HTTP"}]),
            [
                'spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'  # noqa: E501
            ],
            id="port-protocol",
        ),
        pytest.param(
            edit(
                BASE,
                "spec.containers.0.ports",
                [{"containerPort": 80, "name": "http"}, {"containerPort": 81, "name": "http"}],
            ),
            ['spec.containers[0].ports[1].name: Duplicate value: "http"'],
            id="port-name-duplicate",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.imagePullPolicy", "Sometimes"),
            [
                'spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'  # noqa: E501
            ],
            id="pull-policy",
        ),
        pytest.param(
            edit(BASE, "spec.restartPolicy", "Sometimes"),
            [
                'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'  # noqa: E501
            ],
            id="restart-policy",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.resources", {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}),
            [
                'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 500m'  # noqa: E501
            ],
            id="requests-over-limits",
        ),
        pytest.param(
            edit(
                BASE,
                "spec.containers.0.resources",
                {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "0.5", "memory": "1e9"}},
            ),
            [
                'spec.containers[0].resources.requests: Invalid value: "1Gi": must be less than or equal to memory limit of 1e9'  # noqa: E501
            ],
            id="binary-vs-exponent",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.resources", {"limits": {"memory": "lots"}}),
            [
                'spec.containers[0].resources.limits[memory]: Invalid value: "lots": quantities must match the '  # noqa: E501
                "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                # Pod defaulting copies limits into missing requests, so the request fails too.
                'spec.containers[0].resources.requests[memory]: Invalid value: "lots": quantities must match the '  # noqa: E501
                "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ],
            id="bad-quantity",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.resources", {"limits": {"gpu": "1"}}),
            [
                'spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers',  # noqa: E501
                'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers',  # noqa: E501
            ],
            id="nonstandard-resource",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.resources", {"limits": {"nvidia.com/gpu": "1"}}),
            [],
            id="extended-resource",
        ),
        pytest.param(
            edit(
                BASE,
                "spec.containers.0.livenessProbe",
                {"exec": {"command": ["true"]}, "httpGet": {"port": 80}},
            ),
            ["spec.containers[0].livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type"],
            id="probe-two-handlers",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.readinessProbe", {"periodSeconds": 5}),
            ["spec.containers[0].readinessProbe: Required value: must specify a handler type"],
            id="probe-no-handler",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.livenessProbe", {"tcpSocket": {"port": 80}, "successThreshold": 2}),
            ["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"],
            id="liveness-success-threshold",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.volumeMounts", [{"name": "data", "mountPath": "/data"}]),
            ['spec.containers[0].volumeMounts[0].name: Not found: "data"'],
            id="mount-unknown-volume",
        ),
        pytest.param(
            edit(BASE, "spec.volumes", [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
            ["spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type"],
            id="volume-two-sources",
        ),
        pytest.param(
            edit(BASE, "spec.containers.0.env", [{"name": "1BAD", "value": "x"}]),
            [
                'spec.containers[0].env[0].name: Invalid value: "1BAD": a valid environment variable name must '  # noqa: E501
                "consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit "
                "(e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
                "'[-._a-zA-Z][-._a-zA-Z0-9]*')"
            ],
            id="env-name",
        ),
        pytest.param(
            edit(BASE, "spec.tolerations", [{"key": "k", "operator": "Exists", "value": "v"}]),
            [
                "spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'"  # noqa: E501
            ],
            id="toleration-exists-with-value",
        ),
        pytest.param(
            edit(BASE, "spec.activeDeadlineSeconds", 0),
            ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"],
            id="active-deadline",
        ),
        pytest.param(
            edit(BASE, "metadata.labels", {"app": "has space"}),
            [
                'metadata.labels: Invalid value: "has space": a valid label must be an empty string or consist of '  # noqa: E501
                "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "  # noqa: E501
                "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ],
            id="label-value",
        ),
        pytest.param(
            edit(BASE, "metadata.annotations", {"a/b/c": "x"}),
            [
                'metadata.annotations: Invalid value: "a/b/c": a qualified name must consist of alphanumeric '
                "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  "  # noqa: E501
                "or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "  # noqa: E501
                "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ],
            id="annotation-key",
        ),
        pytest.param(
            edit(BASE, "metadata.annotations", {"big": "x" * (256 * 1024)}),
            ["metadata.annotations: Too long: must have at most 262144 bytes"],
            id="annotations-size",
        ),
        pytest.param(
            edit(BASE, "metadata.finalizers", ["custom"]),
            [
                'metadata.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified'  # noqa: E501
            ],
            id="finalizer",
        ),
        pytest.param(edit(BASE, "spec.schedulingGates", [{"name": "example.com/quota"}]), [], id="gated"),
        pytest.param(
            edit(BASE, "spec.schedulingGates", [{"name": "a"}, {"name": "a"}]),
            ['spec.schedulingGates[1]: Duplicate value: "a"'],
            id="duplicate-gate",
        ),
        pytest.param(
            edit(edit(BASE, "spec.schedulingGates", [{"name": "a"}]), "spec.nodeName", "n1"),
            ["spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"],
            id="gated-with-node-name",
        ),
    ],
)
def test_pod_create(obj: dict[str, Any], expected: list[str]) -> None:
    assert create_details(obj) == expected


def test_pod_on_cluster_scope_forbids_namespace() -> None:
    assert create_details(BASE, namespaced=False) == [
        "metadata.namespace: Forbidden: not allowed on this type"
    ]


def test_malformed_input_does_not_raise() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(),
        "spec": {"containers": "nope", "volumes": [3]},
    }
    details = create_details(obj)
    assert "spec.containers: Required value" in details
