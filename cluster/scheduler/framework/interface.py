"""One small Protocol per extension point of the scheduling framework.

A plugin is any object with ``NAME`` and ``name()`` that implements some subset of these Protocols; the
``Framework`` finds out which by looking for the methods. Plugins are built by a factory
``factory(args, handle)``; the ``Handle`` is their only way to see the cluster (the current snapshot) and
the time, so plugins stay pure and testable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import Status
from cluster.scheduler.framework.types import NodeInfo, Snapshot

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0


@dataclass(frozen=True, slots=True)
class PostFilterResult:
    """What a PostFilter (preemption) found: the node to nominate and the pods to evict there."""

    nominated_node_name: str
    victims: list[dict[str, Any]] = field(default_factory=list)


class Handle(Protocol):
    """What the framework gives plugins: the cycle's snapshot and the current time in seconds."""

    def snapshot(self) -> Snapshot: ...

    def now(self) -> float: ...


class SnapshotHandle:
    """A ``Handle`` over a snapshot the caller swaps in each cycle, with an injected clock.

    It also carries what some plugins look up optionally: ``framework()`` (set by the ``Framework`` that
    uses this handle, for plugins such as preemption that re-run filters) and ``pdbs()`` (the
    PodDisruptionBudgets, set by the caller).
    """

    __slots__ = ("_clock", "_framework", "_pdbs", "_snapshot")

    def __init__(self, snapshot: Snapshot | None = None, clock: Callable[[], float] | None = None) -> None:
        self._snapshot = snapshot if snapshot is not None else Snapshot([], [])
        self._clock = clock if clock is not None else (lambda: 0.0)
        self._framework: Any = None
        self._pdbs: list[dict[str, Any]] = []

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def set_snapshot(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def now(self) -> float:
        return self._clock()

    def framework(self) -> Any:
        return self._framework

    def set_framework(self, framework: Any) -> None:
        self._framework = framework

    def pdbs(self) -> list[dict[str, Any]]:
        return list(self._pdbs)

    def set_pdbs(self, pdbs: list[dict[str, Any]]) -> None:
        self._pdbs = list(pdbs)


@runtime_checkable
class Plugin(Protocol):
    NAME: str

    def name(self) -> str: ...


PluginFactory = Callable[[dict[str, Any], Handle], Any]


@runtime_checkable
class PreEnqueuePlugin(Plugin, Protocol):
    def pre_enqueue(self, pod: dict[str, Any]) -> Status:
        """Whether the pod may enter the active queue at all; a rejection parks it (unpopped) until an
        update of the pod lets every PreEnqueue plugin pass. Runs on every move to activeQ: keep it cheap
        and free of cluster state (the pod alone decides)."""
        ...


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        """Precompute for Filter; may return SKIP so this plugin's Filter is not run for the pod."""
        ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status: ...


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    def post_filter(
        self, state: CycleState, pod: dict[str, Any], filtered: dict[str, Status]
    ) -> tuple[PostFilterResult | None, Status]: ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    def pre_score(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    """Scores one node; the optional ``normalize_score`` maps the raw scores into 0..MAX_NODE_SCORE."""

    def score(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> tuple[int, Status]: ...


@runtime_checkable
class ScoreExtensions(Protocol):
    def normalize_score(self, state: CycleState, pod: dict[str, Any], scores: dict[str, int]) -> Status:
        """Rewrite ``scores`` (node name -> raw score) in place."""
        ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    def reserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status: ...

    def unreserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> None: ...


@runtime_checkable
class PermitPlugin(Plugin, Protocol):
    def permit(self, state: CycleState, pod: dict[str, Any], node_name: str) -> tuple[Status, float]:
        """SUCCESS, a rejection, or WAIT with a timeout in seconds."""
        ...


@runtime_checkable
class PreBindPlugin(Plugin, Protocol):
    def pre_bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status: ...


@runtime_checkable
class BindPlugin(Plugin, Protocol):
    def bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status:
        """Record the binding (the actor performs it); SKIP lets the next bind plugin handle it."""
        ...


@runtime_checkable
class PostBindPlugin(Plugin, Protocol):
    def post_bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> None: ...
