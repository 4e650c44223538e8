"""OpenAPI v3 documents: what kubectl's field-validation check and ``kubectl explain`` rely on."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from cluster.apiserver.discovery import served_group_versions
from cluster.apiserver.openapi import (
    OPENAPI_V2_CONTENT_TYPE,
    REF_PREFIX,
    document_hash,
    openapi_v2_stub,
    openapi_v3_group,
    openapi_v3_index,
    schema_name,
)


def _doc(path: str) -> dict[str, Any]:
    doc = openapi_v3_group(path)
    assert doc is not None
    return doc


def _refs(value: Any) -> set[str]:
    return set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(value)))


def _supports_field_validation(doc: dict[str, Any], gvk: dict[str, str]) -> bool:
    """kubectl's ``supportsQueryParamV3``: the first PATCH op tagged with the GVK must list the param."""
    for ops in doc["paths"].values():
        patch = ops.get("patch")
        if patch is None or patch.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"])
    return False


def _find_by_gvk(doc: dict[str, Any], gvk: dict[str, str]) -> dict[str, Any]:
    """How kubectl explain finds a kind: the schema whose GVK extension lists it."""
    for schema in doc["components"]["schemas"].values():
        if gvk in schema.get("x-kubernetes-group-version-kind", []):
            return schema
    raise AssertionError(f"no schema for {gvk}")


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "allOf" in schema:
        schema = schema["allOf"][0]
    if "$ref" in schema:
        return doc["components"]["schemas"][schema["$ref"][len(REF_PREFIX) :]]
    return schema


@pytest.mark.parametrize("path", [pytest.param(p, id=p) for p in served_group_versions()])
def test_every_ref_resolves(path: str) -> None:
    doc = _doc(path)
    assert doc["openapi"] == "3.0.0"
    assert doc["info"]["title"]
    assert _refs(doc) <= set(doc["components"]["schemas"])
    assert doc["paths"]


@pytest.mark.parametrize(
    ("path", "gvk"),
    [
        pytest.param("api/v1", {"group": "", "version": "v1", "kind": "Pod"}, id="pod"),
        pytest.param("api/v1", {"group": "", "version": "v1", "kind": "ConfigMap"}, id="configmap"),
        pytest.param("api/v1", {"group": "", "version": "v1", "kind": "Namespace"}, id="namespace"),
        pytest.param(
            "apis/apps/v1", {"group": "apps", "version": "v1", "kind": "Deployment"}, id="deployment"
        ),
        pytest.param(
            "apis/apps/v1", {"group": "apps", "version": "v1", "kind": "StatefulSet"}, id="statefulset"
        ),
        pytest.param("apis/batch/v1", {"group": "batch", "version": "v1", "kind": "Job"}, id="job"),
    ],
)
def test_patch_has_gvk_and_field_validation(path: str, gvk: dict[str, str]) -> None:
    doc = _doc(path)
    assert _supports_field_validation(doc, gvk)
    assert _find_by_gvk(doc, gvk)["type"] == "object"


def test_field_validation_absent_for_unknown_kind() -> None:
    assert not _supports_field_validation(_doc("api/v1"), {"group": "", "version": "v1", "kind": "Nope"})


@pytest.mark.parametrize(
    ("path", "gvk", "field_path", "expected_words"),
    [
        pytest.param(
            "api/v1",
            {"group": "", "version": "v1", "kind": "Pod"},
            ["spec", "containers"],
            "List of containers belonging to the pod",
            id="pods.spec.containers",
        ),
        pytest.param(
            "apis/apps/v1",
            {"group": "apps", "version": "v1", "kind": "Deployment"},
            ["spec", "template", "spec", "containers", "image"],
            "Container image name",
            id="deployment.spec.template.spec.containers.image",
        ),
        pytest.param(
            "api/v1",
            {"group": "", "version": "v1", "kind": "Service"},
            ["spec", "type"],
            "ClusterIP",
            id="service.spec.type",
        ),
    ],
)
def test_explain_walk(path: str, gvk: dict[str, str], field_path: list[str], expected_words: str) -> None:
    doc = _doc(path)
    schema = _find_by_gvk(doc, gvk)
    assert schema["description"]
    field: dict[str, Any] = {}
    for name in field_path:
        field = schema["properties"][name]
        schema = _resolve(doc, field.get("items", field))
    assert expected_words in field["description"]


@pytest.mark.parametrize(
    ("path", "schema", "field", "extensions"),
    [
        pytest.param(
            "api/v1",
            "io.k8s.api.core.v1.PodSpec",
            "containers",
            {"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
            id="containers-by-name",
        ),
        pytest.param(
            "api/v1",
            "io.k8s.api.core.v1.Container",
            "ports",
            {
                "x-kubernetes-patch-merge-key": "containerPort",
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
            },
            id="ports-by-containerPort",
        ),
        pytest.param(
            "api/v1",
            "io.k8s.api.core.v1.PodSpec",
            "volumes",
            {"x-kubernetes-patch-strategy": "merge,retainKeys"},
            id="volumes-retain-keys",
        ),
        pytest.param(
            "api/v1",
            "io.k8s.api.core.v1.PodStatus",
            "conditions",
            {"x-kubernetes-patch-merge-key": "type"},
            id="status-conditions-by-type",
        ),
        pytest.param(
            "apis/apps/v1",
            "io.k8s.api.apps.v1.DeploymentSpec",
            "strategy",
            {"x-kubernetes-patch-strategy": "retainKeys"},
            id="deployment-strategy",
        ),
    ],
)
def test_strategic_merge_markers(path: str, schema: str, field: str, extensions: dict[str, Any]) -> None:
    prop = _doc(path)["components"]["schemas"][schema]["properties"][field]
    assert {k: prop.get(k) for k in extensions} == extensions


@pytest.mark.parametrize(
    ("group", "kind", "name"),
    [
        pytest.param("", "Pod", "io.k8s.api.core.v1.Pod", id="pod"),
        pytest.param("apps", "Deployment", "io.k8s.api.apps.v1.Deployment", id="deployment"),
        pytest.param("", "Event", "io.k8s.api.core.v1.Event", id="core-event"),
        pytest.param("events.k8s.io", "Event", "io.k8s.api.events.v1.Event", id="events-event"),
        pytest.param("autoscaling", "Scale", "io.k8s.api.autoscaling.v1.Scale", id="scale"),
        pytest.param("", "PodTemplateSpec", "io.k8s.api.core.v1.PodTemplateSpec", id="template-is-core"),
    ],
)
def test_schema_names(group: str, kind: str, name: str) -> None:
    assert schema_name(group, "v1", kind) == name


def test_meta_and_special_schemas() -> None:
    schemas = _doc("api/v1")["components"]["schemas"]
    meta = "io.k8s.apimachinery.pkg.apis.meta.v1."
    assert schemas[meta + "Time"]["format"] == "date-time"
    assert (
        "ObjectMeta" in schemas[meta + "ObjectMeta"]["description"]
        or schemas[meta + "ObjectMeta"]["properties"]
    )
    limits = schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"]["$ref"].endswith("resource.Quantity")
    target = schemas["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"]
    assert target["allOf"][0]["$ref"].endswith("intstr.IntOrString")
    assert schemas["io.k8s.api.core.v1.Container"]["required"] == ["name"]


def test_index_points_at_hashed_documents() -> None:
    index = openapi_v3_index()
    assert set(index["paths"]) == set(served_group_versions())
    url = index["paths"]["api/v1"]["serverRelativeURL"]
    assert url == f"/openapi/v3/api/v1?hash={document_hash('api/v1')}"
    assert len(document_hash("api/v1")) == 128
    assert document_hash("api/v1") != document_hash("apis/apps/v1")
    custom = openapi_v3_index(lambda p: "H" + p.replace("/", "-"))
    assert custom["paths"]["apis/apps/v1"] == {
        "serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=Hapis-apps-v1"
    }


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("apis/apps/v9", id="bad-version"),
        pytest.param("apis/x", id="short"),
        pytest.param("foo", id="junk"),
    ],
)
def test_unknown_group_document(path: str) -> None:
    assert openapi_v3_group(path) is None


def test_v2_stub() -> None:
    assert openapi_v2_stub() == bytes.fromhex("0a03322e30")
    assert OPENAPI_V2_CONTENT_TYPE == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def test_documents_are_cached_and_fast() -> None:
    started = time.perf_counter()
    for path in served_group_versions():
        assert openapi_v3_group(path) is openapi_v3_group(path)
    assert time.perf_counter() - started < 5.0
