"""Job pod-recreation backoff: the delay sequence, finish times, failures since the last success."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.controllers.job.backoff import (
    backoff_delay,
    failures_after_last_success,
    pod_finish_time,
    remaining_backoff,
)
from cluster.machinery.times import rfc3339

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def finished_pod(phase: str, seconds: float, name: str = "p") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": rfc3339(T0)},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "c", "state": {"terminated": {"exitCode": 0, "finishedAt": rfc3339(at(seconds))}}}
            ],
        },
    }


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        pytest.param(0, 0.0, id="no-failure"),
        pytest.param(1, 10.0, id="first"),
        pytest.param(2, 20.0, id="second"),
        pytest.param(3, 40.0, id="third"),
        pytest.param(5, 160.0, id="fifth"),
        pytest.param(6, 320.0, id="sixth"),
        pytest.param(7, 360.0, id="capped"),
        pytest.param(50, 360.0, id="stays-capped"),
    ],
)
def test_backoff_delay_doubles_from_ten_seconds_to_six_minutes(failures: int, expected: float) -> None:
    assert backoff_delay(failures) == expected


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(finished_pod("Failed", 30), at(30), id="container-finishedAt"),
        pytest.param(
            {
                "metadata": {"creationTimestamp": rfc3339(T0)},
                "status": {
                    "conditions": [
                        {"type": "Ready", "status": "False", "lastTransitionTime": rfc3339(at(12))}
                    ],
                    "containerStatuses": [{"name": "c", "state": {"running": {}}}],
                },
            },
            at(12),
            id="ready-false-when-a-container-has-no-finish",
        ),
        pytest.param(
            {
                "metadata": {
                    "creationTimestamp": rfc3339(T0),
                    "deletionTimestamp": rfc3339(at(40)),
                    "deletionGracePeriodSeconds": 30,
                },
                "status": {},
            },
            at(10),
            id="deletion-minus-grace",
        ),
        pytest.param({"metadata": {"creationTimestamp": rfc3339(at(3))}, "status": {}}, at(3), id="creation"),
    ],
)
def test_pod_finish_time(pod: dict[str, Any], expected: datetime) -> None:
    assert pod_finish_time(pod) == expected


@pytest.mark.parametrize(
    ("succeeded", "failed", "expected"),
    [
        pytest.param([], [], (0, None), id="nothing"),
        pytest.param([], [10, 30, 20], (3, at(30)), id="all-failures"),
        pytest.param([25], [10, 30, 40], (2, at(40)), id="only-after-the-success"),
        pytest.param([50], [10, 30], (0, None), id="success-resets"),
        pytest.param([5, 35], [10, 30, 40], (1, at(40)), id="latest-success-counts"),
    ],
)
def test_failures_after_last_success(
    succeeded: list[float], failed: list[float], expected: tuple[int, datetime | None]
) -> None:
    result = failures_after_last_success(
        [finished_pod("Succeeded", s) for s in succeeded], [finished_pod("Failed", f) for f in failed]
    )
    assert result == expected


@pytest.mark.parametrize(
    ("failures", "since_last", "expected"),
    [
        pytest.param(0, 0, 0.0, id="no-failures"),
        pytest.param(1, 0, 10.0, id="just-failed"),
        pytest.param(1, 4, 6.0, id="part-waited"),
        pytest.param(1, 10, 0.0, id="waited-out"),
        pytest.param(3, 15, 25.0, id="third-failure-40s"),
        pytest.param(9, 100, 260.0, id="capped-six-minutes"),
    ],
)
def test_remaining_backoff(failures: int, since_last: float, expected: float) -> None:
    assert remaining_backoff(failures, T0, at(since_last)) == pytest.approx(expected)
