"""The admission chain as data: which plugins run, in which order, for which operations; and the
runner that threads the object through them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from cluster.apiserver.admission.chain import FIELD_MANAGER_BASELINE, admission_chain
from cluster.apiserver.admission.interfaces import (
    Admitted,
    Attributes,
    MutatingPlugin,
    Operation,
    Plugin,
    ValidatingPlugin,
    run,
)
from cluster.apiserver.admission.namespace_lifecycle import NamespaceLifecycle
from cluster.apiserver.errors import StatusError
from cluster.apiserver.resources import ResourceInfo, lookup

C, U, D, X = Operation.CREATE, Operation.UPDATE, Operation.DELETE, Operation.CONNECT
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeNamespaces:
    def __init__(self, **namespaces: dict[str, Any]) -> None:
        self.namespaces = namespaces

    async def get_namespace(self, name: str) -> dict[str, Any] | None:
        return self.namespaces.get(name)


class NoKeys:
    async def exists(self, key: str) -> bool:
        return False


CHAIN = admission_chain(FakeNamespaces(), NoKeys())


def resource(group: str, version: str, plural: str) -> ResourceInfo:
    info = lookup(group, version, plural)
    assert info is not None
    return info


def attrs(
    obj: dict[str, Any], info: ResourceInfo | None = None, namespace: str | None = "default"
) -> Attributes:
    return Attributes(C, info or resource("", "v1", "pods"), namespace, "p", obj, NOW)


def test_plugin_order() -> None:
    assert [p.NAME for p in CHAIN.before_validation] == [
        "NamespaceLifecycle",
        "Defaulting",
        "PodAdmissionDefaults",
        "DefaultTolerationSeconds",
        "DefaultStorageClass",
        "StorageObjectInUseProtection",
        "PodInitialStatus",
        "StorageStatus",
        "ServiceAllocatedValues",
        "CertificateSigningRequestStrategy",
        "GenerationField",
    ]
    assert [p.NAME for p in CHAIN.after_validation] == [
        "ObjectMetaSystemFields",
        "PodSchedulingGated",
        "JobSelector",
        "PersistentVolumeClaimResize",
        "NodeRestriction",
        "PodSecurity",
        "ServiceAllocation",
    ]
    assert [p.NAME for p in CHAIN.on_delete] == ["NodeRestriction"]
    assert FIELD_MANAGER_BASELINE == "Defaulting"


def test_plugin_order_with_lookups() -> None:
    """With the registry's lookups and ServiceAccounts, kube's order: LimitRanger's defaults,
    ServiceAccount and Priority before the defaults; LimitRanger's checks, NodeRestriction and
    PodSecurity after validation; ResourceQuota last (it charges the quota)."""
    assert [p.NAME for p in FULL.before_validation][:6] == [
        "NamespaceLifecycle",
        "Defaulting",
        "LimitRanger",
        "ServiceAccount",
        "Priority",
        "PodAdmissionDefaults",
    ]
    assert [p.NAME for p in FULL.after_validation][-6:] == [
        "PersistentVolumeClaimResize",
        "LimitRangerValidation",
        "NodeRestriction",
        "PodSecurity",
        "ServiceAllocation",
        "ResourceQuota",
    ]


FULL = admission_chain(FakeNamespaces(), NoKeys(), lookups=object(), service_accounts=object())  # type: ignore[arg-type]
PLUGINS = {p.NAME: p for p in (*FULL.before_validation, *FULL.after_validation)}


@pytest.mark.parametrize(
    ("name", "operations"),
    [
        pytest.param("NamespaceLifecycle", {C}, id="namespace-lifecycle"),
        pytest.param("Defaulting", {C, U}, id="defaulting"),
        pytest.param("PodAdmissionDefaults", {C}, id="pod-admission-defaults"),
        pytest.param("DefaultTolerationSeconds", {C}, id="default-toleration-seconds"),
        pytest.param("PodInitialStatus", {C}, id="pod-initial-status"),
        pytest.param("ServiceAllocatedValues", {U}, id="service-allocated-values"),
        pytest.param("GenerationField", {C, U}, id="generation-field"),
        pytest.param("ObjectMetaSystemFields", {C, U}, id="object-meta-system-fields"),
        pytest.param("PodSchedulingGated", {C}, id="pod-scheduling-gated"),
        pytest.param("JobSelector", {C}, id="job-selector"),
        pytest.param("DefaultStorageClass", {C}, id="default-storage-class"),
        pytest.param("StorageObjectInUseProtection", {C}, id="storage-object-in-use-protection"),
        pytest.param("StorageStatus", {C, U}, id="storage-status"),
        pytest.param("PersistentVolumeClaimResize", {U}, id="pvc-resize"),
        pytest.param("ServiceAllocation", {C}, id="service-allocation"),
        pytest.param("LimitRanger", {C}, id="limit-ranger"),
        pytest.param("LimitRangerValidation", {C, U}, id="limit-ranger-validation"),
        pytest.param("ServiceAccount", {C}, id="service-account"),
        pytest.param("Priority", {C, U}, id="priority"),
        pytest.param("NodeRestriction", {C, U, D}, id="node-restriction"),
        pytest.param("PodSecurity", {C, U}, id="pod-security"),
        pytest.param("ResourceQuota", {C, U}, id="resource-quota"),
        pytest.param("CertificateSigningRequestStrategy", {C, U}, id="csr-strategy"),
    ],
)
def test_handles(name: str, operations: set[Operation]) -> None:
    plugin = PLUGINS[name]
    assert {op for op in (C, U, D, X) if plugin.handles(op)} == operations


def test_every_plugin_has_a_handles_case() -> None:
    assert len(PLUGINS) == 23


class Append(MutatingPlugin):
    NAME: ClassVar[str] = "Append"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({C})

    def __init__(self, item: str, reserve: tuple[str, ...] = ()) -> None:
        self.item, self.reserve = item, reserve

    async def admit(self, attrs: Attributes) -> Admitted:
        attrs.object.setdefault("seen", []).append(self.item)
        return Admitted(attrs.object, self.reserve)


class Marked(Append):
    NAME: ClassVar[str] = "Marked"


class UpdateOnly(Append):
    NAME: ClassVar[str] = "UpdateOnly"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({U})


class Reject(ValidatingPlugin):
    NAME: ClassVar[str] = "Reject"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({C})

    async def validate(self, attrs: Attributes) -> None:
        raise StatusError(403, "Forbidden", f"seen {attrs.object.get('seen')}")


def test_run_threads_the_object_and_keeps_the_baseline() -> None:
    plugins: list[Plugin] = [Append("a", ("k1",)), Marked("b"), UpdateOnly("x"), Append("c", ("k2",))]
    result = asyncio.run(run(plugins, attrs({}), baseline_after="Marked"))
    assert result.object == {"seen": ["a", "b", "c"]}
    assert result.baseline == {"seen": ["a", "b"]}  # a copy: later plugins changed the object in place
    assert result.reserve == ("k1", "k2")
    assert asyncio.run(run(plugins, attrs({}))).baseline is None


def test_the_first_rejection_ends_the_chain() -> None:
    plugins: list[Plugin] = [Append("a"), Reject(), Append("b")]
    with pytest.raises(StatusError, match=r"seen \['a'\]"):
        asyncio.run(run(plugins, attrs({})))


@pytest.mark.parametrize(
    ("namespaces", "info", "namespace", "code"),
    [
        pytest.param({"default": {"status": {"phase": "Active"}}}, None, "default", None, id="active"),
        pytest.param({}, None, "default", 404, id="missing"),
        pytest.param({"default": {"status": {"phase": "Terminating"}}}, None, "default", 403, id="ending"),
        pytest.param(
            {"default": {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}},
            None,
            "default",
            403,
            id="deletion-timestamp",
        ),
        pytest.param({}, resource("", "v1", "nodes"), None, None, id="cluster-scoped"),
    ],
)
def test_namespace_lifecycle(
    namespaces: dict[str, dict[str, Any]], info: ResourceInfo | None, namespace: str | None, code: int | None
) -> None:
    plugin = NamespaceLifecycle(FakeNamespaces(**namespaces))
    check = plugin.validate(attrs({}, info, namespace))
    if code is None:
        asyncio.run(check)
        return
    with pytest.raises(StatusError) as caught:
        asyncio.run(check)
    assert caught.value.code == code
