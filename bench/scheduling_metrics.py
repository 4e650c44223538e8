"""SchedulingThroughput as scheduler_perf's throughput collector computes it, and latency percentiles.

scheduler_perf samples the count of scheduled pods every second. It ignores ticks until at least one
pod is scheduled, then drops that first sample (it is an outlier: sampling and pod creation start
independently). A tick with no new pods is not recorded as 0 pods/s: it is skipped and the next tick
that sees pods records ``new / elapsed`` once per covered interval (skipped + 1 times). The partial
interval after the last tick is not sampled. The summary is the mean of the samples and the
percentiles ``sorted[ceil(n * p / 100) - 1]``.

Here the same math runs over recorded bind times (seconds, any monotonic origin) with ticks at
``start + k * interval``, so it is pure and testable. Invariants: no clock is read; inputs are not
mutated; an empty sample list gives zeros.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

SAMPLE_INTERVAL_S = 1.0


def throughput_samples(
    bind_times: Sequence[float], start: float, interval: float = SAMPLE_INTERVAL_S
) -> list[float]:
    """Pods/s per sampling window, as scheduler_perf records them (see the module docstring).

    ``bind_times`` are when each measured pod was scheduled; ``start`` is when sampling began (ticks
    at ``start + interval``, ``start + 2 * interval``, ... up to the last bind time).
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    times = sorted(bind_times)
    if not times:
        return []
    samples: list[float] = []
    started = False
    last_count = 0
    last_tick = start
    skipped = 0
    k = 1
    while True:
        tick = start + k * interval
        if tick > times[-1]:
            break
        k += 1
        scheduled = bisect.bisect_right(times, tick)
        if scheduled == 0:
            continue
        if not started:
            started = True
            last_count, last_tick = scheduled, tick
            continue
        new = scheduled - last_count
        if new == 0:
            skipped += 1
            continue
        value = new / (tick - last_tick)
        samples.extend([value] * (skipped + 1))
        last_count, last_tick, skipped = scheduled, tick, 0
    return samples


def percentile_ceil(sorted_values: Sequence[float], p: float) -> float:
    """scheduler_perf's percentile: ``sorted[ceil(n * p / 100) - 1]`` (0 for no values)."""
    if not sorted_values:
        return 0.0
    index = max(math.ceil(len(sorted_values) * p / 100) - 1, 0)
    return float(sorted_values[index])


def throughput_summary(samples: Sequence[float]) -> dict[str, float]:
    """``{"average", "p50", "p90", "p99"}`` over the window samples, in pods/s."""
    ordered = sorted(samples)
    average = sum(ordered) / len(ordered) if ordered else 0.0
    return {
        "average": average,
        "p50": percentile_ceil(ordered, 50),
        "p90": percentile_ceil(ordered, 90),
        "p99": percentile_ceil(ordered, 99),
    }


def overall_rate(bind_times: Sequence[float], start: float) -> float:
    """Pods per second from ``start`` to the last bind (the fallback when a run is under 2 windows)."""
    if not bind_times:
        return 0.0
    elapsed = max(bind_times) - start
    return len(bind_times) / elapsed if elapsed > 0 else 0.0


def latency_summary_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    """``{"p50", "p99"}`` in milliseconds, same percentile rule as the throughput summary."""
    ordered = sorted(latencies_s)
    return {"p50": percentile_ceil(ordered, 50) * 1000.0, "p99": percentile_ceil(ordered, 99) * 1000.0}
