"""The ReplicaSet controller through real kubectl 1.33 against `raykube up`, with pods really running.

A ReplicaSet of 3 busybox pods gets 3 Running and Ready pods it controls; `kubectl scale` to 5 and then
to 1 leaves exactly that many; a matching orphan pod is adopted and a relabelled pod released (and
replaced); `kubectl describe rs` shows the SuccessfulCreate and SuccessfulDelete events. Which pods a
scale-down picks is the unit tests' business (tests/cluster/controllers/replicaset).

Every wait polls kubectl until the outcome shows or a deadline passes with a message saying what was
awaited and what was last seen.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import Kubectl

pytestmark = pytest.mark.integration

WAIT = 120.0


wait_until = functools.partial(support.wait_until, timeout=WAIT)


def replicaset(name: str, replicas: int, app: str) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {
                        "terminationGracePeriodSeconds": 2,
                        "containers": [
                            {"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 3600"]}
                        ],
                    },
                },
            },
        }
    )


def bare_pod(name: str, app: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {
                "terminationGracePeriodSeconds": 2,
                "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 3600"]}],
            },
        }
    )


def controller_uid(pod: dict[str, Any]) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def owned(kubectl: Kubectl, rs_uid: str) -> list[dict[str, Any]]:
    """The pods the ReplicaSet controls that are not being deleted."""
    pods = kubectl.json("get", "pods")["items"]
    return [p for p in pods if controller_uid(p) == rs_uid and not p["metadata"].get("deletionTimestamp")]


def exactly(kubectl: Kubectl, rs_uid: str, count: int, *, running: bool) -> list[dict[str, Any]] | None:
    pods = owned(kubectl, rs_uid)
    if len(pods) != count:
        return None
    if running and not all(p["status"].get("phase") == "Running" and is_ready(p) for p in pods):
        return None
    return pods


def test_replicaset_runs_scales_and_reports(kubectl: Kubectl) -> None:
    kubectl.apply(replicaset("web", 3, "web"))
    uid = kubectl.json("get", "rs", "web")["metadata"]["uid"]

    pods = wait_until(lambda: exactly(kubectl, uid, 3, running=True), "3 Running and Ready pods of rs/web")
    for pod in pods:
        assert pod["metadata"]["name"].startswith("web-")
        assert pod["metadata"]["labels"]["app"] == "web"
        (ref,) = pod["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def available_status() -> dict[str, Any] | None:
        status: dict[str, Any] = kubectl.json("get", "rs", "web").get("status") or {}
        return status if status.get("availableReplicas") == 3 else None

    status = wait_until(available_status, "rs/web status availableReplicas 3")
    assert (status["replicas"], status["fullyLabeledReplicas"], status["readyReplicas"]) == (3, 3, 3)
    assert status["observedGeneration"] == kubectl.json("get", "rs", "web")["metadata"]["generation"]

    kubectl.run("scale", "rs/web", "--replicas=5")
    wait_until(lambda: exactly(kubectl, uid, 5, running=True), "rs/web scaled up to 5 Running pods")

    kubectl.run("scale", "rs/web", "--replicas=1")
    wait_until(lambda: exactly(kubectl, uid, 1, running=True), "rs/web scaled down to exactly 1 pod")
    wait_until(
        lambda: len([p for p in kubectl.json("get", "pods")["items"] if controller_uid(p) == uid]) == 1,
        "the 4 surplus pods to finish terminating",
    )
    wait_until(
        lambda: kubectl.json("get", "rs", "web")["status"].get("replicas") == 1, "rs/web status replicas 1"
    )

    def describe_with_deletes() -> str | None:
        out = kubectl.out("describe", "rs", "web")
        return out if "SuccessfulDelete" in out else None

    described = wait_until(describe_with_deletes, "the SuccessfulDelete events in kubectl describe rs")
    assert "SuccessfulCreate" in described and "Created pod: web-" in described
    assert "Deleted pod: web-" in described
    assert "replicaset-controller" in described


def test_replicaset_adopts_an_orphan_and_releases_a_relabelled_pod(kubectl: Kubectl) -> None:
    kubectl.apply(bare_pod("stray", "claim"))
    kubectl.apply(replicaset("claim", 2, "claim"))
    uid = kubectl.json("get", "rs", "claim")["metadata"]["uid"]

    wait_until(lambda: controller_uid(kubectl.json("get", "pod", "stray")) == uid, "pod/stray adopted")
    pods = wait_until(lambda: exactly(kubectl, uid, 2, running=True), "2 Running pods of rs/claim")
    assert "stray" in {p["metadata"]["name"] for p in pods}  # adopted, so only one pod was created

    kubectl.run("label", "pod", "stray", "app=released", "--overwrite")
    wait_until(lambda: controller_uid(kubectl.json("get", "pod", "stray")) is None, "pod/stray released")
    pods = wait_until(lambda: exactly(kubectl, uid, 2, running=True), "a replacement for the released pod")
    assert "stray" not in {p["metadata"]["name"] for p in pods}
    stray = kubectl.json("get", "pod", "stray")
    assert stray["status"]["phase"] == "Running"  # released, not deleted
    assert not stray["metadata"].get("deletionTimestamp")
