"""Discovery documents and Accept negotiation, spot-checked against real Kubernetes values."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.apiserver.discovery import (
    aggregated_content_type,
    aggregated_discovery,
    api_group_list,
    api_resource_list,
    api_versions,
    negotiate_discovery,
    served_group_versions,
    version_info,
)
from cluster.apiserver.resources import RESOURCES

KUBECTL_132 = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
KUBECTL_128 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"


@pytest.mark.parametrize(
    ("accept", "mode"),
    [
        pytest.param(KUBECTL_132, "v2", id="kubectl-1.32-offers-v2-first"),
        pytest.param(KUBECTL_128, "v2beta1", id="kubectl-1.28-only-v2beta1"),
        pytest.param("application/json", "legacy", id="plain-json"),
        pytest.param("", "legacy", id="no-accept"),
        pytest.param("*/*", "legacy", id="wildcard"),
        pytest.param(
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
            "legacy",
            id="protobuf-only-aggregated",
        ),
        pytest.param(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,"
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            "v2beta1",
            id="q-values-win-over-order",
        ),
        pytest.param(
            "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", "legacy", id="unknown-v"
        ),
        pytest.param("application/json;g=other.io;v=v2;as=APIGroupDiscoveryList", "legacy", id="wrong-group"),
    ],
)
def test_negotiate_discovery(accept: str, mode: str) -> None:
    chosen, content_type = negotiate_discovery(accept)
    assert chosen == mode
    if mode == "legacy":
        assert content_type == "application/json"
    else:
        assert content_type == f"application/json;g=apidiscovery.k8s.io;v={mode};as=APIGroupDiscoveryList"
        # The reply must name a version the client offered.
        assert f"v={mode};" in accept


def _legacy_entry(group: str, name: str) -> dict[str, Any]:
    doc = api_resource_list(group, "v1")
    assert doc is not None
    return next(r for r in doc["resources"] if r["name"] == name)


@pytest.mark.parametrize(
    ("group", "name", "expected"),
    [
        pytest.param(
            "", "pods", {"shortNames": ["po"], "categories": ["all"], "namespaced": True}, id="pods"
        ),
        pytest.param(
            "apps", "deployments", {"shortNames": ["deploy"], "kind": "Deployment"}, id="deployments"
        ),
        pytest.param("apps", "statefulsets", {"shortNames": ["sts"]}, id="statefulsets"),
        pytest.param("", "services", {"shortNames": ["svc"]}, id="services"),
        pytest.param("", "configmaps", {"shortNames": ["cm"]}, id="configmaps"),
        pytest.param("", "namespaces", {"shortNames": ["ns"], "namespaced": False}, id="namespaces"),
        pytest.param("apps", "daemonsets", {"shortNames": ["ds"]}, id="daemonsets"),
        pytest.param("batch", "cronjobs", {"shortNames": ["cj"]}, id="cronjobs"),
        pytest.param("networking.k8s.io", "ingresses", {"shortNames": ["ing"]}, id="ingresses"),
        pytest.param("", "persistentvolumeclaims", {"shortNames": ["pvc"]}, id="pvc"),
        pytest.param("", "serviceaccounts", {"shortNames": ["sa"]}, id="sa"),
        pytest.param("policy", "poddisruptionbudgets", {"shortNames": ["pdb"]}, id="pdb"),
        pytest.param("scheduling.k8s.io", "priorityclasses", {"shortNames": ["pc"]}, id="pc"),
        pytest.param("storage.k8s.io", "storageclasses", {"shortNames": ["sc"]}, id="sc"),
        pytest.param("", "events", {"shortNames": ["ev"]}, id="events"),
        pytest.param("", "pods/log", {"kind": "Pod", "verbs": ["get"], "singularName": ""}, id="pods-log"),
        pytest.param(
            "", "pods/eviction", {"group": "policy", "version": "v1", "kind": "Eviction"}, id="pods-eviction"
        ),
        pytest.param(
            "apps",
            "deployments/scale",
            {"group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]},
            id="deployments-scale",
        ),
    ],
)
def test_legacy_resource_entries(group: str, name: str, expected: dict[str, Any]) -> None:
    entry = _legacy_entry(group, name)
    assert {k: entry.get(k) for k in expected} == expected


@pytest.mark.parametrize(
    ("group", "name", "absent"),
    [
        pytest.param("discovery.k8s.io", "endpointslices", "shortNames", id="endpointslices-no-shortnames"),
        pytest.param("", "secrets", "categories", id="secrets-no-categories"),
        pytest.param("", "pods/log", "group", id="same-group-subresource-omits-group"),
    ],
)
def test_legacy_fields_absent(group: str, name: str, absent: str) -> None:
    assert absent not in _legacy_entry(group, name)


def test_every_resource_and_subresource_is_listed() -> None:
    for info in RESOURCES:
        doc = api_resource_list(info.group, info.version)
        assert doc is not None
        assert doc["groupVersion"] == info.group_version
        names = {r["name"] for r in doc["resources"]}
        assert info.plural in names
        assert {f"{info.plural}/{s.name}" for s in info.subresources} <= names


@pytest.mark.parametrize(
    ("group", "version"),
    [pytest.param("apps", "v2", id="unknown-version"), pytest.param("nope.io", "v1", id="unknown-group")],
)
def test_unknown_group_version(group: str, version: str) -> None:
    assert api_resource_list(group, version) is None


def test_api_versions_and_group_list() -> None:
    assert api_versions("10.0.0.1:6443") == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}],
    }
    groups = api_group_list()
    assert groups["kind"] == "APIGroupList"
    apps = next(g for g in groups["groups"] if g["name"] == "apps")
    assert apps["versions"] == [{"groupVersion": "apps/v1", "version": "v1"}]
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert all(g["name"] for g in groups["groups"])
    assert groups["groups"][0]["name"] == "apps"


@pytest.mark.parametrize("version", [pytest.param("v2", id="v2"), pytest.param("v2beta1", id="v2beta1")])
def test_aggregated_documents(version: str) -> None:
    core = aggregated_discovery(core=True, version=version)  # type: ignore[arg-type]
    named = aggregated_discovery(core=False, version=version)  # type: ignore[arg-type]
    assert core["apiVersion"] == named["apiVersion"] == f"apidiscovery.k8s.io/{version}"
    assert [i["metadata"]["name"] for i in core["items"]] == [""]
    assert "" not in [i["metadata"]["name"] for i in named["items"]]
    pods = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "pods")
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["scope"] == "Namespaced"
    assert pods["singularResource"] == "pod"
    assert pods["shortNames"] == ["po"]
    assert pods["categories"] == ["all"]
    eviction = next(s for s in pods["subresources"] if s["subresource"] == "eviction")
    assert eviction == {
        "subresource": "eviction",
        "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
        "verbs": ["create"],
    }
    apps = next(i for i in named["items"] if i["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    nodes = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"
    total = sum(len(v["resources"]) for doc in (core, named) for i in doc["items"] for v in i["versions"])
    assert total == len(RESOURCES)
    for doc in (core, named):
        for item in doc["items"]:
            for v in item["versions"]:
                assert all("responseKind" in r for r in v["resources"])


def test_version_info_and_content_types() -> None:
    info = version_info()
    assert (info["major"], info["minor"], info["gitVersion"]) == ("1", "33", "v1.33.0-raykube")
    assert info["platform"] == "linux/amd64"
    assert aggregated_content_type("v2beta1").endswith("v=v2beta1;as=APIGroupDiscoveryList")
    paths = served_group_versions()
    assert paths[0] == "api/v1"
    assert "apis/apps/v1" in paths and "apis/rbac.authorization.k8s.io/v1" in paths
