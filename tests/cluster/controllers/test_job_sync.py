"""The Job reconcile core: finished-pod tracking through the finalizer, success and failure decisions,
Indexed bookkeeping, backoff, deadline, suspend and podFailurePolicy, as plans over fixed inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.controllers.job.indexed import COMPLETION_INDEX_ANNOTATION
from cluster.controllers.job.sync import TRACKING_FINALIZER, JobPlan, same_status, sync_job
from cluster.machinery.times import rfc3339

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=100)


def at(seconds: float) -> str:
    return rfc3339(T0 + timedelta(seconds=seconds))


def job(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "suspend": False,
        "podReplacementPolicy": "TerminatingOrFailed",
        "template": {"spec": {"containers": [{"name": "c"}]}},
    }
    base.update(spec)
    return {
        "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid"},
        "spec": base,
        "status": {"startTime": at(0), **(status or {})},
    }


def pod(
    name: str,
    phase: str = "Running",
    *,
    finished: float | None = None,
    tracked: bool = True,
    index: int | None = None,
    ready: bool = False,
    deleting: bool | float = False,
    exit_code: int = 1,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "creationTimestamp": at(0)}
    if tracked:
        meta["finalizers"] = [TRACKING_FINALIZER]
    if index is not None:
        meta["annotations"] = {COMPLETION_INDEX_ANNOTATION: str(index)}
    if deleting is not False:
        # True: a grace period still running (ends at 150 s, NOW is 100 s); a number: when it ends.
        meta["deletionTimestamp"] = at(150 if deleting is True else deleting)
    status: dict[str, Any] = {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]}
    if finished is not None:
        code = 0 if phase == "Succeeded" else exit_code
        status["containerStatuses"] = [
            {"name": "c", "state": {"terminated": {"exitCode": code, "finishedAt": at(finished)}}}
        ]
    return {"metadata": meta, "status": status}


def names(pods: tuple[dict[str, Any], ...]) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods)


def conditions(plan: JobPlan) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in plan.status.get("conditions", [])}


# ------------------------------------------------------------------------------ creating and deleting


@pytest.mark.parametrize(
    ("spec", "pods", "creates", "deletes"),
    [
        pytest.param({"completions": 3, "parallelism": 2}, [], [None, None], [], id="start-parallel"),
        pytest.param({"completions": 3, "parallelism": 5}, [], [None] * 3, [], id="capped-by-completions"),
        pytest.param(
            {"completions": 3, "parallelism": 2},
            [pod("a", "Succeeded", finished=50, tracked=False), pod("b")],
            [None],
            [],
            id="one-done-one-running",
        ),
        pytest.param(
            {"completions": 4, "parallelism": 1},
            [pod("a"), pod("b", ready=True)],
            [],
            ["a"],
            id="excess-deletes-not-ready-first",
        ),
        pytest.param({"completions": None, "parallelism": 2}, [], [None, None], [], id="work-queue-starts"),
        pytest.param(
            {"completions": None, "parallelism": 3},
            [pod("a", "Succeeded", finished=50, tracked=False), pod("b")],
            [],
            [],
            id="work-queue-no-new-pods-after-a-success",
        ),
        pytest.param(
            {"completions": 2, "parallelism": 2, "podReplacementPolicy": "Failed"},
            [pod("a"), pod("b", deleting=True)],
            [],
            [],
            id="terminating-holds-its-place-when-only-failed-are-replaced",
        ),
    ],
)
def test_manages_the_number_of_active_pods(
    spec: dict[str, Any], pods: list[dict[str, Any]], creates: list[int | None], deletes: list[str]
) -> None:
    counted = sum(1 for p in pods if p["status"]["phase"] == "Succeeded")
    plan = sync_job(job({"succeeded": counted}, **spec), pods, NOW)
    assert list(plan.create) == creates
    assert names(plan.delete_uncounted) == deletes
    assert plan.delete == ()


def test_no_pods_are_created_or_deleted_while_expectations_are_pending() -> None:
    plan = sync_job(
        job(completions=3, parallelism=3), [pod("a", "Succeeded", finished=10)], NOW, manage=False
    )
    assert plan.create == () and plan.delete_uncounted == ()
    assert plan.status["succeeded"] == 1


# --------------------------------------------------------------------------------- finalizer tracking


def test_finished_pods_go_through_uncounted_then_counts() -> None:
    pods = [pod("a", "Succeeded", finished=10), pod("b", "Failed", finished=20), pod("c")]
    plan = sync_job(job({"succeeded": 1, "failed": 0}, completions=5, parallelism=1), pods, NOW)
    assert plan.interim_status is not None
    assert plan.interim_status["uncountedTerminatedPods"] == {"succeeded": ["uid-a"], "failed": ["uid-b"]}
    assert names(plan.remove_finalizers) == ["a", "b"]
    assert plan.status["succeeded"] == 2 and plan.status["failed"] == 1
    assert plan.status["uncountedTerminatedPods"] == {}
    assert plan.status["active"] == 1


def test_uncounted_pods_from_an_interrupted_pass_are_flushed_without_a_new_interim_write() -> None:
    status = {"succeeded": 0, "uncountedTerminatedPods": {"succeeded": ["uid-a"]}}
    pods = [pod("a", "Succeeded", finished=10)]
    plan = sync_job(job(status, completions=2), pods, NOW)
    assert plan.interim_status is None
    assert names(plan.remove_finalizers) == ["a"]
    assert plan.status["succeeded"] == 1


@pytest.mark.parametrize(
    ("pods", "removed", "succeeded"),
    [
        pytest.param(
            [pod("a", "Succeeded", finished=10, tracked=False)], (), 0, id="no-finalizer-means-counted"
        ),
        pytest.param([pod("a", "Succeeded", finished=10)], ("uid-a",), 0, id="removal-not-yet-in-cache"),
        pytest.param([pod("a", "Succeeded", finished=10)], (), 1, id="tracked-is-counted"),
    ],
)
def test_pods_are_counted_once(pods: list[dict[str, Any]], removed: tuple[str, ...], succeeded: int) -> None:
    plan = sync_job(
        job({"succeeded": 0}, completions=3, parallelism=0), pods, NOW, finalizers_removed=removed
    )
    assert plan.status["succeeded"] == succeeded


def test_a_deleted_running_pod_counts_as_failed_by_default() -> None:
    plan = sync_job(job(completions=1), [pod("a", deleting=True)], NOW)
    assert plan.status["failed"] == 1
    assert plan.status["terminating"] == 1


def test_a_finished_job_only_lets_its_pods_go() -> None:
    done = job({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1})
    plan = sync_job(done, [pod("a", "Succeeded", finished=10), pod("b")], NOW)
    assert names(plan.remove_finalizers) == ["a", "b"]
    assert plan.create == () and plan.delete == () and plan.interim_status is None
    assert plan.status == done["status"]


# ------------------------------------------------------------------------------------------ decisions


@pytest.mark.parametrize(
    ("status", "spec", "pods", "conds", "deleted", "events"),
    [
        pytest.param(
            {"succeeded": 2},
            {"completions": 3, "parallelism": 2},
            [pod("c", "Succeeded", finished=90)],
            {
                "SuccessCriteriaMet": ("True", "CompletionsReached"),
                "Complete": ("True", "CompletionsReached"),
            },
            [],
            [("Normal", "Completed", "Job completed")],
            id="complete",
        ),
        pytest.param(
            {"succeeded": 2},
            {"completions": 3, "parallelism": 3},
            [pod("c", "Succeeded", finished=90), pod("d")],
            {"SuccessCriteriaMet": ("True", "CompletionsReached")},
            ["d"],
            [],
            id="success-waits-for-the-rest-to-stop",
        ),
        pytest.param(
            {"failed": 1},
            {"backoffLimit": 1},
            [pod("b", "Failed", finished=90)],
            {"FailureTarget": ("True", "BackoffLimitExceeded"), "Failed": ("True", "BackoffLimitExceeded")},
            [],
            [("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit")],
            id="backoff-limit",
        ),
        pytest.param(
            {"failed": 1},
            {"backoffLimit": 1, "completions": 2, "parallelism": 2},
            [pod("b", "Failed", finished=90), pod("c")],
            {"FailureTarget": ("True", "BackoffLimitExceeded")},
            ["c"],
            [],
            id="backoff-limit-stops-active-pods-first",
        ),
        pytest.param(
            {},
            {"activeDeadlineSeconds": 50},
            [pod("a")],
            {"FailureTarget": ("True", "DeadlineExceeded")},
            ["a"],
            [],
            id="deadline",
        ),
        pytest.param(
            {},
            {"activeDeadlineSeconds": 50},
            [],
            {"FailureTarget": ("True", "DeadlineExceeded"), "Failed": ("True", "DeadlineExceeded")},
            [],
            [("Warning", "DeadlineExceeded", "Job was active longer than specified deadline")],
            id="deadline-no-pods",
        ),
        pytest.param(
            {
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded", "message": "m"}
                ]
            },
            {},
            [pod("a", deleting=True)],
            {"FailureTarget": ("True", "DeadlineExceeded")},
            [],
            [],
            id="failed-waits-for-terminating-pods",
        ),
        pytest.param(
            {},
            {"completions": None, "parallelism": 2},
            [pod("a", "Succeeded", finished=80, tracked=False), pod("b", "Succeeded", finished=90)],
            {
                "SuccessCriteriaMet": ("True", "CompletionsReached"),
                "Complete": ("True", "CompletionsReached"),
            },
            [],
            [("Normal", "Completed", "Job completed")],
            id="work-queue-done-when-none-active",
        ),
    ],
)
def test_finish_decisions(
    status: dict[str, Any],
    spec: dict[str, Any],
    pods: list[dict[str, Any]],
    conds: dict[str, tuple[str, str]],
    deleted: list[str],
    events: list[tuple[str, str, str]],
) -> None:
    plan = sync_job(job(status, **spec), pods, NOW)
    assert conditions(plan) == conds
    assert names(plan.delete) == deleted
    assert list(plan.events) == events
    assert plan.create == ()
    assert ("completionTime" in plan.status) == ("Complete" in conds)


def test_backoff_delays_the_replacement_and_asks_to_look_again() -> None:
    pods = [pod("a", "Failed", finished=95, tracked=False), pod("b", "Failed", finished=80, tracked=False)]
    plan = sync_job(job({"failed": 2}), pods, NOW)
    assert plan.create == ()
    assert plan.requeue_after == pytest.approx(15.0)  # 2 failures: 20 s from the last one at 95 s


def test_replacement_is_created_once_the_backoff_passed() -> None:
    plan = sync_job(job({"failed": 1}), [pod("a", "Failed", finished=50, tracked=False)], NOW)
    assert plan.create == (None,)


def test_deadline_asks_to_look_again_when_it_expires() -> None:
    plan = sync_job(job(activeDeadlineSeconds=300), [pod("a")], NOW)
    assert plan.requeue_after == pytest.approx(200.0)


def test_start_time_is_set_on_the_first_pass() -> None:
    fresh = job(completions=1)
    del fresh["status"]["startTime"]
    plan = sync_job(fresh, [], NOW)
    assert plan.status["startTime"] == rfc3339(NOW)


# ---------------------------------------------------------------------------------------------- indexed


def test_indexed_creates_the_lowest_missing_indexes() -> None:
    pods = [pod("a", index=1), pod("b", "Succeeded", finished=10, index=0, tracked=False)]
    plan = sync_job(
        job(
            {"completedIndexes": "0", "succeeded": 1}, completionMode="Indexed", completions=5, parallelism=3
        ),
        pods,
        NOW,
    )
    assert plan.create == (2, 3)


def test_indexed_counts_each_index_once_and_writes_ranges() -> None:
    pods = [
        pod("a", "Succeeded", finished=10, index=0),
        pod("a2", "Succeeded", finished=11, index=0),
        pod("b", "Succeeded", finished=12, index=2),
        pod("c", index=1),
    ]
    spec = {"completionMode": "Indexed", "completions": 4, "parallelism": 2}
    plan = sync_job(job({"completedIndexes": "3", "succeeded": 1}, **spec), pods, NOW)
    assert plan.status["completedIndexes"] == "0,2-3"
    assert plan.status["succeeded"] == 3
    assert names(plan.remove_finalizers) == ["a", "a2", "b"]  # the duplicate is let go uncounted
    assert plan.interim_status is not None
    assert sorted(plan.interim_status["uncountedTerminatedPods"]["succeeded"]) == ["uid-a", "uid-b"]


def test_indexed_deletes_duplicates_and_invalid_indexes() -> None:
    pods = [pod("a", index=0), pod("a2", index=0, ready=True), pod("x", index=9), pod("y")]
    spec = {"completionMode": "Indexed", "completions": 3, "parallelism": 3}
    plan = sync_job(job(**spec), pods, NOW)
    assert names(plan.delete_uncounted) == ["a", "x", "y"]
    assert plan.create == (1, 2)


def test_indexed_completes_when_every_index_succeeded() -> None:
    spec = {"completionMode": "Indexed", "completions": 2, "parallelism": 2}
    plan = sync_job(
        job({"completedIndexes": "0", "succeeded": 1}, **spec),
        [pod("b", "Succeeded", finished=5, index=1)],
        NOW,
    )
    assert conditions(plan)["Complete"] == ("True", "CompletionsReached")
    assert plan.status["completedIndexes"] == "0-1"


# -------------------------------------------------------------------------------------- failure policy


def test_pod_failure_policy_fail_job() -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    plan = sync_job(
        job(podFailurePolicy=policy, completions=2, parallelism=2),
        [pod("a", "Failed", finished=90, exit_code=42), pod("b")],
        NOW,
    )
    assert conditions(plan) == {"FailureTarget": ("True", "PodFailurePolicy")}
    assert names(plan.delete) == ["b"]
    message = plan.status["conditions"][0]["message"]
    assert message == "Container c for pod ns/a failed with exit code 42 matching FailJob rule at index 0"


def test_pod_failure_policy_ignore_neither_counts_nor_backs_off() -> None:
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [137]}}]}
    plan = sync_job(
        job({"failed": 0}, podFailurePolicy=policy, backoffLimit=0),
        [pod("a", "Failed", finished=99, exit_code=137)],
        NOW,
    )
    assert plan.status["failed"] == 0
    assert plan.interim_status is None
    assert names(plan.remove_finalizers) == ["a"]
    assert plan.create == (None,)
    assert "FailureTarget" not in conditions(plan)


def test_pod_failure_policy_count_counts() -> None:
    policy = {"rules": [{"action": "Count", "onExitCodes": {"operator": "In", "values": [3]}}]}
    plan = sync_job(
        job({"failed": 0}, podFailurePolicy=policy, backoffLimit=0),
        [pod("a", "Failed", finished=99, exit_code=3)],
        NOW,
    )
    assert plan.status["failed"] == 1
    assert conditions(plan)["Failed"] == ("True", "BackoffLimitExceeded")


# ----------------------------------------------------------------------------------------------- suspend


def test_suspend_deletes_active_pods_uncounted_and_sets_the_condition() -> None:
    plan = sync_job(job(suspend=True, completions=2, parallelism=2), [pod("a"), pod("b")], NOW)
    assert names(plan.delete_uncounted) == ["a", "b"]
    assert plan.delete == ()
    assert conditions(plan) == {"Suspended": ("True", "JobSuspended")}
    assert list(plan.events) == [("Normal", "Suspended", "Job suspended")]
    assert plan.create == ()


def test_resume_resets_the_start_time() -> None:
    suspended = {
        "conditions": [
            {"type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended"}
        ]
    }
    plan = sync_job(job(suspended), [], NOW)
    assert conditions(plan) == {"Suspended": ("False", "JobResumed")}
    assert plan.status["startTime"] == rfc3339(NOW)
    assert list(plan.events) == [("Normal", "Resumed", "Job resumed")]
    assert plan.create == (None,)


# ---------------------------------------------------------------------------------------------- status


def test_ready_and_active_counts() -> None:
    plan = sync_job(job(completions=3, parallelism=3), [pod("a", ready=True), pod("b")], NOW)
    assert plan.status["active"] == 3  # two running, one being created
    assert plan.status["ready"] == 1


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param({"active": 0, "uncountedTerminatedPods": {}}, {}, True, id="zeros-and-empties"),
        pytest.param({"active": 1}, {}, False, id="a-count"),
        pytest.param(
            {"uncountedTerminatedPods": {"failed": []}}, {"uncountedTerminatedPods": {}}, True, id="nested"
        ),
    ],
)
def test_same_status(a: dict[str, Any], b: dict[str, Any], same: bool) -> None:
    assert same_status(a, b) is same


def restarting(name: str, restarts: int) -> dict[str, Any]:
    running = pod(name)
    running["status"]["containerStatuses"] = [
        {"name": "c", "restartCount": restarts, "state": {"running": {}}}
    ]
    return running


@pytest.mark.parametrize(
    ("restart_policy", "backoff_limit", "restarts", "fails"),
    [
        pytest.param("OnFailure", 2, [1, 1], True, id="restarts-reach-the-limit"),
        pytest.param("OnFailure", 3, [1, 1], False, id="below-the-limit"),
        pytest.param("OnFailure", 0, [1, 0], True, id="limit-zero-any-restart"),
        pytest.param("OnFailure", 0, [0, 0], False, id="limit-zero-no-restart"),
        pytest.param("Never", 2, [5, 5], False, id="never-ignores-restarts"),
    ],
)
def test_container_restarts_count_under_on_failure(
    restart_policy: str, backoff_limit: int, restarts: list[int], fails: bool
) -> None:
    template = {"spec": {"restartPolicy": restart_policy, "containers": [{"name": "c"}]}}
    pods = [restarting(f"p{i}", n) for i, n in enumerate(restarts)]
    plan = sync_job(
        job(completions=2, parallelism=2, backoffLimit=backoff_limit, template=template), pods, NOW
    )
    assert ("FailureTarget" in conditions(plan)) == fails


@pytest.mark.parametrize(
    ("grace_ends", "failed", "requeue"),
    [
        pytest.param(150, 0, 50.0, id="grace-running-look-again-when-it-ends"),
        pytest.param(90, 1, None, id="grace-over-counts-as-failed"),
    ],
)
def test_terminating_pods_when_only_failed_pods_are_replaced(
    grace_ends: float, failed: int, requeue: float | None
) -> None:
    spec = {"podReplacementPolicy": "Failed", "completions": 2, "parallelism": 2}
    plan = sync_job(job({"failed": 0}, **spec), [pod("a"), pod("b", deleting=grace_ends)], NOW)
    assert plan.status["failed"] == failed
    assert plan.requeue_after == (None if requeue is None else pytest.approx(requeue))
