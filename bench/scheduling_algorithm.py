"""The ``algorithm`` mode: the scheduler core on an in-memory snapshot, no I/O, no actor hops.

For one workload: build the hollow nodes into a ``Snapshot``, a ``Framework`` of the default profile
(``default_profile`` with ``default_registry``), place the init pods, then schedule the measured pods
one at a time with ``schedule_one`` + ``run_binding_cycle`` (the pod stays assumed in the snapshot, as
after a bind), advancing the round-robin start index by each cycle's ``evaluated``. A pod whose cycle
nominates a node (DefaultPreemption) has its victims removed from the snapshot and is retried once, as
kube-scheduler does after the victims' deletion. The bind time of each measured pod feeds
``scheduling_metrics``; per-pod latency is the pod's own cycle time (all measured pods are queued at
the start, so create-to-bound time would only measure the queue).

Invariants: the only clock is the injected ``clock`` (seconds, monotonic); ties between equal-score
nodes are broken by a ``random.Random`` seeded by the caller; ``hops_per_pod`` is 0 by construction.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.scheduling_metrics import latency_summary_ms, overall_rate, throughput_samples, throughput_summary
from bench.scheduling_workloads import Workload
from cluster.scheduler.config import default_profile
from cluster.scheduler.framework import Snapshot, SnapshotHandle
from cluster.scheduler.framework.registry import default_registry
from cluster.scheduler.framework.runtime import Framework
from cluster.scheduler.schedule_one import ScheduleResult, forget, run_binding_cycle, schedule_one

Clock = Callable[[], float]
ALGORITHM = "algorithm"


@dataclass(slots=True)
class Scheduler:
    """The scheduler core over one snapshot, with kube-scheduler's round-robin start index."""

    snapshot: Snapshot
    framework: Framework
    rng: random.Random
    percentage_of_nodes_to_score: int = 0
    start_index: int = 0
    preemptions: int = 0
    failures: list[str] = field(default_factory=list)

    @staticmethod
    def for_nodes(nodes: list[dict[str, Any]], clock: Clock, seed: int = 0) -> Scheduler:
        snapshot = Snapshot(nodes, [])
        handle = SnapshotHandle(snapshot, clock)
        framework = Framework(default_profile(), default_registry(), handle)
        return Scheduler(snapshot, framework, random.Random(seed))

    def _cycle(self, pod: dict[str, Any]) -> ScheduleResult:
        result = schedule_one(
            self.framework,
            pod,
            self.snapshot,
            percentage_of_nodes_to_score=self.percentage_of_nodes_to_score,
            start_index=self.start_index,
            rng=self.rng,
        )
        if self.snapshot.node_infos:
            self.start_index = (self.start_index + result.evaluated) % len(self.snapshot.node_infos)
        return result

    def schedule(self, pod: dict[str, Any]) -> str | None:
        """Place ``pod`` (preempting once if the cycle nominates a node); its node, or None."""
        result = self._cycle(pod)
        if result.node_name is None and result.nominated:
            self.preemptions += 1
            for victim in result.victims:
                forget(self.snapshot, victim, result.nominated)
            result = self._cycle(pod)
        if result.node_name is None:
            if len(self.failures) < 3:
                self.failures.append(result.message or result.status.message())
            return None
        status = run_binding_cycle(self.framework, result, pod, self.snapshot)
        if not status.is_success():
            if len(self.failures) < 3:
                self.failures.append(status.message())
            return None
        return result.node_name


def run_algorithm(workload: Workload, *, clock: Clock = time.perf_counter, seed: int = 0) -> dict[str, Any]:
    """Run one workload in algorithm mode; the result entry of the suite's JSON (see module doc)."""
    scheduler = Scheduler.for_nodes(workload.build_nodes(), clock, seed)
    init_failed = 0
    for pod in workload.build_init_pods():
        if scheduler.schedule(pod) is None:
            init_failed += 1
    pods = workload.build_measure_pods()
    scheduler.failures.clear()
    bind_times: list[float] = []
    latencies: list[float] = []
    unschedulable = 0
    start = clock()
    for pod in pods:
        began = clock()
        node = scheduler.schedule(pod)
        done = clock()
        if node is None:
            unschedulable += 1
            continue
        bind_times.append(done - start)
        latencies.append(done - began)
    duration = clock() - start
    return result_entry(
        workload,
        bind_times,
        latencies,
        duration,
        extra={
            "init_unschedulable": init_failed,
            "unschedulable": unschedulable,
            "preemptions": scheduler.preemptions,
            "failure_examples": scheduler.failures,
        },
    )


def result_entry(
    workload: Workload,
    bind_times: list[float],
    latencies: list[float],
    duration: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON entry for one algorithm run from bind times (seconds since sampling began)."""
    samples = throughput_samples(bind_times, 0.0)
    throughput = throughput_summary(samples)
    note = None
    if not samples:
        rate = overall_rate(bind_times, 0.0)
        throughput = {"average": rate, "p50": rate, "p90": rate, "p99": rate}
        note = "run shorter than two 1-second windows: all four figures are the overall rate"
    entry: dict[str, Any] = {
        "workload": workload.name,
        "mode": ALGORITHM,
        "throughput": throughput,
        "latency_ms": latency_summary_ms(latencies),
        "hops_per_pod": 0,
        "nodes": workload.nodes,
        "init_pods": workload.init_pods,
        "measured_pods": workload.measure_pods,
        "scheduled": len(bind_times),
        "duration_s": duration,
        "windows": len(samples),
        "throughput_series": samples,
        "latency_meaning": "one pod's scheduling + binding cycle (all measured pods queued at start)",
    }
    if note:
        entry["note"] = note
    entry.update(extra or {})
    return entry
