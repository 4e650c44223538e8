"""The snapshot's nodes as columns of numbers, so Filter and Score can run over many nodes at once.

One row per node, in the snapshot's node order. Each row mirrors one ``NodeInfo``: allocatable and
requested cpu (millicores), memory and ephemeral storage (bytes), the pod count, the non-zero requests
used for scoring, what is still free, and flags for what makes a node need the per-node path
(cordoned, hard or soft taints, host ports in use, extended resources, pods with pod affinity),
and, on demand, each node's value of a label as an integer code (``label_codes``) so topology
lookups become array lookups.
Plugins read the columns for the common case and fall back to their per-node ``filter``/``score`` for
the rows a flag marks; ``flagged(name)`` says in O(1) whether any row has a flag at all.

Invariants: a row equals its ``NodeInfo`` at all times; ``NodeInfo`` pushes every change of its pods
through ``write_row`` (see ``NodeInfo.attach``), and the snapshot rebuilds the columns when nodes are
added or removed (rows would shift). Values are int64; amounts beyond 2**56 are clamped (no real
node has them), which keeps sums and score products free of overflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from cluster.scheduler.framework.types import NodeInfo

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
_LIMIT = 2**56  # so that amount * 100 (scores) stays inside int64
_HARD_EFFECTS = ("NoSchedule", "NoExecute")


def _clamp(value: int) -> int:
    return value if -_LIMIT < value < _LIMIT else (_LIMIT if value > 0 else -_LIMIT)


_Scalar = TypeVar("_Scalar", bound=np.generic)


def take(column: np.ndarray[Any, np.dtype[_Scalar]], rows: IntArray) -> np.ndarray[Any, np.dtype[_Scalar]]:
    """``column[rows]``; a view without copying when ``rows`` is one ascending run (the usual case:
    the scheduler walks nodes round-robin, and rows stay ascending through filtering)."""
    count = len(rows)
    if count:
        first = int(rows[0])
        if int(rows[-1]) - first == count - 1:
            return column[first : first + count]
    return column[rows]


class NodeColumns:
    """See the module docstring. Build with ``NodeColumns(node_infos)``; rows follow that order."""

    INT_FIELDS = (
        "alloc_cpu",
        "alloc_mem",
        "alloc_eph",
        "alloc_pods",
        "req_cpu",
        "req_mem",
        "req_eph",
        "pod_count",
        "nz_cpu",
        "nz_mem",
        "free_cpu",
        "free_mem",
        "free_eph",
        "free_pods",
        "nz_free_cpu",
        "nz_free_mem",
    )
    FLAG_FIELDS = (
        "unschedulable",
        "hard_taints",
        "soft_taints",
        "host_ports",
        "scalar",
        "affinity_pods",
        "anti_affinity_pods",
        "scoring_affinity_pods",
    )

    alloc_cpu: IntArray
    alloc_mem: IntArray
    alloc_eph: IntArray
    alloc_pods: IntArray
    req_cpu: IntArray
    req_mem: IntArray
    req_eph: IntArray
    pod_count: IntArray
    nz_cpu: IntArray
    nz_mem: IntArray
    free_cpu: IntArray  # alloc - req (may be negative after an allocatable shrink)
    free_mem: IntArray
    free_eph: IntArray
    free_pods: IntArray  # alloc_pods - pod_count
    nz_free_cpu: IntArray  # alloc - non-zero requested (scoring)
    nz_free_mem: IntArray
    unschedulable: BoolArray
    hard_taints: BoolArray
    soft_taints: BoolArray
    host_ports: BoolArray
    scalar: BoolArray
    affinity_pods: BoolArray  # some pod on the node has pod (anti-)affinity
    anti_affinity_pods: BoolArray  # some pod on the node has required pod anti-affinity
    scoring_affinity_pods: BoolArray  # some pod has terms InterPodAffinity's Score counts

    def __init__(self, infos: list[NodeInfo]) -> None:
        count = len(infos)
        self._infos = infos
        self._labels: dict[str, tuple[IntArray, dict[str, int]]] = {}
        for name in self.INT_FIELDS:
            setattr(self, name, np.zeros(count, dtype=np.int64))
        for name in self.FLAG_FIELDS:
            setattr(self, name, np.zeros(count, dtype=np.bool_))
        self._flag_counts = dict.fromkeys(self.FLAG_FIELDS, 0)
        for row, info in enumerate(infos):
            self.write_node(row, info)
            self.write_row(row, info)

    def __len__(self) -> int:
        return len(self.alloc_cpu)

    def label_codes(self, key: str) -> tuple[IntArray, dict[str, int]]:
        """Per row, a code for the node's value of label ``key`` (-1 when the node lacks it), and
        the value -> code table. Built on first use per key, then kept current by ``write_node``."""
        found = self._labels.get(key)
        if found is None:
            vocabulary: dict[str, int] = {}
            codes = np.full(len(self._infos), -1, dtype=np.int64)
            for row, info in enumerate(self._infos):
                value = info.labels.get(key)
                if value is not None:
                    codes[row] = vocabulary.setdefault(value, len(vocabulary))
            found = self._labels[key] = (codes, vocabulary)
        return found

    def flagged(self, name: str) -> bool:
        """Whether any row has flag ``name`` set (kept as a count, so O(1))."""
        return self._flag_counts[name] > 0

    def _flag(self, name: str, row: int, value: bool) -> None:
        column: BoolArray = getattr(self, name)
        if bool(column[row]) != value:
            column[row] = value
            self._flag_counts[name] += 1 if value else -1

    def write_node(self, row: int, info: NodeInfo) -> None:
        """Refresh what comes from the Node object itself (allocatable, cordon, taints)."""
        alloc = info.allocatable
        self.alloc_cpu[row] = _clamp(alloc.milli_cpu)
        self.alloc_mem[row] = _clamp(alloc.memory)
        self.alloc_eph[row] = _clamp(alloc.ephemeral_storage)
        self.alloc_pods[row] = _clamp(alloc.allowed_pod_number)
        self._flag("unschedulable", row, bool((info.node.get("spec") or {}).get("unschedulable")))
        effects = [taint.get("effect") for taint in info.taints]
        self._flag("hard_taints", row, any(effect in _HARD_EFFECTS for effect in effects))
        self._flag("soft_taints", row, "PreferNoSchedule" in effects)
        self._flag("scalar", row, bool(alloc.scalar) or bool(info.requested.scalar))
        for key, (codes, vocabulary) in getattr(self, "_labels", {}).items():
            value = info.labels.get(key)
            codes[row] = -1 if value is None else vocabulary.setdefault(value, len(vocabulary))
        self._write_free(row)

    def write_row(self, row: int, info: NodeInfo) -> None:
        """Refresh what comes from the node's pods (called by ``NodeInfo`` on every add/remove)."""
        requested, non_zero = info.requested, info.non_zero_requested
        self.req_cpu[row] = _clamp(requested.milli_cpu)
        self.req_mem[row] = _clamp(requested.memory)
        self.req_eph[row] = _clamp(requested.ephemeral_storage)
        self.pod_count[row] = len(info.pods)
        self.nz_cpu[row] = _clamp(non_zero.milli_cpu)
        self.nz_mem[row] = _clamp(non_zero.memory)
        self._flag("host_ports", row, bool(info.used_ports))
        self._flag("scalar", row, bool(info.allocatable.scalar) or bool(info.requested.scalar))
        self._flag("affinity_pods", row, bool(info.pods_with_affinity))
        self._flag("anti_affinity_pods", row, bool(info.pods_with_required_anti_affinity))
        self._flag("scoring_affinity_pods", row, info.scoring_affinity_pods > 0)
        self._write_free(row)

    def _write_free(self, row: int) -> None:
        self.free_cpu[row] = self.alloc_cpu[row] - self.req_cpu[row]
        self.free_mem[row] = self.alloc_mem[row] - self.req_mem[row]
        self.free_eph[row] = self.alloc_eph[row] - self.req_eph[row]
        self.free_pods[row] = self.alloc_pods[row] - self.pod_count[row]
        self.nz_free_cpu[row] = self.alloc_cpu[row] - self.nz_cpu[row]
        self.nz_free_mem[row] = self.alloc_mem[row] - self.nz_mem[row]
