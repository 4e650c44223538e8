"""The scheduling framework: status codes, cycle state, the cluster view, and the extension points.

Plugins import from here; ``registry``, ``runtime`` (the ``Framework``) and the scheduling cycle build
on these values. Everything is pure: no I/O, no clock except through the ``Handle``.
"""

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.interface import (
    MAX_NODE_SCORE,
    MIN_NODE_SCORE,
    BindPlugin,
    FilterPlugin,
    Handle,
    PermitPlugin,
    Plugin,
    PluginFactory,
    PostBindPlugin,
    PostFilterPlugin,
    PostFilterResult,
    PreBindPlugin,
    PreEnqueuePlugin,
    PreFilterPlugin,
    PreScorePlugin,
    ReservePlugin,
    ScoreExtensions,
    ScorePlugin,
    SnapshotHandle,
)
from cluster.scheduler.framework.status import SUCCESS, Code, Status
from cluster.scheduler.framework.types import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    NodeInfo,
    Resource,
    Snapshot,
    parse_quantity,
    pod_host_ports,
    pod_key,
    pod_requests,
    pod_requests_nonzero,
)

__all__ = [
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "MAX_NODE_SCORE",
    "MIN_NODE_SCORE",
    "SUCCESS",
    "BindPlugin",
    "Code",
    "CycleState",
    "FilterPlugin",
    "Handle",
    "NodeInfo",
    "PermitPlugin",
    "Plugin",
    "PluginFactory",
    "PostBindPlugin",
    "PostFilterPlugin",
    "PostFilterResult",
    "PreBindPlugin",
    "PreEnqueuePlugin",
    "PreFilterPlugin",
    "PreScorePlugin",
    "ReservePlugin",
    "Resource",
    "ScoreExtensions",
    "ScorePlugin",
    "Snapshot",
    "SnapshotHandle",
    "Status",
    "parse_quantity",
    "pod_host_ports",
    "pod_key",
    "pod_requests",
    "pod_requests_nonzero",
]
