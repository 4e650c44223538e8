"""Storage admission through the registry: the default class, the protection finalizers, the status a
new PV/PVC/VolumeAttachment starts with, and the resize gate (kube-apiserver's DefaultStorageClass,
StorageObjectInUseProtection and PersistentVolumeClaimResize)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.apiserver.admission.storage import default_class
from cluster.apiserver.errors import StatusError
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import ResourceInfo, lookup
from cluster.apiserver.storage import ObjectStore
from tests.cluster.apiserver.faulty_store import FaultyStore

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DEFAULT = {"storageclass.kubernetes.io/is-default-class": "true"}


def info(group: str, plural: str) -> ResourceInfo:
    found = lookup(group, "v1", plural)
    assert found is not None
    return found


PVCS, PVS, SCS = (
    info("", "persistentvolumeclaims"),
    info("", "persistentvolumes"),
    info("storage.k8s.io", "storageclasses"),
)
VAS = info("storage.k8s.io", "volumeattachments")


class Cluster:
    """A registry over an in-memory store, with a clock the test moves."""

    def __init__(self) -> None:
        store = FaultyStore()
        store.put_object("/registry/namespaces/default", {"metadata": {"name": "default"}, "status": {}})
        self.now = T0
        self.registry = Registry(ObjectStore(store), clock=lambda: self.now)  # type: ignore[arg-type]

    def run(self, coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
        return asyncio.run(coro)

    def storage_class(
        self, name: str, *, default: bool = False, expand: bool | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name, **({"annotations": dict(DEFAULT)} if default else {})},
            "provisioner": "hostpath.csi.raykube.io",
        }
        if expand is not None:
            body["allowVolumeExpansion"] = expand
        created = self.run(self.registry.create(SCS, None, body))
        self.now += timedelta(seconds=1)
        return created

    def claim(self, name: str = "data", **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, **spec},
            "status": {"phase": "Bound"},
        }
        return self.run(self.registry.create(PVCS, "default", body))

    def update_claim(self, pvc: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
        name = pvc["metadata"]["name"]
        return self.run(self.registry.update(PVCS, "default", name, pvc, subresource=subresource))


def test_a_claim_without_a_class_gets_the_default_one() -> None:
    cluster = Cluster()
    cluster.storage_class("slow")
    cluster.storage_class("standard", default=True)
    assert cluster.claim()["spec"]["storageClassName"] == "standard"
    # "" asks for no class, a named class is kept, and so is the beta annotation.
    assert cluster.claim("none", storageClassName="")["spec"]["storageClassName"] == ""
    assert cluster.claim("named", storageClassName="slow")["spec"]["storageClassName"] == "slow"


def test_without_a_default_class_the_claim_keeps_none() -> None:
    cluster = Cluster()
    cluster.storage_class("slow")
    assert "storageClassName" not in cluster.claim()["spec"]


def test_of_two_default_classes_the_newest_wins() -> None:
    cluster = Cluster()
    cluster.storage_class("old", default=True)
    cluster.storage_class("new", default=True)
    assert cluster.claim()["spec"]["storageClassName"] == "new"


def test_same_age_defaults_go_by_name() -> None:
    stamp = {"creationTimestamp": "2026-01-02T03:04:05Z"}
    classes = [
        {"metadata": {"name": n, "annotations": dict(DEFAULT), **stamp}} for n in ("zeta", "alpha", "mid")
    ]
    chosen = default_class(classes)
    assert chosen is not None and chosen["metadata"]["name"] == "alpha"


def test_new_claims_and_volumes_carry_protection_and_start_pending() -> None:
    cluster = Cluster()
    pvc = cluster.claim()
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert pvc["status"] == {"phase": "Pending"}
    assert pvc["spec"]["volumeMode"] == "Filesystem"
    pv_body = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv1", "finalizers": ["example.com/keep"]},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/srv/pv1"},
        },
        "status": {"phase": "Bound"},
    }
    pv = cluster.run(cluster.registry.create(PVS, None, pv_body))
    assert pv["metadata"]["finalizers"] == ["example.com/keep", "kubernetes.io/pv-protection"]
    assert pv["status"] == {"phase": "Pending", "lastPhaseTransitionTime": "2026-01-02T03:04:05Z"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    # A phase change through status stamps the transition time; the same phase keeps the stamp.
    cluster.now += timedelta(minutes=5)
    bound = copy.deepcopy(pv)
    bound["status"] = {"phase": "Bound"}
    bound = cluster.run(cluster.registry.update(PVS, None, "pv1", bound, subresource="status"))
    assert bound["status"] == {"phase": "Bound", "lastPhaseTransitionTime": "2026-01-02T03:09:05Z"}
    cluster.now += timedelta(minutes=5)
    again = copy.deepcopy(bound)
    again["status"] = {"phase": "Bound", "message": "still"}
    again = cluster.run(cluster.registry.update(PVS, None, "pv1", again, subresource="status"))
    assert again["status"]["lastPhaseTransitionTime"] == "2026-01-02T03:09:05Z"


def test_a_new_volume_attachment_is_not_attached() -> None:
    cluster = Cluster()
    body = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": {"name": "csi-1"},
        "spec": {"attacher": "a.csi.example", "nodeName": "n1", "source": {"persistentVolumeName": "pv1"}},
        "status": {"attached": True},
    }
    va = cluster.run(cluster.registry.create(VAS, None, body))
    assert va["status"] == {"attached": False}


def bind(cluster: Cluster, pvc: dict[str, Any]) -> dict[str, Any]:
    """What the PV controller does: volumeName on the spec, then Bound with a capacity on status."""
    pvc = cluster.update_claim({**pvc, "spec": {**pvc["spec"], "volumeName": "pv1"}})
    pvc = copy.deepcopy(pvc)
    pvc["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}
    return cluster.update_claim(pvc, subresource="status")


def grow(pvc: dict[str, Any], size: str) -> dict[str, Any]:
    out = copy.deepcopy(pvc)
    out["spec"]["resources"]["requests"]["storage"] = size
    return out


@pytest.mark.parametrize(
    ("expand", "message"),
    [
        pytest.param(True, None, id="class-allows"),
        pytest.param(
            False,
            'persistentvolumeclaims "data" is forbidden: only dynamically provisioned pvc can be resized and '
            "the storageclass that provisions the pvc must support resize",
            id="class-refuses",
        ),
        pytest.param(
            None,
            'persistentvolumeclaims "data" is forbidden: only dynamically provisioned pvc can be resized and '
            "the storageclass that provisions the pvc must support resize",
            id="class-silent",
        ),
    ],
)
def test_a_bound_claim_grows_only_when_its_class_allows(expand: bool | None, message: str | None) -> None:
    cluster = Cluster()
    cluster.storage_class("standard", default=True, expand=expand)
    pvc = bind(cluster, cluster.claim())
    if message is None:
        assert cluster.update_claim(grow(pvc, "2Gi"))["spec"]["resources"]["requests"]["storage"] == "2Gi"
        return
    with pytest.raises(StatusError) as refused:
        cluster.update_claim(grow(pvc, "2Gi"))
    assert (refused.value.code, refused.value.message) == (403, message)


def test_shrinking_is_refused_by_validation() -> None:
    cluster = Cluster()
    cluster.storage_class("standard", default=True, expand=True)
    pvc = bind(cluster, cluster.claim())
    with pytest.raises(StatusError) as refused:
        cluster.update_claim(grow(pvc, "500Mi"))
    assert refused.value.code == 422
    assert refused.value.message == (
        'PersistentVolumeClaim "data" is invalid: spec.resources.requests.storage: Forbidden: '
        "field can not be less than status.capacity"
    )
