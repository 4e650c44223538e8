"""The Deployment controller through real kubectl 1.33 against `raykube up`, with pods really running.

A Deployment of 3 becomes available (`kubectl rollout status` exits 0); a template change with
maxUnavailable 0 rolls out while a `kubectl get pods -w` watch never sees fewer than 3 ready pods;
`kubectl rollout history` lists both revisions and `kubectl rollout undo` brings the first template
back (in the same ReplicaSet, now revision 3); `kubectl scale` to 5 and 2; `kubectl rollout restart`
rolls new pods carrying the restartedAt annotation; `rollout pause` holds a template change until
`rollout resume`; `kubectl describe deploy` shows the ScalingReplicaSet events; `kubectl delete`
removes the ReplicaSet and pods through the garbage collector, `--cascade=orphan` keeps them.

The rollout arithmetic itself is the unit tests' business (tests/cluster/controllers). Every wait polls
until the outcome shows or a deadline passes with a message saying what was awaited.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
import time
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import Kubectl

pytestmark = pytest.mark.integration

WAIT = 180.0


wait_until = functools.partial(support.wait_until, timeout=WAIT)


def deployment(
    name: str,
    replicas: int,
    command: str = "sleep 3600",
    *,
    recreate: bool = False,
    ready: str = "true",
    spec: dict[str, Any] | None = None,
    **rolling: Any,
) -> str:
    if recreate:
        strategy: dict[str, Any] = {"type": "Recreate"}
    else:
        strategy = {"type": "RollingUpdate", "rollingUpdate": rolling} if rolling else {}
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                **(spec or {}),
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "strategy": strategy,
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "terminationGracePeriodSeconds": 2,
                        "containers": [
                            {
                                "name": "main",
                                "image": "busybox",
                                "command": ["sh", "-c", command],
                                "readinessProbe": {"exec": {"command": [ready]}, "periodSeconds": 1},
                            }
                        ],
                    },
                },
            },
        }
    )


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def live_pods(kubectl: Kubectl, app: str) -> list[dict[str, Any]]:
    pods = kubectl.json("get", "pods", "-l", f"app={app}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def ready_pods(
    kubectl: Kubectl, app: str, count: int, command: str | None = None
) -> list[dict[str, Any]] | None:
    """Exactly ``count`` live pods, all Ready (and running ``command`` when given)."""
    pods = live_pods(kubectl, app)
    if len(pods) != count or not all(is_ready(p) for p in pods):
        return None
    if command is not None and any(p["spec"]["containers"][0]["command"][-1] != command for p in pods):
        return None
    return pods


def rollout_status(kubectl: Kubectl, name: str) -> str:
    return kubectl.out("rollout", "status", f"deployment/{name}", "--timeout=180s", timeout=200)


class PodWatch:
    """`kubectl get pods -w --output-watch-events -o json` in a subprocess, counting after each event
    the pods that are Ready and not being deleted."""

    def __init__(self, kubectl: Kubectl, app: str) -> None:
        cmd = [
            str(kubectl.binary), "--kubeconfig", str(kubectl.cluster.kubeconfig),
            "-n", str(kubectl.namespace),
            "get", "pods", "-l", f"app={app}", "-w", "--output-watch-events", "-o", "json",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lock = threading.Lock()
        self.pods: dict[str, dict[str, Any]] = {}
        self.ready_counts: list[int] = []
        self.names: set[str] = set()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            buffer += chunk.decode()
            while True:
                buffer = buffer.lstrip()
                try:
                    event, end = decoder.raw_decode(buffer)
                except json.JSONDecodeError:
                    break
                buffer = buffer[end:]
                self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        pod = event.get("object") or {}
        name = pod.get("metadata", {}).get("name", "")
        with self.lock:
            self.events.append((str(event.get("type")), pod))
            self.names.add(name)
            if event.get("type") == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = pod
            self.ready_counts.append(self.ready_now())

    def ready_now(self) -> int:
        return sum(
            1 for p in self.pods.values() if is_ready(p) and not p["metadata"].get("deletionTimestamp")
        )

    def mark(self) -> int:
        with self.lock:
            return len(self.ready_counts)

    def snapshot(self) -> tuple[int, list[int], set[str], dict[str, dict[str, Any]]]:
        with self.lock:
            return self.ready_now(), list(self.ready_counts), set(self.names), dict(self.pods)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.thread.join(timeout=10)


def revisions(kubectl: Kubectl, name: str) -> dict[str, str]:
    """revision -> ReplicaSet name, from the ReplicaSets the Deployment controls."""
    uid = kubectl.json("get", "deploy", name)["metadata"]["uid"]
    out = {}
    for rs in kubectl.json("get", "rs")["items"]:
        if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or []):
            out[rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]] = rs["metadata"]["name"]
    return out


def test_rollout_keeps_three_ready_then_history_and_undo(kubectl: Kubectl) -> None:
    kubectl.apply(deployment("web", 3, maxSurge=1, maxUnavailable=0))
    assert 'deployment "web" successfully rolled out' in rollout_status(kubectl, "web")
    first = wait_until(
        lambda: ready_pods(kubectl, "web", 3, "sleep 3600"), "3 ready pods of the first template"
    )
    status = kubectl.json("get", "deploy", "web")["status"]
    assert (
        status["replicas"],
        status["updatedReplicas"],
        status["readyReplicas"],
        status["availableReplicas"],
    ) == (
        3,
        3,
        3,
        3,
    )
    table = kubectl.out("get", "deploy", "web").split()
    assert table[:10] == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "web",
        "3/3",
        "3",
        "3",
        table[9],
    ], table
    conditions = {c["type"]: c["reason"] for c in status["conditions"]}
    assert conditions == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    first_rs = revisions(kubectl, "web")["1"]
    assert all(p["metadata"]["labels"]["pod-template-hash"] == first_rs.removeprefix("web-") for p in first)

    watch = PodWatch(kubectl, "web")
    try:
        wait_until(lambda: watch.snapshot()[0] == 3, "the watch to list the 3 ready pods")
        start = watch.mark()
        kubectl.apply(deployment("web", 3, "sleep 7200", maxSurge=1, maxUnavailable=0))
        rollout_status(kubectl, "web")
        second = wait_until(
            lambda: ready_pods(kubectl, "web", 3, "sleep 7200"), "3 ready pods of the second template"
        )
        new_names = {p["metadata"]["name"] for p in second}
        wait_until(
            lambda: (snap := watch.snapshot())[0] == 3 and new_names <= set(snap[3]),
            "the watch to see the 3 new pods ready",
        )
    finally:
        watch.stop()
    _, counts, names, _ = watch.snapshot()
    during = counts[start:]
    assert len(names) >= 6, f"the watch saw only {sorted(names)}"
    assert during and min(during) >= 3, f"ready pods dropped to {min(during)} during the rollout: {during}"

    history = kubectl.out("rollout", "history", "deployment/web")
    rows = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
    assert rows == ["1", "2"], history
    assert sorted(revisions(kubectl, "web")) == ["1", "2"]
    detail = kubectl.out("rollout", "history", "deployment/web", "--revision=1")
    assert "sleep 3600" in detail and "sleep 7200" not in detail, detail

    kubectl.out("rollout", "undo", "deployment/web")
    rollout_status(kubectl, "web")
    back = wait_until(
        lambda: ready_pods(kubectl, "web", 3, "sleep 3600"), "3 ready pods of the first template again"
    )
    assert all(p["metadata"]["labels"]["pod-template-hash"] == first_rs.removeprefix("web-") for p in back)
    assert revisions(kubectl, "web") == {"2": revisions(kubectl, "web")["2"], "3": first_rs}
    rs = kubectl.json("get", "rs", first_rs)
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert (
        kubectl.json("get", "deploy", "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        == "3"
    )


def test_scale_restart_pause_resume_and_events(kubectl: Kubectl) -> None:
    kubectl.apply(deployment("api", 2))
    rollout_status(kubectl, "api")
    (rs_name,) = revisions(kubectl, "api").values()

    kubectl.out("scale", "deployment/api", "--replicas=5")
    wait_until(lambda: ready_pods(kubectl, "api", 5), "5 ready pods after scaling up")
    wait_until(
        lambda: kubectl.json("get", "deploy", "api")["status"].get("availableReplicas") == 5,
        "5 available replicas",
    )
    kubectl.out("scale", "deployment/api", "--replicas=2")
    wait_until(lambda: ready_pods(kubectl, "api", 2), "2 pods after scaling down")
    assert kubectl.json("get", "rs", rs_name)["spec"]["replicas"] == 2

    kubectl.out("rollout", "restart", "deployment/api")
    rollout_status(kubectl, "api")
    restarted = wait_until(
        lambda: (
            (pods := ready_pods(kubectl, "api", 2))
            and all(
                "kubectl.kubernetes.io/restartedAt" in (p["metadata"].get("annotations") or {}) for p in pods
            )
            and pods
        ),
        "2 ready pods carrying the restartedAt annotation",
    )
    assert all(
        p["metadata"]["labels"]["pod-template-hash"] != rs_name.removeprefix("api-") for p in restarted
    )
    assert sorted(revisions(kubectl, "api")) == ["1", "2"]

    kubectl.out("rollout", "pause", "deployment/api")
    kubectl.out("set", "env", "deployment/api", "COLOUR=blue")

    def paused_and_observed() -> bool:
        d = kubectl.json("get", "deploy", "api")
        progressing = {c["type"]: c["reason"] for c in d["status"].get("conditions") or []}.get("Progressing")
        return (
            d["status"].get("observedGeneration") == d["metadata"]["generation"]
            and progressing == "DeploymentPaused"
        )

    wait_until(paused_and_observed, "the paused template change to be observed")
    assert sorted(revisions(kubectl, "api")) == ["1", "2"], "a paused Deployment must not roll"

    kubectl.out("rollout", "resume", "deployment/api")
    rollout_status(kubectl, "api")
    pods = wait_until(lambda: ready_pods(kubectl, "api", 2), "2 ready pods after resume")
    assert all(
        {"name": "COLOUR", "value": "blue"} in (p["spec"]["containers"][0].get("env") or []) for p in pods
    )
    assert sorted(revisions(kubectl, "api")) == ["1", "2", "3"]

    described = kubectl.out("describe", "deployment", "api")
    assert "ScalingReplicaSet" in described
    assert f"Scaled up replica set {rs_name} from 2 to 5" in described
    assert f"Scaled down replica set {rs_name} from 5 to 2" in described


def test_recreate_starts_new_pods_only_after_old_ones_are_gone(kubectl: Kubectl) -> None:
    kubectl.apply(deployment("batch", 2, recreate=True))
    rollout_status(kubectl, "batch")
    old_hash = revisions(kubectl, "batch")["1"].removeprefix("batch-")
    watch = PodWatch(kubectl, "batch")
    try:
        wait_until(lambda: watch.snapshot()[0] == 2, "the watch to list the 2 ready pods")
        kubectl.apply(deployment("batch", 2, "sleep 7200", recreate=True))
        rollout_status(kubectl, "batch")
        wait_until(lambda: ready_pods(kubectl, "batch", 2, "sleep 7200"), "2 ready pods of the new template")
        wait_until(lambda: watch.snapshot()[0] == 2, "the watch to see the 2 new pods ready")
    finally:
        watch.stop()
    with watch.lock:
        events = [(kind, pod["metadata"]["labels"].get("pod-template-hash")) for kind, pod in watch.events]
    last_old_gone = max(i for i, (kind, h) in enumerate(events) if kind == "DELETED" and h == old_hash)
    first_new = min(i for i, (_, h) in enumerate(events) if h != old_hash)
    assert first_new > last_old_gone, events
    assert sum(1 for kind, h in events if kind == "DELETED" and h == old_hash) == 2


def test_progress_deadline_exceeded_fails_rollout_status(kubectl: Kubectl) -> None:
    kubectl.apply(deployment("stuck", 1, ready="false", spec={"progressDeadlineSeconds": 3}))

    def timed_out() -> dict[str, Any] | None:
        status = kubectl.json("get", "deploy", "stuck").get("status") or {}
        conds = {c["type"]: c for c in status.get("conditions") or []}
        progressing = conds.get("Progressing") or {}
        return conds if progressing.get("reason") == "ProgressDeadlineExceeded" else None

    conds = wait_until(timed_out, "Progressing=False ProgressDeadlineExceeded")
    assert conds["Progressing"]["status"] == "False"
    assert conds["Available"]["reason"] == "MinimumReplicasUnavailable"
    proc = kubectl.run("rollout", "status", "deployment/stuck", "--timeout=60s", check=False)
    assert proc.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in proc.stderr


def test_delete_removes_replicasets_and_pods_and_orphan_keeps_them(kubectl: Kubectl) -> None:
    """`kubectl delete deploy` (background cascade): the garbage collector removes its ReplicaSet and
    pods; `--cascade=orphan` leaves both, the ReplicaSet without its owner reference, still running."""
    for name in ("gone", "kept"):
        kubectl.apply(deployment(name, 2))
        rollout_status(kubectl, name)
    kubectl.run("delete", "deployment", "gone", "--wait=true", timeout=120)
    wait_until(
        lambda: (
            (not kubectl.json("get", "rs", "-l", "app=gone")["items"] and not live_pods(kubectl, "gone"))
            or None
        ),
        "the ReplicaSet and pods of the deleted Deployment to be gone",
    )
    kept_rs = kubectl.json("get", "rs", "-l", "app=kept")["items"]
    assert len(kept_rs) == 1
    pod_uids = {p["metadata"]["uid"] for p in live_pods(kubectl, "kept")}
    kubectl.run("delete", "deployment", "kept", "--cascade=orphan", "--wait=true", timeout=120)
    wait_until(
        lambda: not kubectl.json("get", "deployments")["items"] or None, "the orphaning delete to finish"
    )

    def orphaned_rs() -> dict[str, Any] | None:
        items = kubectl.json("get", "rs", "-l", "app=kept")["items"]
        return items[0] if len(items) == 1 and not items[0]["metadata"].get("ownerReferences") else None

    rs = wait_until(orphaned_rs, "the kept ReplicaSet to lose its owner reference")
    assert rs["metadata"]["uid"] == kept_rs[0]["metadata"]["uid"]
    time.sleep(3)  # give a wrongly cascading collector the time to act before looking again
    assert {p["metadata"]["uid"] for p in live_pods(kubectl, "kept")} == pod_uids
    assert all(
        p["metadata"]["ownerReferences"][0]["name"] == rs["metadata"]["name"]
        for p in live_pods(kubectl, "kept")
    )
