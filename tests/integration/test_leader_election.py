"""Schedulers and controller managers on three Ray nodes elect leaders through Leases, and a lost
leader's node hands both leases to the survivors, whose scheduler and controllers then work.

A three-node ``ray.cluster_utils`` cluster (fast dead-node detection), ``raykube up --replicas 3
--runtime none``: one scheduler and one controller manager per control-plane node, each campaigning
for ``kube-system/kube-scheduler`` resp. ``kube-system/kube-controller-manager``. Both leases show a
holder in ``kubectl get leases``; exactly one instance of each leads, the one the holder names. To
lose a leader that is not on Ray's head (whose loss Ray itself does not survive), both leases are
steered to one worker: every other instance shuts down cleanly, which releases a held lease at once,
and Ray restarts them as standbys. Then that worker is removed from Ray: nothing is released, the
standbys take both leases once they expire (15 s), and a Deployment created afterwards (controller
manager: Deployment -> ReplicaSet -> Pod) gets its pod bound to a hollow Node (scheduler).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

NAMESPACE = "leaderelect"
LEASES = {"kube-scheduler": "scheduler", "kube-controller-manager": "controller-manager"}

wait_until = functools.partial(support.wait_until, timeout=120.0, every=1.0)


def ray_json(address: str, body: str) -> Any:
    """Run ``body`` in a fresh Python process connected to the Ray at ``address`` (``instances``:
    the scheduler and controller manager actors' names); it prints one JSON value."""
    script = textwrap.dedent(
        f"""
        import json, ray
        ray.init(address={address!r}, logging_level="ERROR")
        bases = {sorted(LEASES.values())!r}
        instances = sorted(
            e["name"] for e in ray.util.list_named_actors(all_namespaces=True)
            if e["namespace"] == {NAMESPACE!r}
            and any(e["name"] == b or e["name"].startswith(b + "-") for b in bases)
        )
        def actor(name):
            return ray.get_actor(name, namespace={NAMESPACE!r})
        """
    ) + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


LEADING = """
def leading(name):
    try:
        return ray.get(actor(name).leading.remote(), timeout=10)
    except Exception:
        return None
print(json.dumps({name: leading(name) for name in instances}))
"""


NODE_NAMES = """
from cluster.naming import node_names
print(json.dumps(node_names(n for n in ray.nodes() if n["Alive"])))
"""


@pytest.mark.timeout(600)
def test_leases_move_to_the_surviving_instances_when_the_leaders_node_is_lost(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAYKUBE_NAMESPACE", NAMESPACE)
    ray_stop()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        },
    )
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        address = cluster.address
        run_cli(
            "up", "--address", address, "--replicas", "3", "--runtime", "none", data_dir=data_dir, timeout=400
        )
        kubeconfig = str(data_dir / "kubeconfig")

        def kubectl(*args: str, stdin: str | None = None) -> str:
            return support.kubectl_at(kubeconfig, *args, input=stdin)

        def holders() -> dict[str, str]:
            leases = json.loads(kubectl("-n", "kube-system", "get", "leases", "-o", "json"))["items"]
            found = {x["metadata"]["name"]: x["spec"].get("holderIdentity") or "" for x in leases}
            return {name: found.get(name, "") for name in LEASES}

        def node_of(holder: str) -> str:
            return holder.rsplit("_", 1)[0]  # holderIdentity is <node name>_<uuid>

        def holders_when(ok: Callable[[str], bool]) -> Callable[[], dict[str, str] | None]:
            def probe() -> dict[str, str] | None:
                found = holders()
                return found if all(ok(x) for x in found.values()) else None

            return probe

        first = wait_until(holders_when(bool), "both leases held")
        table = kubectl("-n", "kube-system", "get", "leases")
        for lease, holder in first.items():
            assert any(line.split()[:2] == [lease, holder] for line in table.splitlines()), table

        # One instance per control-plane node (three), exactly one leading each: the holder's.
        names: dict[str, str] = ray_json(address, NODE_NAMES)  # Ray node id -> Kubernetes node name
        assert cluster.head_node is not None
        home = names[cluster.head_node.node_id]

        def node_of_instance(actor: str) -> str:
            base = next(b for b in LEASES.values() if actor == b or actor.startswith(f"{b}-"))
            return home if actor == base else actor.removeprefix(f"{base}-")

        states: dict[str, bool | None] = ray_json(address, LEADING)
        for lease, base in LEASES.items():
            mine = {n: s for n, s in states.items() if n == base or n.startswith(f"{base}-")}
            assert sorted(map(node_of_instance, mine)) == sorted(names.values()), states
            [leader] = [n for n, s in mine.items() if s]
            assert node_of_instance(leader) == node_of(first[lease]), (leader, first)

        # kubeadm's view: a kube-scheduler and a kube-controller-manager pod on every control-plane
        # node (Nodes registered as agents would, so podgc keeps the pods bound to them; cordoned,
        # as they have no agent to run anything).
        for name in names.values():
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name},
                "spec": {"unschedulable": True},
            }
            kubectl("create", "-f", "-", stdin=json.dumps(node))
        wanted = {f"{c}-{n}" for c in ("kube-scheduler", "kube-controller-manager") for n in names.values()}

        def component_pods() -> set[str] | None:
            items = json.loads(kubectl("-n", "kube-system", "get", "pods", "-o", "json"))["items"]
            return wanted if wanted <= {p["metadata"]["name"] for p in items} else None

        wait_until(component_pods, "a scheduler and a controller manager pod per node")

        # Steer both leases to the first worker: the others shut down (releasing what they hold) ...
        target = workers[0]
        target_name = names[target.node_id]
        elsewhere = [n for n in states if node_of_instance(n) != target_name]
        ray_json(address, f"ray.get([actor(n).shutdown.remote() for n in {elsewhere!r}]); print('null')")
        moved = wait_until(
            holders_when(lambda x: node_of(x) == target_name),
            "both leases on the first worker (released by the others)",
            timeout=30,
        )
        # ... and Ray restarts them as fresh standbys.
        ray_json(address, f"[ray.kill(actor(n), no_restart=False) for n in {elsewhere!r}]; print('null')")

        def all_campaigning() -> dict[str, bool | None] | None:
            s: dict[str, bool | None] = ray_json(address, LEADING)
            return s if len(s) == 6 and all(v is not None for v in s.values()) else None

        states = wait_until(all_campaigning, "the restarted instances answering")
        assert {n for n, s in states.items() if s} == {
            n for n in states if node_of_instance(n) == target_name
        }
        assert holders() == moved

        # Lose the worker holding both: nothing is released; the standbys wait out the lease.
        cluster.remove_node(target, allow_graceful=False)
        after = wait_until(
            holders_when(lambda x: bool(x) and x not in moved.values()),
            "both leases taken over by surviving instances",
        )
        assert not any(node_of(x) == target_name for x in after.values()), after
        states = ray_json(address, LEADING)
        for base in LEASES.values():
            leaders = [n for n, s in states.items() if s and (n == base or n.startswith(f"{base}-"))]
            assert len(leaders) == 1 and node_of_instance(leaders[0]) != target_name, states

        # The new leaders work: a Deployment's pod is created and bound to a hollow Ready node.
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "hollow"}, "spec": {}}
        kubectl("create", "-f", "-", stdin=json.dumps(node))
        resources = {"cpu": "4", "memory": "8Gi", "pods": "110"}
        status = {
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "hollow"}
                ],
            }
        }
        kubectl("patch", "node", "hollow", "--subresource=status", "--type=merge", "-p", json.dumps(status))
        kubectl("create", "deployment", "after", "--image=busybox", "--", "sleep", "3600")

        def bound() -> list[str] | None:
            items = json.loads(kubectl("get", "pods", "-l", "app=after", "-o", "json"))["items"]
            return [p["spec"]["nodeName"] for p in items if p["spec"].get("nodeName")] or None

        assert wait_until(bound, "the Deployment's pod bound by the new scheduler") == ["hollow"]
    finally:
        run_cli("down", "--purge", "--address", cluster.address, data_dir=data_dir, check=False)
        cluster.shutdown()
        ray_stop()
