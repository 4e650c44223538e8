"""Builders for StatefulSet unit tests: sets, their pods in a given state, claims and revisions."""

from __future__ import annotations

import copy
from typing import Any

from cluster.controllers.statefulset import identity, revisions
from cluster.controllers.statefulset.plan import Revisions
from tests.cluster.controllers.fakes import T0

LABELS = {"app": "db"}
TEMPLATE = {
    "metadata": {"labels": dict(LABELS)},
    "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
}


def make_sts(
    replicas: int = 3,
    *,
    parallel: bool = False,
    strategy: dict[str, Any] | None = None,
    claims: tuple[str, ...] = (),
    retention: tuple[str, str] | None = None,
    min_ready: int = 0,
    image: str = "busybox",
    start: int | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    template = copy.deepcopy(TEMPLATE)
    template["spec"]["containers"][0]["image"] = image
    spec: dict[str, Any] = {
        "replicas": replicas,
        "serviceName": "db-svc",
        "selector": {"matchLabels": dict(LABELS)},
        "template": template,
        "podManagementPolicy": "Parallel" if parallel else "OrderedReady",
        "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "revisionHistoryLimit": 10,
    }
    if claims:
        spec["volumeClaimTemplates"] = [
            {"metadata": {"name": c}, "spec": {"accessModes": ["ReadWriteOnce"]}} for c in claims
        ]
    if retention:
        spec["persistentVolumeClaimRetentionPolicy"] = {
            "whenScaled": retention[0],
            "whenDeleted": retention[1],
        }
    if min_ready:
        spec["minReadySeconds"] = min_ready
    if start is not None:
        spec["ordinals"] = {"start": start}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "ns", "uid": "sts-uid", "generation": 1},
        "spec": spec,
        "status": status or {},
    }


def revs(current: dict[str, Any], update: dict[str, Any] | None = None) -> Revisions:
    """Revisions named ``rev-<image>`` from the templates of the given sets."""
    update = update or current
    cur_t, upd_t = current["spec"]["template"], update["spec"]["template"]
    return Revisions(
        current_name=f"rev-{cur_t['spec']['containers'][0]['image']}",
        current_template=cur_t,
        update_name=f"rev-{upd_t['spec']['containers'][0]['image']}",
        update_template=upd_t,
    )


def make_pod(
    sts: dict[str, Any],
    ordinal: int,
    state: str = "ready",
    *,
    revision: str = "rev-busybox",
    ready_at: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    """A pod of ``sts`` as the API server holds it; state: pending | running | ready | failed |
    succeeded | terminating | terminating-ready."""
    pod = identity.new_pod(sts, sts["spec"]["template"], ordinal, revision)
    pod["metadata"]["uid"] = f"pod-uid-{ordinal}"
    phase = {"pending": "Pending", "failed": "Failed", "succeeded": "Succeeded"}.get(state, "Running")
    ready = state in ("ready", "terminating-ready")
    pod["status"] = {
        "phase": phase,
        "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_at}
        ],
    }
    if state.startswith("terminating"):
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return pod


def make_claim(name: str, owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"claim-{name}"}
    if owners:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": {}}


def ref(kind: str, name: str, uid: str, api_version: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": api_version or ("apps/v1" if kind == "StatefulSet" else "v1"),
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def stored_revision(sts: dict[str, Any], number: int, created: str = "") -> dict[str, Any]:
    rev = revisions.new_revision(sts, number, 0)
    rev["metadata"]["creationTimestamp"] = created or f"2026-01-01T00:00:0{number}Z"
    return rev


NOW = T0
