"""node_facts: a ``ray.nodes()`` entry as its Node's labels and capacity (what is copied, mapped,
skipped)."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.node_facts import (
    GPU_RESOURCE,
    NODE_TYPE_LABEL,
    RayNodeFacts,
    ray_node_facts,
    valid_label_key,
    valid_label_value,
)

NODE_ID = "c69b21761db59f7bb41430e72ddd150c0c6c6153ce241fd5c87d4b15"


def entry(labels: dict[str, Any], resources: dict[str, float] | None = None) -> dict[str, Any]:
    return {"NodeID": NODE_ID, "Alive": True, "Labels": labels, "Resources": resources or {}}


def test_a_cluster_launcher_node() -> None:
    facts = ray_node_facts(
        entry(
            {
                "ray.io/node-id": NODE_ID,
                "ray.io/node-group": "raykube.worker",
                "ray.io/availability-zone": "us-west-2a",
                "ray.io/availability-region": "us-west-2",
                "ray.io/market-type": "spot",
                "raykube.io/pool": "cpu",
                "node.kubernetes.io/instance-type": "m5.large",
            },
            {
                "CPU": 4.0,
                "memory": 8e9,
                "GPU": 2.0,
                "node:10.0.0.5": 1.0,
                "object_store_memory": 1e9,
                "tpu": 1,
            },
        )
    )
    assert facts.labels == {
        "ray.io/node-id": NODE_ID,
        "ray.io/node-group": "raykube.worker",
        NODE_TYPE_LABEL: "raykube.worker",
        "ray.io/availability-zone": "us-west-2a",
        "ray.io/availability-region": "us-west-2",
        "topology.kubernetes.io/zone": "us-west-2a",
        "topology.kubernetes.io/region": "us-west-2",
        "ray.io/market-type": "spot",
        "raykube.io/pool": "cpu",
        "node.kubernetes.io/instance-type": "m5.large",
    }
    assert (facts.cpus, facts.memory, facts.gpus, facts.instance_type) == (4.0, 8e9, 2, "m5.large")
    assert facts.extended_resources() == {GPU_RESOURCE: "2"}  # custom resources are not exposed
    assert facts.skipped_labels == ()


def test_a_node_started_by_hand_has_no_type_no_gpus() -> None:
    facts = ray_node_facts(entry({"ray.io/node-id": NODE_ID}, {"CPU": 1.0, "memory": 1e9}))
    assert facts == RayNodeFacts(labels={"ray.io/node-id": NODE_ID}, cpus=1.0, memory=1e9)
    assert facts.extended_resources() == {}


def test_a_dead_node_has_no_resources() -> None:
    facts = ray_node_facts({"NodeID": NODE_ID, "Alive": False, "Resources": {}})
    assert (facts.cpus, facts.memory, facts.gpus, dict(facts.labels)) == (None, None, 0, {})


def test_fractional_gpus_count_whole_devices() -> None:
    assert ray_node_facts(entry({}, {"GPU": 1.5})).extended_resources() == {GPU_RESOURCE: "1"}
    assert ray_node_facts(entry({}, {"GPU": 0.5})).extended_resources() == {}


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        pytest.param("bad key!", "x", "a space and ! in the key", id="key-chars"),
        pytest.param("a/b/c", "x", "two slashes", id="key-slashes"),
        pytest.param("Example.COM/x", "x", "an upper-case prefix", id="key-prefix-case"),
        pytest.param("x" * 64, "x", "a name over 63", id="key-long"),
        pytest.param("/x", "x", "an empty prefix", id="key-empty-prefix"),
        pytest.param("pool", "-cpu", "a value starting with -", id="value-start"),
        pytest.param("pool", "a b", "a space in the value", id="value-space"),
        pytest.param("pool", "v" * 64, "a value over 63", id="value-long"),
        pytest.param("kubernetes.io/hostname", "other", "the agent's own label", id="agent-own"),
        pytest.param("node-role.kubernetes.io/control-plane", "", "not a kubelet label", id="reserved"),
        pytest.param("k8s.io/anything", "x", "reserved domain", id="reserved-k8s"),
    ],
)
def test_invalid_or_reserved_labels_are_skipped(key: str, value: str, why: str) -> None:
    facts = ray_node_facts(entry({key: value, "ok": "yes"}))
    assert facts.labels == {"ok": "yes"}, why
    assert facts.skipped_labels == (key,)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("ray.io/node-id", True),
        ("example.com/My_Name.1", True),
        ("simple", True),
        ("node.kubernetes.io/instance-type", True),
        ("a..b/x", False),
        ("", False),
        ("x/", False),
    ],
)
def test_valid_label_key(key: str, ok: bool) -> None:
    assert valid_label_key(key) is ok


@pytest.mark.parametrize(
    ("value", "ok"), [("", True), ("a", True), ("A-b_c.9", True), ("a-", False), ("é", False)]
)
def test_valid_label_value(value: str, ok: bool) -> None:
    assert valid_label_value(value) is ok


def test_kubelet_labels_are_copied() -> None:
    facts = ray_node_facts(entry({"node.kubernetes.io/pool": "a", "topology.kubernetes.io/zone": "z1"}))
    assert facts.labels == {"node.kubernetes.io/pool": "a", "topology.kubernetes.io/zone": "z1"}
