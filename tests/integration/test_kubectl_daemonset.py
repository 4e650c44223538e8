"""The DaemonSet controller through real kubectl 1.33 against `raykube up`, with pods really running.

A DaemonSet of busybox `sh -c "sleep 3600"` gets one Running, Ready pod on every node, pinned there by
a ``matchFields metadata.name`` node affinity and bound by the scheduler; ``kubectl describe`` shows
the ``SuccessfulCreate`` events; a template change rolls the pod (new revision, new hash label,
``kubectl rollout status`` and ``history``) and ``kubectl rollout undo`` rolls it back (the old
revision renumbered); a nodeSelector is followed as the node's labels change; a DaemonSet with
``restartPolicy: Never`` is refused with Kubernetes' own 422 text. The multi-node case (nodes that join) is in
``test_daemonset_across_ray_nodes.py``, which runs its own Ray.

The module is named ``test_kubectl_*`` on purpose: modules that run ``ray stop`` (test_cli,
test_data_dir, ...) must run before the first one using the session cluster, and pytest runs
modules in name order.
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
HASH_LABEL = "controller-revision-hash"


wait_until = functools.partial(support.wait_until, timeout=WAIT)


def daemonset(
    name: str, *, restart_policy: str = "Always", env: str = "1", node_selector: dict[str, str] | None = None
) -> str:
    pod_spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": 2,
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "command": ["sh", "-c", "sleep 3600"],
                "env": [{"name": "VERSION", "value": env}],
            }
        ],
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
            },
        }
    )


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def node_names(kubectl: Kubectl) -> list[str]:
    return sorted(n["metadata"]["name"] for n in kubectl.json("get", "nodes", namespaced=False)["items"])


def live_pods(kubectl: Kubectl, app: str) -> list[dict[str, Any]]:
    pods = kubectl.json("get", "pods", "-l", f"app={app}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def running_one_per_node(kubectl: Kubectl, app: str, nodes: list[str]) -> dict[str, dict[str, Any]] | None:
    """node -> its pod, once every node has exactly one live pod, Running and Ready."""
    pods = live_pods(kubectl, app)
    by_node = {p["spec"].get("nodeName"): p for p in pods}
    if len(pods) != len(nodes) or sorted(by_node) != nodes:
        return None
    if not all(p["status"].get("phase") == "Running" and is_ready(p) for p in pods):
        return None
    return by_node


def described_with(kubectl: Kubectl, name: str, text: str) -> str | None:
    out = kubectl.out("describe", "daemonset", name)
    return out if text in out else None


def test_daemonset_runs_one_pod_on_each_node(kubectl: Kubectl) -> None:
    nodes = node_names(kubectl)
    kubectl.apply(daemonset("agent"))
    by_node = wait_until(lambda: running_one_per_node(kubectl, "agent", nodes), "a Running pod on each node")
    uid = kubectl.json("get", "daemonset", "agent")["metadata"]["uid"]
    for node, pod in by_node.items():
        assert pod["metadata"]["name"].startswith("agent-")
        refs = pod["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [("DaemonSet", uid, True)]
        required = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert required["nodeSelectorTerms"] == [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
        tolerations = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerations
        assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerations
        assert HASH_LABEL in pod["metadata"]["labels"]

    def settled() -> dict[str, Any] | None:
        status = kubectl.json("get", "daemonset", "agent").get("status") or {}
        want = len(nodes)
        counts = (
            status.get("desiredNumberScheduled"),
            status.get("currentNumberScheduled"),
            status.get("numberReady"),
            status.get("numberAvailable"),
            status.get("updatedNumberScheduled"),
        )
        return status if counts == (want,) * 5 and status.get("observedGeneration") == 1 else None

    status = wait_until(settled, "the DaemonSet status to count every node")
    assert status.get("numberMisscheduled", 0) == 0 and status.get("numberUnavailable", 0) == 0
    table = kubectl.out("get", "daemonset", "agent").splitlines()
    assert table[0].split()[:6] == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE"]
    assert table[1].split()[:6] == ["agent", *[str(len(nodes))] * 5]
    described = wait_until(lambda: described_with(kubectl, "agent", "SuccessfulCreate"), "the create events")
    for pod in by_node.values():
        assert f"Created pod: {pod['metadata']['name']}" in described


def test_restart_policy_never_is_refused(kubectl: Kubectl) -> None:
    stderr = kubectl.fails("create", "-f", "-", input=daemonset("never", restart_policy="Never"))
    assert (
        'The DaemonSet "never" is invalid: spec.template.spec.restartPolicy: '
        'Unsupported value: "Never": supported values: "Always"'
    ) in stderr
    assert kubectl.json("get", "daemonsets")["items"] == []


def test_template_change_rolls_the_pod(kubectl: Kubectl) -> None:
    nodes = node_names(kubectl)
    kubectl.apply(daemonset("roll", env="1"))
    before = wait_until(lambda: running_one_per_node(kubectl, "roll", nodes), "the first pods")
    kubectl.run("rollout", "status", "daemonset/roll", "--timeout=120s", timeout=150)
    kubectl.apply(daemonset("roll", env="2"))

    def replaced() -> dict[str, dict[str, Any]] | None:
        now = running_one_per_node(kubectl, "roll", nodes)
        if now is None:
            return None
        old_names = {p["metadata"]["name"] for p in before.values()}
        return None if old_names & {p["metadata"]["name"] for p in now.values()} else now

    after = wait_until(replaced, "every pod replaced by one of the new template")
    for node, pod in after.items():
        assert pod["spec"]["containers"][0]["env"] == [{"name": "VERSION", "value": "2"}]
        assert pod["metadata"]["labels"][HASH_LABEL] != before[node]["metadata"]["labels"][HASH_LABEL]
    out = kubectl.out("rollout", "status", "daemonset/roll", "--timeout=120s", timeout=150)
    assert 'daemon set "roll" successfully rolled out' in out
    revisions = kubectl.json("get", "controllerrevisions", "-l", "app=roll")["items"]
    assert sorted(r["revision"] for r in revisions) == [1, 2]
    current = next(r for r in revisions if r["revision"] == 2)
    assert {p["metadata"]["labels"][HASH_LABEL] for p in after.values()} == {
        current["metadata"]["labels"][HASH_LABEL]
    }
    history = kubectl.out("rollout", "history", "daemonset/roll")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    wait_until(lambda: described_with(kubectl, "roll", "SuccessfulDelete"), "the delete events")

    # kubectl rollout undo restores revision 1's template; that revision becomes number 3.
    kubectl.run("rollout", "undo", "daemonset/roll")

    def rolled_back() -> dict[str, dict[str, Any]] | None:
        now = running_one_per_node(kubectl, "roll", nodes)
        if now is None or any(p["spec"]["containers"][0]["env"][0]["value"] != "1" for p in now.values()):
            return None
        return now

    back = wait_until(rolled_back, "every pod back on the first template")
    revisions = kubectl.json("get", "controllerrevisions", "-l", "app=roll")["items"]
    numbers = {r["metadata"]["labels"][HASH_LABEL]: r["revision"] for r in revisions}
    assert sorted(numbers.values()) == [2, 3]
    assert {numbers[p["metadata"]["labels"][HASH_LABEL]] for p in back.values()} == {3}


def test_follows_node_labels(kubectl: Kubectl, namespace: str) -> None:
    node = node_names(kubectl)[0]
    key = f"raykube.test/{namespace}"
    kubectl.apply(daemonset("labelled", node_selector={key: "yes"}))

    def counts(desired: int, current: int) -> dict[str, Any] | None:
        status = kubectl.json("get", "daemonset", "labelled").get("status") or {}
        got = (status.get("desiredNumberScheduled", 0), status.get("currentNumberScheduled", 0))
        return status if status.get("observedGeneration") == 1 and got == (desired, current) else None

    wait_until(lambda: counts(0, 0), "a DaemonSet that wants no node yet")
    assert live_pods(kubectl, "labelled") == []
    try:
        kubectl.run("label", "node", node, f"{key}=yes", namespaced=False)
        wait_until(
            lambda: running_one_per_node(kubectl, "labelled", [node]), "a pod once the node is labelled"
        )
        wait_until(lambda: counts(1, 1), "the status to count the labelled node")
        kubectl.run("label", "node", node, f"{key}-", namespaced=False)
        wait_until(lambda: live_pods(kubectl, "labelled") == [] or None, "the pod gone once the label is")
        wait_until(lambda: counts(0, 0), "the status to count no node again")
    finally:
        kubectl.run("label", "node", node, f"{key}-", namespaced=False, check=False)
