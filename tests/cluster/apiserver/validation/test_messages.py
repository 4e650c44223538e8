"""Cause rendering and the 422 Status message, as apimachinery's field.Error and NewInvalid print them."""

from __future__ import annotations

import pytest

from cluster.apiserver.validation import invalid_message, qualified_kind, status_details
from cluster.apiserver.validation.fields import (
    Cause,
    GoLiteral,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)


@pytest.mark.parametrize(
    ("cause", "reason", "detail"),
    [
        pytest.param(
            required("spec.containers[0].image"),
            "FieldValueRequired",
            "spec.containers[0].image: Required value",
            id="required",
        ),
        pytest.param(
            required("metadata.name", "name or generateName is required"),
            "FieldValueRequired",
            "metadata.name: Required value: name or generateName is required",
            id="required-detail",
        ),
        pytest.param(
            invalid("spec.replicas", -1, "must be greater than or equal to 0"),
            "FieldValueInvalid",
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            id="invalid-int",
        ),
        pytest.param(
            invalid("x", 'a"b', "bad"),
            "FieldValueInvalid",
            'x: Invalid value: "a\\"b": bad',
            id="invalid-quoted",
        ),
        pytest.param(
            invalid("x", None, "gone"), "FieldValueInvalid", "x: Invalid value: null: gone", id="invalid-null"
        ),
        pytest.param(
            invalid("x", True, "b"), "FieldValueInvalid", "x: Invalid value: true: b", id="invalid-bool"
        ),
        pytest.param(
            invalid("x", ["a", "b"], "c"),
            "FieldValueInvalid",
            'x: Invalid value: []string{"a", "b"}: c',
            id="invalid-list",
        ),
        pytest.param(
            invalid("x", {"b": "2", "a": "1"}, "c"),
            "FieldValueInvalid",
            'x: Invalid value: map[string]string{"a":"1", "b":"2"}: c',
            id="invalid-map-sorted",
        ),
        pytest.param(
            invalid("x", GoLiteral("v1.X{}"), "c"),
            "FieldValueInvalid",
            "x: Invalid value: v1.X{}: c",
            id="invalid-literal",
        ),
        pytest.param(
            not_supported("spec.type", "Foo", ["A", "B"]),
            "FieldValueNotSupported",
            'spec.type: Unsupported value: "Foo": supported values: "A", "B"',
            id="not-supported",
        ),
        pytest.param(
            duplicate("spec.containers[1].name", "web"),
            "FieldValueDuplicate",
            'spec.containers[1].name: Duplicate value: "web"',
            id="duplicate",
        ),
        pytest.param(
            forbidden("spec", "nope"), "FieldValueForbidden", "spec: Forbidden: nope", id="forbidden"
        ),
        pytest.param(
            too_long("", 1048576),
            "FieldValueTooLong",
            "Too long: must have at most 1048576 bytes",
            id="too-long-whole-object",
        ),
    ],
)
def test_cause_rendering(cause: Cause, reason: str, detail: str) -> None:
    assert cause.type == reason
    assert cause.detail() == detail
    assert cause.as_status_cause() == {"reason": reason, "message": cause.message, "field": cause.field}


REQ = required("spec.selector")
MISMATCH = invalid(
    "spec.template.metadata.labels", {"app": "web"}, "`selector` does not match template `labels`"
)


@pytest.mark.parametrize(
    ("kind", "name", "causes", "expected"),
    [
        pytest.param(
            "Pod",
            "bad",
            [required("spec.containers[0].image")],
            'Pod "bad" is invalid: spec.containers[0].image: Required value',
            id="core-single",
        ),
        pytest.param(
            "Deployment",
            "web",
            [REQ, MISMATCH],
            'Deployment.apps "web" is invalid: [spec.selector: Required value, spec.template.metadata.labels: '  # noqa: E501
            'Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`]',
            id="apps-qualified-several",
        ),
        pytest.param(
            "Deployment.apps",
            "web",
            [REQ],
            'Deployment.apps "web" is invalid: spec.selector: Required value',
            id="already-qualified",
        ),
        pytest.param(
            "Job",
            "pi",
            [REQ, REQ],
            'Job.batch "pi" is invalid: spec.selector: Required value',
            id="duplicates-collapse",
        ),
        pytest.param("Widget", "w", [], 'Widget "w" is invalid', id="no-causes"),
        pytest.param(
            "NetworkPolicy",
            "np",
            [REQ],
            'NetworkPolicy.networking.k8s.io "np" is invalid: spec.selector: Required value',
            id="dotted-group",
        ),
    ],
)
def test_invalid_message(kind: str, name: str, causes: list[Cause], expected: str) -> None:
    assert invalid_message(kind, name, causes) == expected


@pytest.mark.parametrize(
    ("api_version", "kind", "expected"),
    [
        pytest.param("v1", "Pod", "Pod", id="core"),
        pytest.param("apps/v1", "Deployment", "Deployment.apps", id="apps"),
        pytest.param("events.k8s.io/v1", "Event", "Event.events.k8s.io", id="events"),
    ],
)
def test_qualified_kind(api_version: str, kind: str, expected: str) -> None:
    assert qualified_kind(api_version, kind) == expected


def test_status_details_carries_group_and_causes() -> None:
    details = status_details("Deployment", "web", [REQ])
    assert details == {
        "name": "web",
        "group": "apps",
        "kind": "Deployment",
        "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"}],
    }
