"""`kubectl cordon`, `uncordon` and `drain` against `raykube up`, with PodDisruptionBudgets whose status
the disruption controller keeps and the eviction subresource honours.

The session has one real node shared by every test, so drain always runs with a ``--pod-selector`` unique
to this test (other namespaces' pods stay) and the node is uncordoned in a ``finally``. The pods are
bare (``--force`` lets drain evict pods without a controller), so nothing recreates them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Kubectl
from tests.integration.test_pods_kubectl import find_real_node, wait_until

pytestmark = pytest.mark.integration

WAIT = 90.0


def sleeper(name: str, app: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "busybox", "command": ["sh", "-c", "sleep 3600"]}],
        },
    }


def budget(name: str, app: str, min_available: int) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}},
    }


@pytest.fixture
def node(kubectl: Kubectl) -> Iterator[str]:
    """The real node's name; uncordoned after the test whatever happened."""
    admin = Kubectl(kubectl.cluster, "1.33", None)
    name = str(find_real_node(admin)["metadata"]["name"])
    try:
        yield name
    finally:
        admin.run("uncordon", name, check=False)


def unschedulable(admin: Kubectl, node: str) -> bool:
    return bool(admin.json("get", "node", node)["spec"].get("unschedulable", False))


def test_cordon_and_uncordon(kubectl: Kubectl, node: str) -> None:
    admin = Kubectl(kubectl.cluster, "1.33", None)
    assert "cordoned" in admin.out("cordon", node)
    assert unschedulable(admin, node) is True
    assert "uncordoned" in admin.out("uncordon", node)
    assert unschedulable(admin, node) is False


def budget_status(k: Kubectl, name: str) -> dict[str, Any]:
    pdb = k.json("get", "pdb", name)
    status = dict(pdb.get("status") or {})
    status["_current"] = status.get("observedGeneration") == pdb["metadata"].get("generation")
    return status


def test_drain_respects_the_disruption_budget(kubectl: Kubectl, node: str) -> None:
    admin = Kubectl(kubectl.cluster, "1.33", None)
    app = f"drain-{secrets.token_hex(3)}"
    kubectl.apply(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    sleeper(f"{app}-0", app, node),
                    sleeper(f"{app}-1", app, node),
                    budget("keep", app, 2),
                ],
            }
        )
    )

    def budget_reads(want: dict[str, int]) -> dict[str, Any] | None:
        status = budget_status(kubectl, "keep")
        return status if status["_current"] and all(status.get(k) == v for k, v in want.items()) else None

    status = wait_until(
        lambda: budget_reads({"currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}),
        "the budget to count both pods healthy",
        WAIT,
    )
    assert status.get("disruptionsAllowed", 0) == 0
    (cond,) = [c for c in status["conditions"] if c["type"] == "DisruptionAllowed"]
    assert (cond["status"], cond["reason"]) == ("False", "InsufficientPods")

    drain = [
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        f"--pod-selector=app={app}",
    ]
    blocked = admin.run(*drain, "--timeout=10s", check=False, timeout=WAIT)
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, output
    assert "Cannot evict pod as it would violate the pod's disruption budget." in output, output
    assert unschedulable(admin, node) is True  # drain cordons first
    assert len(kubectl.json("get", "pods", "-l", f"app={app}")["items"]) == 2

    # A looser budget lets both go.
    kubectl.run("patch", "pdb", "keep", "--type=merge", "-p", '{"spec":{"minAvailable":0}}')
    status = wait_until(
        lambda: budget_reads({"desiredHealthy": 0, "disruptionsAllowed": 2}), "budget loosened", WAIT
    )
    (cond,) = [c for c in status["conditions"] if c["type"] == "DisruptionAllowed"]
    assert (cond["status"], cond["reason"]) == ("True", "SufficientPods")

    drained = admin.run(*drain, "--timeout=60s", check=False, timeout=WAIT)
    output = drained.stdout + drained.stderr
    assert drained.returncode == 0, output
    assert f"pod/{app}-0 evicted" in output and f"pod/{app}-1 evicted" in output, output
    wait_until(
        lambda: kubectl.json("get", "pods", "-l", f"app={app}")["items"] == [] or None,
        "the evicted pods to be gone",
        WAIT,
    )
    # With the pods gone the budget says so again.
    wait_until(lambda: budget_reads({"currentHealthy": 0, "expectedPods": 0}), "budget with no pods", WAIT)


def test_percentage_budget_counts_the_replicaset_scale(kubectl: Kubectl, node: str) -> None:
    """``maxUnavailable: 50%`` is a share of the ReplicaSet's replicas, not of the pods that exist: a
    drain takes one pod of two, then stops while the replacement cannot be scheduled on the cordoned
    node; once uncordoned, the replacement runs and the budget allows one disruption again."""
    admin = Kubectl(kubectl.cluster, "1.33", None)
    app = f"rs-{secrets.token_hex(3)}"
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": app},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {"name": "app", "image": "busybox", "command": ["sh", "-c", "sleep 3600"]}
                    ],
                },
            },
        },
    }
    half = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "half"},
        "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": app}}},
    }
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [rs, half]}))

    def reads(want: dict[str, int]) -> dict[str, Any] | None:
        status = budget_status(kubectl, "half")
        return status if status["_current"] and all(status.get(k) == v for k, v in want.items()) else None

    healthy = {"expectedPods": 2, "desiredHealthy": 1, "currentHealthy": 2, "disruptionsAllowed": 1}
    wait_until(lambda: reads(healthy), "the budget over two ready ReplicaSet pods", WAIT)

    blocked = admin.run(
        "drain",
        node,
        "--ignore-daemonsets",
        f"--pod-selector=app={app}",
        "--timeout=10s",
        check=False,
        timeout=WAIT,
    )
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, output
    assert output.count(" evicted") == 1, output
    assert "Cannot evict pod as it would violate the pod's disruption budget." in output, output
    # The replacement waits for a schedulable node; the budget still counts the ReplicaSet's 2.
    wait_until(
        lambda: reads({"expectedPods": 2, "currentHealthy": 1, "disruptionsAllowed": 0}), "one down", WAIT
    )

    admin.run("uncordon", node)
    wait_until(lambda: reads(healthy), "the replacement to run and the budget to recover", WAIT)
    kubectl.run("delete", "replicaset", app, "--wait=false")
