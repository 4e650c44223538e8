"""``raykube status``'s joining rules (cluster.status): Ray nodes beside Node objects, instances beside
the Leases they hold."""

from __future__ import annotations

from typing import Any

from cluster.status import instance_rows, node_rows


def ray_node(node_id: str, host: str, alive: bool = True, ip: str = "10.0.0.1") -> dict[str, Any]:
    return {"NodeID": node_id, "NodeManagerHostname": host, "NodeManagerAddress": ip, "Alive": alive}


def k8s_node(
    name: str, ready: str = "True", unschedulable: bool = False, node_type: str = ""
) -> dict[str, Any]:
    labels = {"raykube.io/ray-node-type": node_type} if node_type else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "addresses": [{"type": "InternalIP", "address": "10.9.9.9"}],
        },
    }


def test_ray_nodes_join_their_node_objects_and_strays_come_last() -> None:
    rows = node_rows(
        [ray_node("a" * 56, "head"), ray_node("b" * 56, "gone", alive=False), ray_node("c" * 56, "new")],
        [
            k8s_node("head", node_type="ray.head.default"),
            k8s_node("gone", "Unknown", True),
            k8s_node("orphan"),
        ],
    )
    by_name = {r.name: r for r in rows}
    assert [r.name for r in rows] == ["head", "new", "gone", "orphan"]  # alive, dead, no Ray node
    assert (by_name["head"].ray_state, by_name["head"].node_ready, by_name["head"].node_type) == (
        "ALIVE",
        "True",
        "ray.head.default",
    )
    assert by_name["new"].node_ready == "-"  # Ray has it, no Node registered yet
    assert (by_name["gone"].ray_state, by_name["gone"].node_ready, by_name["gone"].schedulable) == (
        "DEAD",
        "Unknown",
        False,
    )
    assert (by_name["orphan"].ray_state, by_name["orphan"].ray_node_id, by_name["orphan"].ip) == (
        "-",
        "",
        "10.9.9.9",
    )


def test_without_the_api_server_readiness_is_unknown_not_missing() -> None:
    [row] = node_rows([ray_node("a" * 56, "head")], None)
    assert row.node_ready == "?"


def test_instances_map_to_nodes_and_the_lease_holder_leads() -> None:
    actors = [
        "apiserver",
        "apiserver-w1",
        "scheduler",
        "scheduler-w1",
        "controller-manager",
        "controller-manager-w2",
        "store-1",
        "agent-head",
    ]
    holders: dict[str, str | None] = {"kube-scheduler": "w1_1234", "kube-controller-manager": "head_99"}
    rows = {(r.actor, r.node, r.leader) for r in instance_rows(actors, "head", holders)}
    assert rows == {
        ("apiserver", "head", "-"),
        ("apiserver-w1", "w1", "-"),
        ("scheduler", "head", "no"),
        ("scheduler-w1", "w1", "yes"),
        ("controller-manager", "head", "yes"),
        ("controller-manager-w2", "w2", "no"),
    }


def test_no_holder_means_nobody_leads_and_an_unreadable_lease_is_unknown() -> None:
    rows = instance_rows(["scheduler", "controller-manager"], "head", {"kube-scheduler": None})
    assert {(r.actor, r.leader) for r in rows} == {("scheduler", "no"), ("controller-manager", "no")}
    rows = instance_rows(["scheduler"], "head", None)
    assert [r.leader for r in rows] == ["?"]
