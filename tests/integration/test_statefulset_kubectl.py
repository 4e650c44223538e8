"""The StatefulSet controller through real kubectl 1.33 against `raykube up`, with pods really running.

A StatefulSet ``db`` of 3 busybox pods whose readiness probe passes only a few seconds after start:

* db-0, db-1, db-2 are created in order, each only once its predecessor is Ready (each pod's
  creationTimestamp is not before the previous pod's Ready transition);
* each pod's hostname is its name; a deleted db-1 comes back as db-1 with a new uid;
* ``kubectl scale sts db --replicas=1`` removes db-2, then db-1 (sampled: db-1 never goes while db-2
  is still there);
* a template change (``kubectl set env``) replaces the pods in descending ordinal order and
  ``kubectl rollout status`` completes;
* volumeClaimTemplates give claims ``data-db-<ordinal>`` that outlive a scale-down to 0.

Which pod goes first in every corner case is the unit tests' business (tests/cluster/controllers/
statefulset); every wait here polls kubectl until the outcome shows or a deadline passes.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import Kubectl

pytestmark = pytest.mark.integration

WAIT = 180.0
READY_DELAY = 3  # seconds after start before a pod's readiness probe first passes


wait_until = functools.partial(support.wait_until, timeout=WAIT)


def statefulset(replicas: int, *, claims: bool = False, parallel: bool = False, name: str = "db") -> str:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "serviceName": name,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "terminationGracePeriodSeconds": 2,
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["sh", "-c", "sleep 3600"],
                        "readinessProbe": {
                            "exec": {"command": ["true"]},
                            "initialDelaySeconds": READY_DELAY,
                            "periodSeconds": 1,
                        },
                    }
                ],
            },
        },
    }
    if parallel:
        spec["podManagementPolicy"] = "Parallel"
    if claims:
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
            }
        ]
    return json.dumps(
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": spec}
    )


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def ready_since(pod: dict[str, Any]) -> datetime | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return when(c["lastTransitionTime"])
    return None


def pods_by_name(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in kubectl.json("get", "pods", "-l", "app=db")["items"]}


def all_ready(kubectl: Kubectl, names: list[str]) -> dict[str, dict[str, Any]] | None:
    pods = pods_by_name(kubectl)
    if sorted(pods) != sorted(names):
        return None
    live = all(not p["metadata"].get("deletionTimestamp") and ready_since(p) for p in pods.values())
    return pods if live else None


def event_messages(kubectl: Kubectl, name: str = "db") -> list[str]:
    events = kubectl.json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [e.get("message", "") for e in events]


def test_statefulset_order_identity_scale_down_and_rollout(kubectl: Kubectl) -> None:
    kubectl.apply(statefulset(3))
    sts_uid = kubectl.json("get", "sts", "db")["metadata"]["uid"]
    pods = wait_until(lambda: all_ready(kubectl, ["db-0", "db-1", "db-2"]), "db-0..2 Running and Ready")

    # ordered: db-(n+1) exists only once db-n is Ready (seconds resolution on both sides)
    for lower, higher in (("db-0", "db-1"), ("db-1", "db-2")):
        became_ready = ready_since(pods[lower])
        created = when(pods[higher]["metadata"]["creationTimestamp"])
        assert became_ready is not None and created >= became_ready, (
            f"{higher} created at {created} before {lower} was Ready at {became_ready}"
        )
    for name, pod in pods.items():
        (ref,) = pod["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "StatefulSet",
            "db",
            sts_uid,
            True,
        )
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == name
        assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == name.split("-")[1]
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "db"
    assert kubectl.out("exec", "db-1", "--", "hostname").strip() == "db-1"

    def status_settled() -> dict[str, Any] | None:
        status: dict[str, Any] = kubectl.json("get", "sts", "db").get("status") or {}
        return status if status.get("availableReplicas") == 3 and status.get("currentReplicas") == 3 else None

    status = wait_until(status_settled, "sts/db status with 3 available replicas")
    assert status["readyReplicas"] == status["updatedReplicas"] == status["replicas"] == 3
    assert status["currentRevision"] == status["updateRevision"]
    assert status["currentRevision"] == pods["db-0"]["metadata"]["labels"]["controller-revision-hash"]
    original_revision = status["currentRevision"]
    revisions = kubectl.json("get", "controllerrevisions")["items"]
    assert [r["metadata"]["name"] for r in revisions] == [original_revision]
    messages = event_messages(kubectl)
    for i in range(3):
        assert f"create Pod db-{i} in StatefulSet db successful" in messages

    # a deleted pod returns with the same name (and a new uid)
    old_uid = pods["db-1"]["metadata"]["uid"]
    kubectl.run("delete", "pod", "db-1", "--wait=false")
    back = wait_until(
        lambda: (
            (p := all_ready(kubectl, ["db-0", "db-1", "db-2"]))
            and p["db-1"]["metadata"]["uid"] != old_uid
            and p
        ),
        "db-1 to come back Ready with a new uid",
    )
    assert back["db-1"]["spec"]["hostname"] == "db-1"

    # a template change rolls the pods from the highest ordinal down
    uids = {n: p["metadata"]["uid"] for n, p in back.items()}
    kubectl.run("set", "env", "sts/db", "ROUND=2")
    replaced: list[str] = []

    def rolled() -> bool:
        now = pods_by_name(kubectl)
        for name, uid in uids.items():
            pod = now.get(name)
            if name not in replaced and (
                pod is None or pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp")
            ):
                replaced.append(name)
        return len(replaced) == 3 and all_ready(kubectl, list(uids)) is not None

    wait_until(rolled, "the rolling update to replace all 3 pods")
    assert replaced == ["db-2", "db-1", "db-0"]
    kubectl.run("rollout", "status", "statefulset/db", "--timeout=120s", timeout=150)
    status = kubectl.json("get", "sts", "db")["status"]
    assert status["currentRevision"] == status["updateRevision"]
    assert len(kubectl.json("get", "controllerrevisions")["items"]) == 2
    for pod in pods_by_name(kubectl).values():
        env = pod["spec"]["containers"][0].get("env") or []
        assert {"name": "ROUND", "value": "2"} in env

    # kubectl reads the ControllerRevisions: history lists both, undo goes back to the first template
    # (its revision is renumbered 3, no third revision is made)
    round2_revision = status["currentRevision"]
    assert round2_revision != original_revision
    history = kubectl.out("rollout", "history", "statefulset/db")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    kubectl.run("rollout", "undo", "statefulset/db")

    def rolled_back() -> dict[str, Any] | None:
        status: dict[str, Any] = kubectl.json("get", "sts", "db").get("status") or {}
        if (
            status.get("updateRevision") == status.get("currentRevision")
            and status.get("updatedReplicas") == 3
        ):
            pods = all_ready(kubectl, ["db-0", "db-1", "db-2"])
            if pods and not any(p["spec"]["containers"][0].get("env") for p in pods.values()):
                return status
        return None

    status = wait_until(rolled_back, "rollout undo to bring back the first template on all pods")
    revisions = {
        r["metadata"]["name"]: r["revision"] for r in kubectl.json("get", "controllerrevisions")["items"]
    }
    assert len(revisions) == 2
    assert status["currentRevision"] == original_revision
    assert revisions == {original_revision: 3, round2_revision: 2}

    # scale down: db-2 goes first, db-1 only once db-2 is gone
    kubectl.run("scale", "sts", "db", "--replicas=1")
    violations: list[str] = []

    def scaled_down() -> bool:
        now = pods_by_name(kubectl)
        going_1 = "db-1" not in now or bool(now["db-1"]["metadata"].get("deletionTimestamp"))
        if going_1 and "db-2" in now:
            violations.append(f"db-1 going while db-2 present: {sorted(now)}")
        return sorted(now) == ["db-0"]

    wait_until(scaled_down, "sts/db scaled down to db-0")
    assert violations == []
    messages = event_messages(kubectl)
    assert "delete Pod db-2 in StatefulSet db successful" in messages
    assert "delete Pod db-1 in StatefulSet db successful" in messages


def test_statefulset_claims_outlive_scale_down(kubectl: Kubectl) -> None:
    kubectl.apply(statefulset(2, claims=True, parallel=True))

    def claims() -> list[str]:
        return sorted(c["metadata"]["name"] for c in kubectl.json("get", "pvc")["items"])

    wait_until(lambda: claims() == ["data-db-0", "data-db-1"], "claims data-db-0 and data-db-1")
    pods = wait_until(
        lambda: (p := pods_by_name(kubectl)) and sorted(p) == ["db-0", "db-1"] and p, "pods db-0, db-1"
    )
    for name, pod in pods.items():
        volumes = pod["spec"].get("volumes") or []
        assert {"name": "data", "persistentVolumeClaim": {"claimName": f"data-{name}"}} in volumes
    for claim in kubectl.json("get", "pvc")["items"]:
        assert claim["metadata"]["labels"] == {"app": "db"}
        assert not claim["metadata"].get("ownerReferences")
    assert "create Claim data-db-0 Pod db-0 in StatefulSet db success" in event_messages(kubectl)

    kubectl.run("scale", "sts", "db", "--replicas=0")
    wait_until(lambda: not pods_by_name(kubectl), "sts/db scaled down to no pods")
    assert claims() == ["data-db-0", "data-db-1"]
