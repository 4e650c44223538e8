"""podFailurePolicy: which rule a failed pod matches, and what it means."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.job.pod_failure_policy import PolicyMatch, match_pod_failure_policy


def failed_pod(
    codes: dict[str, int], conditions: list[dict[str, str]] | None = None, phase: str = "Failed"
) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "status": {
            "phase": phase,
            "conditions": conditions or [],
            "containerStatuses": [
                {"name": name, "state": {"terminated": {"exitCode": code}}} for name, code in codes.items()
            ],
        },
    }


FAIL_ON_42 = {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}
IGNORE_DISRUPTION = {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
COUNT_NOT_IN_1 = {
    "action": "Count",
    "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [1]},
}


@pytest.mark.parametrize(
    ("rules", "pod", "expected"),
    [
        pytest.param(
            [FAIL_ON_42],
            failed_pod({"main": 42}),
            PolicyMatch(
                "FailJob",
                0,
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 0",
            ),
            id="fail-job-exit-code",
        ),
        pytest.param([FAIL_ON_42], failed_pod({"main": 1}), None, id="no-rule-matches"),
        pytest.param(
            [FAIL_ON_42, IGNORE_DISRUPTION],
            failed_pod({"main": 137}, [{"type": "DisruptionTarget", "status": "True"}]),
            PolicyMatch("Ignore", 1),
            id="ignore-by-condition",
        ),
        pytest.param(
            [IGNORE_DISRUPTION],
            failed_pod({"main": 137}, [{"type": "DisruptionTarget", "status": "False"}]),
            None,
            id="condition-status-must-match",
        ),
        pytest.param(
            [IGNORE_DISRUPTION, FAIL_ON_42],
            failed_pod({"main": 42}, [{"type": "DisruptionTarget", "status": "True"}]),
            PolicyMatch("Ignore", 0),
            id="first-rule-wins",
        ),
        pytest.param([COUNT_NOT_IN_1], failed_pod({"main": 3}), PolicyMatch("Count", 0), id="not-in"),
        pytest.param([COUNT_NOT_IN_1], failed_pod({"main": 1}), None, id="not-in-excluded"),
        pytest.param([COUNT_NOT_IN_1], failed_pod({"side": 3}), None, id="other-container-name"),
        pytest.param(
            [{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1]}}],
            failed_pod({"main": 0, "side": 1}),
            None,
            id="exit-zero-never-matches",
        ),
        pytest.param([FAIL_ON_42], failed_pod({"main": 42}, phase="Running"), None, id="only-failed-pods"),
        pytest.param(
            [{"action": "FailJob", "onPodConditions": [{"type": "ConfigIssue", "status": "True"}]}],
            failed_pod({}, [{"type": "ConfigIssue", "status": "True"}]),
            PolicyMatch("FailJob", 0, "Pod ns/p has condition ConfigIssue matching FailJob rule at index 0"),
            id="fail-job-condition-message",
        ),
    ],
)
def test_match_pod_failure_policy(
    rules: list[dict[str, Any]], pod: dict[str, Any], expected: PolicyMatch | None
) -> None:
    assert match_pod_failure_policy({"rules": rules}, pod) == expected


def test_ignore_does_not_count_and_count_does() -> None:
    assert not PolicyMatch("Ignore", 0).counts
    assert PolicyMatch("Count", 0).counts
    assert PolicyMatch("FailJob", 0, "m").counts


def test_no_policy_matches_nothing() -> None:
    assert match_pod_failure_policy(None, failed_pod({"main": 42})) is None
