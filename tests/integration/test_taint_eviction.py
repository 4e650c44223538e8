"""Taint-based eviction through the real kubectl: a node that never reports becomes Unknown and gets
the unreachable NoExecute taint (node lifecycle controller, grace 15 s in the test session); a pod
bound to it that tolerates the taint for 5 s is deleted about 5 s after the taint's timeAdded (taint
eviction controller), while a pod with the default 300 s tolerations (DefaultTolerationSeconds
admission) stays.

The node is a bare Node object (no agent), so nothing confirms the pods' termination: "deleted" means
the API server set their deletionTimestamp. The test removes its pods and node afterwards.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

UNREACHABLE = "node.kubernetes.io/unreachable"


wait_until = functools.partial(support.wait_until, timeout=90.0)


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.fixture
def silent_node(raykube_cluster: RaykubeCluster) -> Iterator[str]:
    admin = Kubectl(raykube_cluster, "1.33", None)
    name = f"silent-{secrets.token_hex(3)}"
    admin.apply(
        f"""
apiVersion: v1
kind: Node
metadata: {{name: {name}, labels: {{raykube.io/test: silent}}}}
"""
    )
    yield name
    admin.run("delete", "node", name, "--wait=false", check=False)


def pod(name: str, node: str, tolerations: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  tolerations: {tolerations}
  containers: [{{name: c, image: busybox, command: ["sleep", "3600"]}}]
"""


@pytest.mark.timeout(300)
def test_a_pod_tolerating_unreachable_for_5s_is_evicted_after_5s(
    raykube_cluster: RaykubeCluster, kubectl: Kubectl, silent_node: str
) -> None:
    admin = Kubectl(raykube_cluster, "1.33", None)
    five = f"[{{key: {UNREACHABLE}, operator: Exists, effect: NoExecute, tolerationSeconds: 5}}]"
    kubectl.apply(pod("short", silent_node, five))
    kubectl.apply(pod("default", silent_node, "[]"))
    defaults = kubectl.json("get", "pod", "default")["spec"]["tolerations"]
    assert {(t["key"], t["tolerationSeconds"]) for t in defaults} == {
        ("node.kubernetes.io/not-ready", 300),
        (UNREACHABLE, 300),
    }

    def no_execute_taint() -> dict[str, Any] | None:
        taints = admin.json("get", "node", silent_node).get("spec", {}).get("taints") or []
        return next((t for t in taints if (t["key"], t["effect"]) == (UNREACHABLE, "NoExecute")), None)

    taint = wait_until(no_execute_taint, "the unreachable NoExecute taint")
    deleted_at = wait_until(
        lambda: kubectl.json("get", "pod", "short")["metadata"].get("deletionTimestamp"),
        "the 5 s pod marked for deletion",
    )
    # deletionTimestamp = the delete's time + the grace period (30 s): the delete came >= 5 s after
    # the taint appeared.
    assert (when(deleted_at) - when(taint["timeAdded"])).total_seconds() >= 5 + 30 - 1
    assert not kubectl.json("get", "pod", "default")["metadata"].get("deletionTimestamp")
    wanted = ("TaintManagerEviction", f"Marking for deletion Pod {kubectl.namespace}/short")
    wait_until(
        lambda: wanted in {(e["reason"], e["message"]) for e in kubectl.json("get", "events")["items"]},
        f"event {wanted}",
    )
    kubectl.run("delete", "pod", "short", "default", "--grace-period=0", "--force", check=False)
