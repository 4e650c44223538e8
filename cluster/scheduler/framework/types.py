"""The scheduler's view of the cluster: resource amounts, nodes with their pods, and a snapshot.

Invariants: resource amounts are ints (cpu in millicores, memory and ephemeral-storage in bytes, pods as
a count, extended resources as integer units), rounded up from Kubernetes quantities. A ``NodeInfo``'s
``requested``/``non_zero_requested``/``used_ports``/affinity lists always equal the sums over its
``pods``. Objects are Kubernetes JSON dicts and are never mutated here.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cluster.machinery import quantity as machinery_quantity
from cluster.scheduler.framework.columns import NodeColumns

DEFAULT_MILLI_CPU_REQUEST = 100  # kube-scheduler's non-zero default, used only for scoring
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


def parse_quantity(q: str | int | float) -> Fraction:
    """The exact value of a Kubernetes quantity: ``"100m"``, ``"1Gi"``, ``"0.5"``, ``"1e3"``.

    Kubernetes' rules (``cluster.machinery.quantity``, so no whitespace); raises ``ValueError``
    (a ``QuantityError``) for anything else.
    """
    if isinstance(q, str):
        return _parse_quantity_text(q)
    return Fraction(machinery_quantity.parse_quantity(q))


@functools.lru_cache(maxsize=4096)
def _parse_quantity_text(q: str) -> Fraction:
    # Every pod of a workload repeats the same few quantities; parsing is the slow part.
    return Fraction(machinery_quantity.parse_quantity(q))


def _amount_of(name: str, quantity: str | int | float) -> int:
    """The integer amount of one resource: cpu in millicores, the rest in units, rounded up."""
    value = parse_quantity(quantity)
    return math.ceil(value * 1000) if name == "cpu" else math.ceil(value)


_amount = functools.lru_cache(maxsize=4096)(_amount_of)  # for text quantities, which repeat a lot


@dataclass(slots=True)
class Resource:
    """An amount of each resource; ``add``/``sub`` update in place."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    allowed_pod_number: int = 0
    scalar: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def from_list(resources: dict[str, Any] | None) -> Resource:
        """A ``Resource`` from a ResourceList such as ``{"cpu": "500m", "memory": "1Gi"}``."""
        out = Resource()
        for name, quantity in (resources or {}).items():
            value = _amount(name, quantity) if isinstance(quantity, str) else _amount_of(name, quantity)
            if name == "cpu":
                out.milli_cpu = value
            elif name == "memory":
                out.memory = value
            elif name == "ephemeral-storage":
                out.ephemeral_storage = value
            elif name == "pods":
                out.allowed_pod_number = value
            else:
                out.scalar[name] = value
        return out

    def add(self, other: Resource) -> None:
        self.milli_cpu += other.milli_cpu
        self.memory += other.memory
        self.ephemeral_storage += other.ephemeral_storage
        self.allowed_pod_number += other.allowed_pod_number
        for name, value in other.scalar.items():
            self.scalar[name] = self.scalar.get(name, 0) + value

    def sub(self, other: Resource) -> None:
        self.milli_cpu -= other.milli_cpu
        self.memory -= other.memory
        self.ephemeral_storage -= other.ephemeral_storage
        self.allowed_pod_number -= other.allowed_pod_number
        for name, value in other.scalar.items():
            self.scalar[name] = self.scalar.get(name, 0) - value

    def set_max(self, other: Resource) -> None:
        """Raise each amount to at least ``other``'s (the init-container rule)."""
        self.milli_cpu = max(self.milli_cpu, other.milli_cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral_storage = max(self.ephemeral_storage, other.ephemeral_storage)
        self.allowed_pod_number = max(self.allowed_pod_number, other.allowed_pod_number)
        for name, value in other.scalar.items():
            self.scalar[name] = max(self.scalar.get(name, 0), value)

    def clone(self) -> Resource:
        return Resource(
            self.milli_cpu, self.memory, self.ephemeral_storage, self.allowed_pod_number, dict(self.scalar)
        )


def _container_requests(container: dict[str, Any], non_zero: bool) -> Resource:
    resources = container.get("resources") or {}
    # The API server defaults requests to limits; do the same so raw objects behave alike.
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    out = Resource.from_list(merged)
    if non_zero:
        if "cpu" not in merged:
            out.milli_cpu = DEFAULT_MILLI_CPU_REQUEST
        if "memory" not in merged:
            out.memory = DEFAULT_MEMORY_REQUEST
    return out


def _pod_requests(pod: dict[str, Any], non_zero: bool) -> Resource:
    spec = pod.get("spec") or {}
    total = Resource()
    for container in spec.get("containers") or []:
        total.add(_container_requests(container, non_zero))
    # Kubernetes' rule: regular init containers run one at a time (take the max); sidecars
    # (restartPolicy Always) keep running, so they add to the pod and to every later init container.
    sidecars = Resource()
    init_max = Resource()
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container, non_zero)
        if container.get("restartPolicy") == "Always":
            total.add(requests)
            sidecars.add(requests)
            init_max.set_max(sidecars)
        else:
            requests.add(sidecars)
            init_max.set_max(requests)
    total.set_max(init_max)
    overhead = spec.get("overhead")
    if overhead:
        total.add(Resource.from_list(overhead))
    return total


# Requests per pod spec, keyed by the identity of the lists they come from. The scheduler asks for the
# same pod's requests several times per cycle (PreFilter, PreScore, assume); objects are never mutated,
# and the cache holds the lists themselves so an id cannot be reused while its entry lives.
_REQUESTS_CACHE: dict[tuple[int, int, int, bool], tuple[tuple[object, ...], Resource]] = {}
_REQUESTS_CACHE_LIMIT = 8192


def _cached_requests(pod: dict[str, Any], non_zero: bool) -> Resource:
    spec = pod.get("spec") or {}
    parts = (spec.get("containers"), spec.get("initContainers"), spec.get("overhead"))
    key = (id(parts[0]), id(parts[1]), id(parts[2]), non_zero)
    hit = _REQUESTS_CACHE.get(key)
    if hit is not None and hit[0][0] is parts[0] and hit[0][1] is parts[1] and hit[0][2] is parts[2]:
        return hit[1]
    if len(_REQUESTS_CACHE) >= _REQUESTS_CACHE_LIMIT:
        _REQUESTS_CACHE.clear()
    # Both flavours at once: whoever asks for one asks for the other within the same cycle.
    for flavour in (False, True):
        _REQUESTS_CACHE[(*key[:3], flavour)] = (parts, _pod_requests(pod, flavour))
    return _REQUESTS_CACHE[key][1]


def pod_requests(pod: dict[str, Any]) -> Resource:
    """What the pod asks for: containers summed, maxed with each init container, plus overhead.

    The result is shared (cached per pod spec): read it, never ``add``/``sub`` into it (clone first).
    """
    return _cached_requests(pod, non_zero=False)


def pod_requests_nonzero(pod: dict[str, Any]) -> Resource:
    """Like ``pod_requests`` but a container without a cpu/memory request counts 100m/200Mi (scoring).
    Shared like ``pod_requests``'s result: never mutate it."""
    return _cached_requests(pod, non_zero=True)


def pod_key(pod: dict[str, Any]) -> str:
    """The pod's identity: its uid, or ``namespace/name`` when it has none."""
    meta = pod.get("metadata") or {}
    uid = meta.get("uid")
    if uid:
        return str(uid)
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def pod_host_ports(pod: dict[str, Any]) -> set[tuple[str, str, int]]:
    """The ``(hostIP, protocol, hostPort)`` triples the pod's containers claim on their node."""
    ports: set[tuple[str, str, int]] = set()
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for port in container.get("ports") or []:
            host_port = int(port.get("hostPort") or 0)
            if host_port > 0:
                ports.add((port.get("hostIP") or "0.0.0.0", port.get("protocol") or "TCP", host_port))
    return ports


def _has_affinity(pod: dict[str, Any]) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    return bool(affinity.get("podAffinity") or affinity.get("podAntiAffinity"))


def _has_scoring_affinity(pod: dict[str, Any]) -> bool:
    """Terms of an existing pod that InterPodAffinity's Score counts: required pod affinity (the
    hard-affinity weight) and any preferred term. Required anti-affinity alone scores nothing."""
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    pod_affinity = affinity.get("podAffinity") or {}
    anti = affinity.get("podAntiAffinity") or {}
    return bool(
        pod_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        or pod_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
        or anti.get("preferredDuringSchedulingIgnoredDuringExecution")
    )


def _has_required_anti_affinity(pod: dict[str, Any]) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    anti = affinity.get("podAntiAffinity") or {}
    return bool(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))


class NodeInfo:
    """A node plus the pods assigned to it (bound or assumed), with their sums kept up to date."""

    __slots__ = (
        "_labels",
        "_name",
        "_sink",
        "_taints",
        "allocatable",
        "generation",
        "node",
        "non_zero_requested",
        "pods",
        "pods_with_affinity",
        "pods_with_required_anti_affinity",
        "requested",
        "scoring_affinity_pods",
        "used_ports",
    )

    def __init__(self, node: dict[str, Any], pods: list[dict[str, Any]] | None = None) -> None:
        self._sink: tuple[NodeColumns, int] | None = None
        self.generation = 0  # bumped on every pod change, so callers can cache per-node summaries
        self.set_node(node)
        self.pods: list[dict[str, Any]] = []
        self.requested = Resource()
        self.non_zero_requested = Resource()
        self.used_ports: set[tuple[str, str, int]] = set()
        self.pods_with_affinity: list[dict[str, Any]] = []
        self.pods_with_required_anti_affinity: list[dict[str, Any]] = []
        self.scoring_affinity_pods = 0  # pods whose terms InterPodAffinity's Score counts
        for pod in pods or []:
            self.add_pod(pod)

    def set_node(self, node: dict[str, Any]) -> None:
        """Take a new version of the Node object (labels, taints, allocatable); the pods stay."""
        self.node = node
        self._cache_node_fields()
        status = node.get("status") or {}
        self.allocatable = Resource.from_list(status.get("allocatable") or status.get("capacity") or {})
        if self._sink is not None:
            self._sink[0].write_node(self._sink[1], self)

    def attach(self, columns: NodeColumns | None, row: int = 0) -> None:
        """Mirror every later change into ``columns[row]`` (None stops mirroring)."""
        self._sink = None if columns is None else (columns, row)

    def _cache_node_fields(self) -> None:
        # Read on every Filter/Score call, so looked up once; the node dict is never mutated.
        meta = self.node.get("metadata") or {}
        self._name: str = str(meta.get("name", ""))
        self._labels: dict[str, str] = meta.get("labels") or {}
        self._taints: list[dict[str, Any]] = (self.node.get("spec") or {}).get("taints") or []

    @property
    def name(self) -> str:
        return self._name

    @property
    def labels(self) -> dict[str, str]:
        """The node's labels (shared with the node object: read-only)."""
        return self._labels

    @property
    def taints(self) -> list[dict[str, Any]]:
        """The node's taints (shared with the node object: read-only)."""
        return self._taints

    def add_pod(self, pod: dict[str, Any]) -> None:
        self.generation += 1
        self.pods.append(pod)
        self.requested.add(pod_requests(pod))
        self.non_zero_requested.add(pod_requests_nonzero(pod))
        self.used_ports |= pod_host_ports(pod)
        if _has_affinity(pod):
            self.pods_with_affinity.append(pod)
            if _has_scoring_affinity(pod):
                self.scoring_affinity_pods += 1
        if _has_required_anti_affinity(pod):
            self.pods_with_required_anti_affinity.append(pod)
        if self._sink is not None:
            self._sink[0].write_row(self._sink[1], self)

    def remove_pod(self, pod: dict[str, Any]) -> None:
        """Remove the pod with the same identity (uid, else namespace/name); raises KeyError if absent."""
        key = pod_key(pod)
        index = next((i for i, existing in enumerate(self.pods) if pod_key(existing) == key), None)
        if index is None:
            raise KeyError(f"pod {key} is not on node {self.name}")
        existing = self.pods.pop(index)
        self.generation += 1
        if _has_affinity(existing) and _has_scoring_affinity(existing):
            self.scoring_affinity_pods -= 1
        self.requested.sub(pod_requests(existing))
        self.non_zero_requested.sub(pod_requests_nonzero(existing))
        self.pods_with_affinity = [p for p in self.pods_with_affinity if pod_key(p) != key]
        self.pods_with_required_anti_affinity = [
            p for p in self.pods_with_required_anti_affinity if pod_key(p) != key
        ]
        self.used_ports = set()
        for remaining in self.pods:
            self.used_ports |= pod_host_ports(remaining)
        if self._sink is not None:
            self._sink[0].write_row(self._sink[1], self)

    def clone(self) -> NodeInfo:
        """An independent copy (the pod dicts themselves are shared, never mutated)."""
        other = NodeInfo.__new__(NodeInfo)
        other._sink = None
        other.generation = self.generation
        other.node = self.node
        other._name, other._labels, other._taints = self._name, self._labels, self._taints
        other.allocatable = self.allocatable.clone()
        other.pods = list(self.pods)
        other.requested = self.requested.clone()
        other.non_zero_requested = self.non_zero_requested.clone()
        other.used_ports = set(self.used_ports)
        other.pods_with_affinity = list(self.pods_with_affinity)
        other.pods_with_required_anti_affinity = list(self.pods_with_required_anti_affinity)
        other.scoring_affinity_pods = self.scoring_affinity_pods
        return other

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self.pods)})"


class Snapshot:
    """The nodes and their pods as seen by one scheduling cycle, in the order the nodes were given.

    It can also be kept up to date incrementally (``add_node``/``update_node``/``remove_node``,
    ``add_pod``/``remove_pod``), which keeps nodes sorted by name. ``columns()`` gives the same nodes
    as ``NodeColumns`` rows in ``node_infos`` order, kept in step with every later change.
    """

    __slots__ = ("_by_name", "_columns", "_sorted_names", "node_infos")

    def __init__(self, nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        self.node_infos: list[NodeInfo] = [NodeInfo(node) for node in nodes]
        self._by_name: dict[str, NodeInfo] = {info.name: info for info in self.node_infos}
        self._columns: NodeColumns | None = None
        self._sorted_names: list[str] | None = None
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            info = self._by_name.get(node_name) if node_name else None
            if info is not None:
                info.add_pod(pod)

    def get(self, name: str) -> NodeInfo | None:
        return self._by_name.get(name)

    def columns(self) -> NodeColumns:
        """The nodes as columns (built on first use after the node set changed)."""
        if self._columns is None:
            self._columns = NodeColumns(self.node_infos)
            for row, info in enumerate(self.node_infos):
                info.attach(self._columns, row)
        return self._columns

    def _drop_columns(self) -> None:
        if self._columns is not None:
            for info in self.node_infos:
                info.attach(None)
            self._columns = None

    def add_node(self, node: dict[str, Any]) -> NodeInfo:
        """Insert a node in name order (or update it if present); returns its ``NodeInfo``."""
        name = str((node.get("metadata") or {}).get("name", ""))
        existing = self._by_name.get(name)
        if existing is not None:
            existing.set_node(node)
            return existing
        if self._sorted_names is None:
            self.node_infos.sort(key=lambda info: info.name)
            self._sorted_names = [info.name for info in self.node_infos]
        self._drop_columns()
        info = NodeInfo(node)
        index = bisect.bisect_left(self._sorted_names, name)
        self._sorted_names.insert(index, name)
        self.node_infos.insert(index, info)
        self._by_name[name] = info
        return info

    def update_node(self, node: dict[str, Any]) -> None:
        """Same as ``add_node``: a new version of a node keeps its pods."""
        self.add_node(node)

    def remove_node(self, name: str) -> None:
        """Forget a node and its pods (no-op for unknown names)."""
        info = self._by_name.pop(name, None)
        if info is None:
            return
        self._drop_columns()
        self.node_infos.remove(info)
        if self._sorted_names is not None:
            self._sorted_names.remove(name)

    def add_pod(self, pod: dict[str, Any]) -> bool:
        """Count an assigned pod on its ``spec.nodeName``; False when that node is unknown."""
        info = self._by_name.get((pod.get("spec") or {}).get("nodeName") or "")
        if info is None:
            return False
        info.add_pod(pod)
        return True

    def remove_pod(self, pod: dict[str, Any], node_name: str) -> bool:
        """Stop counting ``pod`` (matched by identity) on ``node_name``; False when it was not there."""
        info = self._by_name.get(node_name)
        if info is None:
            return False
        try:
            info.remove_pod(pod)
        except KeyError:
            return False
        return True

    def have_pods_with_affinity(self) -> list[NodeInfo]:
        return [info for info in self.node_infos if info.pods_with_affinity]

    def have_pods_with_required_anti_affinity(self) -> list[NodeInfo]:
        return [info for info in self.node_infos if info.pods_with_required_anti_affinity]

    def assume(self, pod: dict[str, Any], node_name: str) -> None:
        """Count ``pod`` on ``node_name`` until its binding is observed; raises KeyError for unknown nodes."""
        info = self._by_name.get(node_name)
        if info is None:
            raise KeyError(f"node {node_name} is not in the snapshot")
        spec = dict(pod.get("spec") or {})
        spec["nodeName"] = node_name
        info.add_pod({**pod, "spec": spec})

    def __len__(self) -> int:
        return len(self.node_infos)
