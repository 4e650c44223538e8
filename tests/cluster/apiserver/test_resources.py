"""The resource registry carries the values a real kube-apiserver publishes."""

from __future__ import annotations

import pytest

from cluster.apiserver.resources import RESOURCES, by_kind, groups, lookup, resources_in


@pytest.mark.parametrize(
    ("group", "plural", "kind", "namespaced", "short", "categories"),
    [
        pytest.param("", "pods", "Pod", True, ("po",), ("all",), id="pods"),
        pytest.param("", "services", "Service", True, ("svc",), ("all",), id="services"),
        pytest.param("", "configmaps", "ConfigMap", True, ("cm",), (), id="configmaps"),
        pytest.param("", "namespaces", "Namespace", False, ("ns",), (), id="namespaces"),
        pytest.param("", "nodes", "Node", False, ("no",), (), id="nodes"),
        pytest.param("", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), (), id="pvc"),
        pytest.param("", "persistentvolumes", "PersistentVolume", False, ("pv",), (), id="pv"),
        pytest.param("", "serviceaccounts", "ServiceAccount", True, ("sa",), (), id="sa"),
        pytest.param("", "events", "Event", True, ("ev",), (), id="core-events"),
        pytest.param("events.k8s.io", "events", "Event", True, ("ev",), (), id="events-group"),
        pytest.param("", "secrets", "Secret", True, (), (), id="secrets"),
        pytest.param("", "resourcequotas", "ResourceQuota", True, ("quota",), (), id="quota"),
        pytest.param("", "limitranges", "LimitRange", True, ("limits",), (), id="limitranges"),
        pytest.param("apps", "deployments", "Deployment", True, ("deploy",), ("all",), id="deployments"),
        pytest.param("apps", "statefulsets", "StatefulSet", True, ("sts",), ("all",), id="statefulsets"),
        pytest.param("apps", "daemonsets", "DaemonSet", True, ("ds",), ("all",), id="daemonsets"),
        pytest.param("apps", "replicasets", "ReplicaSet", True, ("rs",), ("all",), id="replicasets"),
        pytest.param("batch", "cronjobs", "CronJob", True, ("cj",), ("all",), id="cronjobs"),
        pytest.param("batch", "jobs", "Job", True, (), ("all",), id="jobs"),
        pytest.param("networking.k8s.io", "ingresses", "Ingress", True, ("ing",), (), id="ingresses"),
        pytest.param(
            "networking.k8s.io", "networkpolicies", "NetworkPolicy", True, ("netpol",), (), id="netpol"
        ),
        pytest.param(
            "discovery.k8s.io", "endpointslices", "EndpointSlice", True, (), (), id="endpointslices"
        ),
        pytest.param("policy", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), (), id="pdb"),
        pytest.param("scheduling.k8s.io", "priorityclasses", "PriorityClass", False, ("pc",), (), id="pc"),
        pytest.param("storage.k8s.io", "storageclasses", "StorageClass", False, ("sc",), (), id="sc"),
        pytest.param("storage.k8s.io", "csidrivers", "CSIDriver", False, (), (), id="csidrivers"),
        pytest.param("storage.k8s.io", "csinodes", "CSINode", False, (), (), id="csinodes"),
        pytest.param(
            "storage.k8s.io", "volumeattachments", "VolumeAttachment", False, (), (), id="volumeattachments"
        ),
        pytest.param(
            "storage.k8s.io", "csistoragecapacities", "CSIStorageCapacity", True, (), (), id="csisc"
        ),
        pytest.param(
            "rbac.authorization.k8s.io", "clusterroles", "ClusterRole", False, (), (), id="clusterroles"
        ),
        pytest.param("coordination.k8s.io", "leases", "Lease", True, (), (), id="leases"),
    ],
)
def test_known_kubernetes_values(
    group: str, plural: str, kind: str, namespaced: bool, short: tuple[str, ...], categories: tuple[str, ...]
) -> None:
    info = lookup(group, "v1", plural)
    assert info is not None
    assert (info.kind, info.namespaced, info.short_names, info.categories) == (
        kind,
        namespaced,
        short,
        categories,
    )
    assert info.list_kind == f"{kind}List"
    assert info.singular == kind.lower()


@pytest.mark.parametrize(
    ("group", "plural", "sub", "expected"),
    [
        pytest.param("", "pods", "eviction", ("Eviction", "policy", "v1", ("create",)), id="pods-eviction"),
        pytest.param("", "pods", "binding", ("Binding", "", "v1", ("create",)), id="pods-binding"),
        pytest.param("", "pods", "log", ("Pod", "", "v1", ("get",)), id="pods-log"),
        pytest.param("", "pods", "exec", ("PodExecOptions", "", "v1", ("create", "get")), id="pods-exec"),
        pytest.param("", "pods", "status", ("Pod", "", "v1", ("get", "patch", "update")), id="pods-status"),
        pytest.param(
            "",
            "serviceaccounts",
            "token",
            ("TokenRequest", "authentication.k8s.io", "v1", ("create",)),
            id="sa-token",
        ),
        pytest.param("", "namespaces", "finalize", ("Namespace", "", "v1", ("update",)), id="ns-finalize"),
        pytest.param(
            "storage.k8s.io",
            "volumeattachments",
            "status",
            ("VolumeAttachment", "storage.k8s.io", "v1", ("get", "patch", "update")),
            id="va-status",
        ),
        pytest.param(
            "apps",
            "deployments",
            "scale",
            ("Scale", "autoscaling", "v1", ("get", "patch", "update")),
            id="deploy-scale",
        ),
        pytest.param(
            "apps",
            "statefulsets",
            "scale",
            ("Scale", "autoscaling", "v1", ("get", "patch", "update")),
            id="sts-scale",
        ),
        pytest.param(
            "apps",
            "replicasets",
            "scale",
            ("Scale", "autoscaling", "v1", ("get", "patch", "update")),
            id="rs-scale",
        ),
        pytest.param(
            "apps",
            "daemonsets",
            "status",
            ("DaemonSet", "apps", "v1", ("get", "patch", "update")),
            id="ds-status",
        ),
        pytest.param(
            "batch",
            "cronjobs",
            "status",
            ("CronJob", "batch", "v1", ("get", "patch", "update")),
            id="cj-status",
        ),
    ],
)
def test_subresources(
    group: str, plural: str, sub: str, expected: tuple[str, str, str, tuple[str, ...]]
) -> None:
    info = lookup(group, "v1", plural)
    assert info is not None
    found = info.subresource(sub)
    assert found is not None
    assert (found.kind, found.group, found.version, found.verbs) == expected


@pytest.mark.parametrize(
    ("group", "plural", "verbs"),
    [
        pytest.param("authorization.k8s.io", "selfsubjectaccessreviews", ("create",), id="ssar"),
        pytest.param("authorization.k8s.io", "selfsubjectrulesreviews", ("create",), id="ssrr"),
        pytest.param(
            "",
            "namespaces",
            ("create", "delete", "get", "list", "patch", "update", "watch"),
            id="namespaces-no-deletecollection",
        ),
        pytest.param(
            "",
            "pods",
            ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
            id="pods-all",
        ),
    ],
)
def test_verbs(group: str, plural: str, verbs: tuple[str, ...]) -> None:
    info = lookup(group, "v1", plural)
    assert info is not None and info.verbs == verbs


@pytest.mark.parametrize(
    ("api_version", "kind", "plural"),
    [
        pytest.param("v1", "Pod", "pods", id="core"),
        pytest.param("apps/v1", "Deployment", "deployments", id="apps"),
        pytest.param("events.k8s.io/v1", "Event", "events", id="events-group"),
        pytest.param("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", id="rbac"),
    ],
)
def test_by_kind(api_version: str, kind: str, plural: str) -> None:
    info = by_kind(api_version, kind)
    assert info is not None
    assert (info.plural, info.api_version, info.group_version) == (plural, api_version, api_version)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(lambda: lookup("apps", "v1", "pods"), None, id="wrong-group"),
        pytest.param(lambda: lookup("", "v2", "pods"), None, id="wrong-version"),
        pytest.param(lambda: by_kind("v1", "Deployment"), None, id="wrong-api-version"),
    ],
)
def test_unknown_lookups(call: object, expected: object) -> None:
    assert callable(call)
    assert call() is expected


def test_groups_in_discovery_order() -> None:
    names = [g for g, _ in groups()]
    assert names[:3] == ["", "apps", "events.k8s.io"]
    assert names.index("batch") < names.index("networking.k8s.io") < names.index("rbac.authorization.k8s.io")
    assert set(names) == {r.group for r in RESOURCES}
    assert all(versions == ["v1"] for _, versions in groups())


def test_registry_is_unique_and_sorted_within_groups() -> None:
    assert len({(r.group, r.version, r.plural) for r in RESOURCES}) == len(RESOURCES)
    assert len({(r.group, r.version, r.kind) for r in RESOURCES}) == len(RESOURCES)
    for group, versions in groups():
        plurals = [r.plural for r in resources_in(group, versions[0])]
        assert plurals == sorted(plurals)
    for r in RESOURCES:
        assert [s.name for s in r.subresources] == sorted(s.name for s in r.subresources)
