"""The Framework: one profile's plugins, instantiated and run extension point by extension point.

Construction instantiates every plugin the profile names once (factory(args, handle)) and expands
``multiPoint`` the way kube-scheduler does: at each extension point the plugins come in three parts,
(1) plugins enabled at that point that also appear in multiPoint (in the point's order), (2) the other
multiPoint plugins that implement the point and are not disabled there, (3) the point's own plugins.
Invariants: the Framework holds no per-pod state (that lives in the ``CycleState``); every ``run_*``
returns a ``Status`` attributed to the plugin that decided it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cluster.scheduler.config import MULTI_POINT, PluginRef, Profile
from cluster.scheduler.framework.columns import BoolArray, IntArray
from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.interface import MAX_NODE_SCORE, MIN_NODE_SCORE, Handle, PostFilterResult
from cluster.scheduler.framework.registry import Registry
from cluster.scheduler.framework.status import SUCCESS, Code, Status
from cluster.scheduler.framework.types import NodeInfo, Snapshot

# Extension point in the configuration -> the method a plugin implements for it.
POINT_METHODS = {
    "preEnqueue": "pre_enqueue",
    "preFilter": "pre_filter",
    "filter": "filter",
    "postFilter": "post_filter",
    "preScore": "pre_score",
    "score": "score",
    "reserve": "reserve",
    "permit": "permit",
    "preBind": "pre_bind",
    "bind": "bind",
    "postBind": "post_bind",
}
SKIP_FILTER_KEY = "framework/skip-filter-plugins"
SKIP_SCORE_KEY = "framework/skip-score-plugins"
MAX_PERMIT_TIMEOUT = 15 * 60.0  # seconds, as kube-scheduler caps Permit waits


class FrameworkError(ValueError):
    """The profile cannot be built into a framework (unknown plugin, wrong extension point, ...)."""


class NeedsPerNodePath(Exception):
    """A Filter gave an error (not a rejection) inside ``run_filter_many``: the caller must use the
    per-node path, which reports it exactly as kube-scheduler does."""


@dataclass(frozen=True, slots=True)
class WeightedPlugin:
    plugin: Any
    name: str
    weight: int


def _plugin_name(plugin: Any) -> str:
    name = getattr(plugin, "name", None)
    return str(name()) if callable(name) else str(getattr(plugin, "NAME", type(plugin).__name__))


class Framework:
    """Runs one profile's plugins; see the module docstring for ordering."""

    def __init__(self, profile: Profile, registry: Registry, handle: Handle) -> None:
        self.profile = profile
        self.handle = handle
        self.plugins: dict[str, Any] = {}
        for name in self._needed_plugins():
            factory = registry.get(name)
            if factory is None:
                raise FrameworkError(f'plugin "{name}" does not exist')
            self.plugins[name] = factory(profile.args(name), handle)
        # Plugins that re-run the filters (preemption) get this framework, directly or via the handle.
        set_on_handle = getattr(handle, "set_framework", None)
        if callable(set_on_handle):
            set_on_handle(self)
        for plugin in self.plugins.values():
            set_on_plugin = getattr(plugin, "set_framework", None)
            if callable(set_on_plugin):
                set_on_plugin(self)
        points = {point: self._expand(point) for point in POINT_METHODS}
        self.pre_enqueue_plugins = [w.plugin for w in points["preEnqueue"]]
        self.pre_filter_plugins = [w.plugin for w in points["preFilter"]]
        self.filter_plugins = [w.plugin for w in points["filter"]]
        self.post_filter_plugins = [w.plugin for w in points["postFilter"]]
        self.pre_score_plugins = [w.plugin for w in points["preScore"]]
        self.score_plugins = points["score"]
        self.reserve_plugins = [w.plugin for w in points["reserve"]]
        self.permit_plugins = [w.plugin for w in points["permit"]]
        self.pre_bind_plugins = [w.plugin for w in points["preBind"]]
        self.bind_plugins = [w.plugin for w in points["bind"]]
        self.post_bind_plugins = [w.plugin for w in points["postBind"]]
        self._filters: list[tuple[str, Callable[[CycleState, dict[str, Any], NodeInfo], Status]]] = [
            (_plugin_name(p), p.filter) for p in self.filter_plugins
        ]
        self._pre_filters = [(_plugin_name(p), p) for p in self.pre_filter_plugins]
        self._pre_scores = [(_plugin_name(p), p) for p in self.pre_score_plugins]

    @property
    def scheduler_name(self) -> str:
        return self.profile.scheduler_name

    def _needed_plugins(self) -> list[str]:
        names: list[str] = []
        for point in (MULTI_POINT, *POINT_METHODS):
            for ref in self.profile.plugin_set(point).enabled:
                if ref.name not in names:
                    names.append(ref.name)
        return names

    def _expand(self, point: str) -> list[WeightedPlugin]:
        method = POINT_METHODS[point]
        specific = self.profile.plugin_set(point)
        disabled = set(specific.disabled)
        multi = self.profile.plugin_set(MULTI_POINT).enabled
        multi_names = {ref.name for ref in multi}
        specific_names = {ref.name for ref in specific.enabled}
        for ref in specific.enabled:
            if not callable(getattr(self.plugins[ref.name], method, None)):
                raise FrameworkError(f'plugin "{ref.name}" does not extend {point} plugin')
        ordered: list[PluginRef] = [ref for ref in specific.enabled if ref.name in multi_names]
        if "*" not in disabled:
            ordered += [
                ref
                for ref in multi
                if ref.name not in specific_names
                and ref.name not in disabled
                and callable(getattr(self.plugins[ref.name], method, None))
            ]
        ordered += [ref for ref in specific.enabled if ref.name not in multi_names]
        return [WeightedPlugin(self.plugins[r.name], r.name, r.weight or 1) for r in ordered]

    def has_filter_plugins(self) -> bool:
        return bool(self.filter_plugins)

    def has_post_filter_plugins(self) -> bool:
        return bool(self.post_filter_plugins)

    def has_score_plugins(self) -> bool:
        return bool(self.score_plugins)

    def run_pre_enqueue(self, pod: dict[str, Any]) -> Status:
        """Run every PreEnqueue in order; the first that does not pass decides (SUCCESS if none)."""
        for plugin in self.pre_enqueue_plugins:
            status: Status = plugin.pre_enqueue(pod)
            if not status.is_success():
                return status.with_plugin(_plugin_name(plugin))
        return SUCCESS

    def run_pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        """Run every PreFilter; a SKIP also skips that plugin's Filter. Stops at the first failure."""
        skipped: set[str] = set()
        for name, plugin in self._pre_filters:
            status: Status = plugin.pre_filter(state, pod, nodes)
            if status.is_skip():
                skipped.add(name)
            elif not status.is_success():
                return status.with_plugin(name)
        state.write(SKIP_FILTER_KEY, frozenset(skipped))
        return SUCCESS

    def run_filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status:
        """Run the Filters for one node, stopping at the first that does not pass."""
        skipped: frozenset[str] = state.read(SKIP_FILTER_KEY) if SKIP_FILTER_KEY in state else frozenset()  # type: ignore[assignment]
        for name, run in self._filters:
            if name in skipped:
                continue
            status = run(state, pod, node)
            if not status.is_success():
                return status.with_plugin(name)
        return SUCCESS

    def run_filter_many(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, rows: IntArray
    ) -> BoolArray:
        """Which of ``rows`` (indices into ``snapshot.node_infos``) pass every Filter.

        The same decision as ``run_filter`` per node. Each plugin sees only the rows still passing; a
        plugin's ``filter_many`` answers for all of them at once, and a plugin without one (or whose
        ``filter_many`` returns None for this pod) is asked node by node. Raises ``NeedsPerNodePath``
        when a Filter returns an error.
        """
        skipped: frozenset[str] = state.read(SKIP_FILTER_KEY) if SKIP_FILTER_KEY in state else frozenset()  # type: ignore[assignment]
        passing = np.ones(len(rows), dtype=np.bool_)
        live = np.arange(len(rows))
        infos = snapshot.node_infos
        for plugin, (name, run) in zip(self.filter_plugins, self._filters, strict=True):
            if name in skipped or not len(live):
                continue
            many = getattr(plugin, "filter_many", None)
            mask: BoolArray | None = many(state, pod, snapshot, rows[live]) if many is not None else None
            if mask is None:
                mask = np.empty(len(live), dtype=np.bool_)
                for i, row in enumerate(rows[live]):
                    status = run(state, pod, infos[row])
                    if not status.is_success() and not status.is_rejected():
                        raise NeedsPerNodePath(name)
                    mask[i] = status.is_success()
            passing[live[~mask]] = False
            live = live[mask]
        return passing

    def run_score_many(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, rows: IntArray
    ) -> tuple[IntArray, Status]:
        """``run_score`` over ``rows`` at once: totals in row order. Plugins with ``score_many``
        (and ``normalize_many``) answer for all rows; the others are asked node by node."""
        skipped: frozenset[str] = state.read(SKIP_SCORE_KEY) if SKIP_SCORE_KEY in state else frozenset()  # type: ignore[assignment]
        totals = np.zeros(len(rows), dtype=np.int64)
        infos = snapshot.node_infos
        for weighted in self.score_plugins:
            if weighted.name in skipped:
                continue
            plugin = weighted.plugin
            many = getattr(plugin, "score_many", None)
            scores: IntArray | None = many(state, pod, snapshot, rows) if many is not None else None
            if scores is None:
                scores = np.empty(len(rows), dtype=np.int64)
                for i, row in enumerate(rows):
                    score, status = plugin.score(state, pod, infos[row])
                    if not status.is_success():
                        return totals, Status(Code.ERROR, status.reasons, weighted.name)
                    scores[i] = score
            normalize = getattr(plugin, "normalize_score", None)
            if callable(normalize):
                normalize_many = getattr(plugin, "normalize_many", None)
                normalized = normalize_many(state, pod, scores) if normalize_many is not None else None
                if normalized is None:
                    by_name = {infos[row].name: int(score) for row, score in zip(rows, scores, strict=True)}
                    status = normalize(state, pod, by_name)
                    if not status.is_success():
                        return totals, Status(Code.ERROR, status.reasons, weighted.name)
                    normalized = np.fromiter(
                        (by_name[infos[row].name] for row in rows), dtype=np.int64, count=len(rows)
                    )
                scores = normalized
            if len(scores) and (scores.min() < MIN_NODE_SCORE or scores.max() > MAX_NODE_SCORE):
                bad = int(scores[(scores < MIN_NODE_SCORE) | (scores > MAX_NODE_SCORE)][0])
                reason = (
                    f'plugin "{weighted.name}" returns an invalid score {bad}, '
                    f"it should in the range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing"
                )
                return totals, Status(Code.ERROR, (reason,), weighted.name)
            totals += scores * weighted.weight
        return totals, SUCCESS

    def run_post_filter(
        self, state: CycleState, pod: dict[str, Any], filtered: dict[str, Status]
    ) -> tuple[PostFilterResult | None, Status]:
        """Run PostFilters until one succeeds; otherwise the rejections' reasons joined together."""
        result: PostFilterResult | None = None
        reasons: list[str] = []
        rejector = ""
        for plugin in self.post_filter_plugins:
            name = _plugin_name(plugin)
            found, status = plugin.post_filter(state, pod, filtered)
            if status.is_success():
                return found, status.with_plugin(name)
            if status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return found, status.with_plugin(name)
            if not status.is_rejected():
                return None, Status(Code.ERROR, status.reasons, name)
            if found is not None:
                result = found
            reasons.extend(status.reasons)
            rejector = rejector or name
        return result, Status(Code.UNSCHEDULABLE, tuple(reasons), rejector)

    def run_pre_score(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        """Run every PreScore; a SKIP also skips that plugin's Score. Stops at the first failure."""
        skipped: set[str] = set()
        for name, plugin in self._pre_scores:
            status: Status = plugin.pre_score(state, pod, nodes)
            if status.is_skip():
                skipped.add(name)
            elif not status.is_success():
                return status.with_plugin(name)
        state.write(SKIP_SCORE_KEY, frozenset(skipped))
        return SUCCESS

    def run_score(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> tuple[dict[str, int], Status]:
        """Each node's total: the sum over Score plugins of normalized score times weight.

        Scores outside 0..MAX_NODE_SCORE after normalization are an error, as in kube-scheduler.
        """
        skipped: frozenset[str] = state.read(SKIP_SCORE_KEY) if SKIP_SCORE_KEY in state else frozenset()  # type: ignore[assignment]
        totals = dict.fromkeys((node.name for node in nodes), 0)
        for weighted in self.score_plugins:
            if weighted.name in skipped:
                continue
            plugin = weighted.plugin
            scores: dict[str, int] = {}
            for node in nodes:
                score, status = plugin.score(state, pod, node)
                if not status.is_success():
                    return {}, Status(Code.ERROR, status.reasons, weighted.name)
                scores[node.name] = score
            normalize = getattr(plugin, "normalize_score", None)
            if callable(normalize):
                status = normalize(state, pod, scores)
                if not status.is_success():
                    return {}, Status(Code.ERROR, status.reasons, weighted.name)
            for node_name, score in scores.items():
                if not MIN_NODE_SCORE <= score <= MAX_NODE_SCORE:
                    reason = (
                        f'plugin "{weighted.name}" returns an invalid score {score}, '
                        f"it should in the range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing"
                    )
                    return {}, Status(Code.ERROR, (reason,), weighted.name)
                totals[node_name] += score * weighted.weight
        return totals, SUCCESS

    def run_reserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status:
        """Run Reserve in order, stopping at the first failure; the caller must then ``run_unreserve``."""
        for plugin in self.reserve_plugins:
            status: Status = plugin.reserve(state, pod, node_name)
            if not status.is_success():
                return status.with_plugin(_plugin_name(plugin))
        return SUCCESS

    def run_unreserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> None:
        """Run every Unreserve in reverse order (each must tolerate a Reserve that never ran)."""
        for plugin in reversed(self.reserve_plugins):
            plugin.unreserve(state, pod, node_name)

    def run_permit(self, state: CycleState, pod: dict[str, Any], node_name: str) -> tuple[Status, float]:
        """SUCCESS; the first rejection or error; or WAIT with the shortest of the plugins' timeouts."""
        waiting: list[str] = []
        timeout = MAX_PERMIT_TIMEOUT
        for plugin in self.permit_plugins:
            name = _plugin_name(plugin)
            status, wait_for = plugin.permit(state, pod, node_name)
            if status.is_wait():
                waiting.append(name)
                timeout = min(timeout, max(0.0, float(wait_for)))
            elif not status.is_success():
                return status.with_plugin(name), 0.0
        if waiting:
            return Status(Code.WAIT, (), ",".join(waiting)), timeout
        return SUCCESS, 0.0

    def run_pre_bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status:
        for plugin in self.pre_bind_plugins:
            status: Status = plugin.pre_bind(state, pod, node_name)
            if not status.is_success():
                return status.with_plugin(_plugin_name(plugin))
        return SUCCESS

    def run_bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status:
        """The first Bind plugin that does not SKIP decides; SKIP when there are none or all skip."""
        for plugin in self.bind_plugins:
            status: Status = plugin.bind(state, pod, node_name)
            if not status.is_skip():
                return status.with_plugin(_plugin_name(plugin))
        return Status(Code.SKIP)

    def run_post_bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> None:
        for plugin in self.post_bind_plugins:
            plugin.post_bind(state, pod, node_name)
