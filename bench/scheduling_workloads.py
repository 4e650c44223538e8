"""The scheduling benchmark's workloads: scheduler_perf's shapes and node/pod templates, as dicts.

Each ``Workload`` is kube-scheduler's ``createNodes($initNodes)``, ``createPods($initPods)``,
``createPods($measurePods, collectMetrics)`` with the templates of
``test/integration/scheduler_perf/templates`` rewritten as Kubernetes JSON: hollow nodes with 4 cpu,
32Gi and 110 pods (labelled per workload: zones for spreading, a unique hostname, ``zone1`` for node
affinity), and pods requesting 100m cpu / 500Mi (the default pod), with the workload's affinity or
spread constraints. Names follow scheduler_perf (``SchedulingBasic/5000Nodes_10000Pods``).

Invariants: building a workload is deterministic (labels are assigned round-robin where scheduler_perf
picks at random) and every object is a fresh dict; pod uids are unique within a workload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
ZONE_KEY = "topology.kubernetes.io/zone"
HOSTNAME_KEY = "kubernetes.io/hostname"
SPREAD_ZONES = ("moon-1", "moon-2", "moon-3")


def node_template(index: int, labels: dict[str, str] | None = None) -> Obj:
    """scheduler_perf's node-default.yaml: 4 cpu, 32Gi, 110 pods, Ready."""
    name = f"scheduler-perf-{index}"
    capacity = {"pods": "110", "cpu": "4", "memory": "32Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "uid": f"node-{index}", "labels": dict(labels or {})},
        "spec": {},
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "conditions": [{"type": "Ready", "status": "True"}],
            "phase": "Running",
        },
    }


def pod_template(
    name: str,
    *,
    cpu: str = "100m",
    memory: str = "500Mi",
    labels: dict[str, str] | None = None,
    affinity: Obj | None = None,
    spread: list[Obj] | None = None,
    priority: int | None = None,
) -> Obj:
    """scheduler_perf's pod-default.yaml (one pause container, 100m / 500Mi), plus optional extras."""
    resources = {"cpu": cpu, "memory": memory}
    spec: Obj = {
        "containers": [
            {
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10",
                "ports": [{"containerPort": 80}],
                "resources": {"requests": dict(resources), "limits": dict(resources)},
            }
        ],
        "schedulerName": "default-scheduler",
    }
    if affinity is not None:
        spec["affinity"] = affinity
    if spread is not None:
        spec["topologySpreadConstraints"] = spread
    if priority is not None:
        spec["priority"] = priority
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "sched-test", "uid": name, "labels": dict(labels or {})},
        "spec": spec,
    }


# ---- pod shapes (index -> pod) -------------------------------------------------------------------


def default_pod(name: str, index: int) -> Obj:
    return pod_template(name)


def node_affinity_pod(name: str, index: int) -> Obj:
    """pod-with-node-affinity.yaml: required zone In [zone1, zone2]."""
    term = {"matchExpressions": [{"key": ZONE_KEY, "operator": "In", "values": ["zone1", "zone2"]}]}
    affinity = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    }
    return pod_template(name, affinity=affinity)


def anti_affinity_pod(name: str, index: int) -> Obj:
    """pod-with-pod-anti-affinity.yaml: color=green, no two green pods on one hostname."""
    selector = {"matchExpressions": [{"key": "color", "operator": "In", "values": ["green"]}]}
    term = {"labelSelector": selector, "topologyKey": HOSTNAME_KEY}
    affinity = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return pod_template(name, labels={"color": "green"}, affinity=affinity)


def _spread_pod(name: str, when: str) -> Obj:
    constraint = {
        "maxSkew": 5,
        "topologyKey": ZONE_KEY,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchExpressions": [{"key": "color", "operator": "In", "values": ["blue"]}]},
    }
    return pod_template(name, labels={"color": "blue"}, spread=[constraint])


def spreading_pod(name: str, index: int) -> Obj:
    """pod-with-topology-spreading.yaml: maxSkew 5 over zones, DoNotSchedule."""
    return _spread_pod(name, "DoNotSchedule")


def preferred_spreading_pod(name: str, index: int) -> Obj:
    """pod-with-preferred-topology-spreading.yaml: maxSkew 5 over zones, ScheduleAnyway."""
    return _spread_pod(name, "ScheduleAnyway")


def low_priority_pod(name: str, index: int) -> Obj:
    """pod-low-priority.yaml: 900m cpu, priority 0 (four fill a 4-cpu node)."""
    return pod_template(name, cpu="900m", priority=0)


def high_priority_pod(name: str, index: int) -> Obj:
    """pod-high-priority.yaml: 3 cpu, priority 10 (must preempt low-priority pods to fit)."""
    return pod_template(name, cpu="3", priority=10)


def large_cpu_pod(name: str, index: int) -> Obj:
    """pod-large-cpu.yaml: 9 cpu, more than any 4-cpu node has, so never schedulable."""
    return pod_template(name, cpu="9")


def daemonset_pod_for(node_count: int) -> Callable[[str, int], Obj]:
    """A DaemonSet-style pod pinned by ``matchFields metadata.name`` to node ``index % node_count``."""

    def make(name: str, index: int) -> Obj:
        field = {"key": "metadata.name", "operator": "In", "values": [f"scheduler-perf-{index % node_count}"]}
        term = {"matchFields": [field]}
        affinity = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        }
        return pod_template(name, affinity=affinity)

    return make


# ---- node labellers (index -> labels) ------------------------------------------------------------


def no_labels(index: int) -> dict[str, str]:
    return {}


def zone1_label(index: int) -> dict[str, str]:
    """labelNodePrepareStrategy with one value: every node in zone1."""
    return {ZONE_KEY: "zone1"}


def hostname_label(index: int) -> dict[str, str]:
    """uniqueNodeLabelStrategy on kubernetes.io/hostname."""
    return {HOSTNAME_KEY: f"scheduler-perf-{index}"}


def spread_zone_label(index: int) -> dict[str, str]:
    """labelNodePrepareStrategy over three zones (round-robin here; random in scheduler_perf)."""
    return {ZONE_KEY: SPREAD_ZONES[index % len(SPREAD_ZONES)]}


@dataclass(frozen=True, slots=True)
class Workload:
    """One scheduler_perf workload: node count and labels, init pods, measured pods."""

    name: str
    nodes: int
    init_pods: int
    measure_pods: int
    node_labels: Callable[[int], dict[str, str]] = no_labels
    init_pod: Callable[[str, int], Obj] = default_pod
    measure_pod: Callable[[str, int], Obj] = default_pod
    expect_unschedulable_init: bool = False  # init pods that never fit (Unschedulable)

    def build_nodes(self) -> list[Obj]:
        return [node_template(i, self.node_labels(i)) for i in range(self.nodes)]

    def build_init_pods(self) -> list[Obj]:
        return [self.init_pod(f"init-{i}", i) for i in range(self.init_pods)]

    def build_measure_pods(self) -> list[Obj]:
        return [self.measure_pod(f"measure-{i}", i) for i in range(self.measure_pods)]

    def scaled(self, name: str, nodes: int, init_pods: int, measure_pods: int) -> Workload:
        """The same templates at another size (for ``--quick`` and tests)."""
        measure = self.measure_pod
        if self.name.startswith("SchedulingDaemonset"):
            measure = daemonset_pod_for(nodes)
        return Workload(
            name,
            nodes,
            init_pods,
            measure_pods,
            self.node_labels,
            self.init_pod,
            measure,
            self.expect_unschedulable_init,
        )


def _all() -> list[Workload]:
    return [
        Workload("SchedulingBasic/500Nodes_1000Pods", 500, 500, 1000),
        Workload("SchedulingBasic/5000Nodes_10000Pods", 5000, 1000, 10000),
        Workload(
            "NodeAffinity/5000Nodes", 5000, 5000, 10000, zone1_label, node_affinity_pod, node_affinity_pod
        ),
        Workload(
            "PodAntiAffinity/5000Nodes",
            5000,
            1000,
            2000,
            hostname_label,
            anti_affinity_pod,
            anti_affinity_pod,
        ),
        Workload(
            "TopologySpreading/5000Nodes", 5000, 5000, 5000, spread_zone_label, default_pod, spreading_pod
        ),
        Workload(
            "PreferredTopologySpreading/5000Nodes",
            5000,
            5000,
            5000,
            spread_zone_label,
            default_pod,
            preferred_spreading_pod,
        ),
        Workload("SchedulingDaemonset/15000Nodes", 15000, 0, 30000, measure_pod=daemonset_pod_for(15000)),
        Workload("PreemptionBasic/500Nodes", 500, 2000, 500, no_labels, low_priority_pod, high_priority_pod),
        Workload("Unschedulable/500Nodes", 500, 200, 1000, no_labels, large_cpu_pod, default_pod, True),
        Workload(
            "Unschedulable/5000Nodes_10000Pods", 5000, 200, 10000, no_labels, large_cpu_pod, default_pod, True
        ),
    ]


WORKLOADS: dict[str, Workload] = {w.name: w for w in _all()}

# --quick: the 500-node shapes (preemption at 100) plus SchedulingBasic at 5000 nodes with fewer pods.
QUICK_WORKLOADS: tuple[Workload, ...] = (
    WORKLOADS["SchedulingBasic/500Nodes_1000Pods"],
    # Preemption's dry run re-runs PreFilter per candidate node (quadratic in nodes): 100 nodes here.
    WORKLOADS["PreemptionBasic/500Nodes"].scaled("PreemptionBasic/100Nodes", 100, 400, 100),
    WORKLOADS["Unschedulable/500Nodes"],
    WORKLOADS["SchedulingBasic/5000Nodes_10000Pods"].scaled(
        "SchedulingBasic/5000Nodes_1000Pods", 5000, 1000, 1000
    ),
)

# kube-scheduler's published Average SchedulingThroughput floors, pods/s: the `threshold:` of each
# workload in kubernetes/kubernetes test/integration/scheduler_perf/*/performance-config.yaml (misc/:
# SchedulingBasic, SchedulingDaemonset, Unschedulable; affinity/: NodeAffinity, PodAntiAffinity; the
# topology spreading shapes in their own folder).
# CI hardware is not ours: these are "published, other hardware". Shape notes say where ours differs.
PUBLISHED_FLOORS: dict[str, tuple[float, str]] = {
    "SchedulingBasic/5000Nodes_10000Pods": (680.0, "5000 nodes / 1000 init / 10000 measured"),
    "NodeAffinity/5000Nodes": (220.0, "5000 / 5000 / 10000"),
    "PodAntiAffinity/5000Nodes": (60.0, "5000 / 1000 / 2000"),
    "TopologySpreading/5000Nodes": (460.0, "5000 / 5000 / 5000"),
    "PreferredTopologySpreading/5000Nodes": (340.0, "5000 / 5000 / 5000"),
    "SchedulingDaemonset/15000Nodes": (1100.0, "15000 / 0 / 30000"),
    "Unschedulable/5000Nodes_10000Pods": (
        600.0,
        "published: 5000 nodes, 20000 init, 10000 measured, +5/s unschedulable pods; ours: 200 unschedulable",
    ),
}
