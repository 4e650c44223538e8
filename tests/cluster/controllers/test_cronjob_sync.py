"""The CronJob reconcile core: when a Job starts, concurrency policies, deadlines, missed runs,
active-list bookkeeping and history limits, as plans over fixed inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.controllers.cronjob.sync import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    CronPlan,
    job_from_template,
    job_name,
    jobs_to_trim,
    sync_cronjob,
)
from cluster.machinery.times import rfc3339

CREATED = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def t(minutes: float) -> datetime:
    return CREATED + timedelta(minutes=minutes)


def cronjob(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schedule": "*/1 * * * *",
        "concurrencyPolicy": "Allow",
        "suspend": False,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {
            "metadata": {"labels": {"app": "tick"}, "annotations": {"note": "x"}},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}], "restartPolicy": "Never"}}},
        },
    }
    base.update(spec)
    return {
        "metadata": {
            "name": "tick",
            "namespace": "ns",
            "uid": "cj-uid",
            "creationTimestamp": rfc3339(CREATED),
        },
        "spec": base,
        "status": status or {},
    }


def job(
    name: str, state: str | None = None, *, started: float = 0, completed: float | None = None
) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": rfc3339(t(started))}
    if state is not None:
        status["conditions"] = [{"type": state, "status": "True"}]
    if completed is not None:
        status["completionTime"] = rfc3339(t(completed))
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"}, "status": status}


def ref(name: str) -> dict[str, Any]:
    return {"kind": "Job", "name": name, "namespace": "ns", "uid": f"uid-{name}"}


def reasons(plan: CronPlan) -> list[str]:
    return [reason for _, reason, _ in plan.events]


def deleted(plan: CronPlan) -> list[str]:
    return [j["metadata"]["name"] for j, _ in plan.delete]


# ------------------------------------------------------------------------------------------- starting


def test_starts_the_due_job_with_its_name_annotation_and_owner() -> None:
    plan = sync_cronjob(cronjob(), [], t(1) + timedelta(seconds=5))
    assert plan.create is not None
    scheduled = t(1)
    assert plan.create["metadata"]["name"] == f"tick-{int(scheduled.timestamp()) // 60}"
    assert plan.create["metadata"]["labels"] == {"app": "tick"}
    assert plan.create["metadata"]["annotations"] == {
        "note": "x",
        SCHEDULED_TIMESTAMP_ANNOTATION: "2026-01-01T12:01:00+00:00",
    }
    owner = plan.create["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "CronJob",
        "tick",
        "cj-uid",
        True,
    )
    assert plan.create["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert plan.status["lastScheduleTime"] == rfc3339(scheduled)
    assert plan.requeue_after == pytest.approx(55.1)


def test_scheduled_timestamp_is_written_in_the_time_zone() -> None:
    created = job_from_template(cronjob(timeZone="Asia/Tokyo"), t(1))
    assert created["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == "2026-01-01T21:01:00+09:00"


def test_job_name_is_the_scheduled_time_in_minutes() -> None:
    assert job_name("tick", datetime(1970, 1, 1, 1, 0, tzinfo=UTC)) == "tick-60"


@pytest.mark.parametrize(
    ("cj", "jobs", "now", "created", "event_reasons"),
    [
        pytest.param(cronjob(), [], t(0.5), False, [], id="not-due-yet"),
        pytest.param(cronjob(suspend=True), [], t(5), False, [], id="suspended"),
        pytest.param(
            cronjob({"lastScheduleTime": rfc3339(t(3))}),
            [],
            t(3.5),
            False,
            [],
            id="this-time-already-started",
        ),
        pytest.param(
            cronjob({"active": [ref("a")]}, concurrencyPolicy="Forbid"),
            [job("a")],
            t(1.1),
            False,
            ["JobAlreadyActive"],
            id="forbid-with-active",
        ),
        pytest.param(
            cronjob({"active": [ref("a")]}, concurrencyPolicy="Allow"),
            [job("a")],
            t(1.1),
            True,
            [],
            id="allow",
        ),
        pytest.param(cronjob(startingDeadlineSeconds=10), [], t(1.5), False, ["MissSchedule"], id="too-late"),
        pytest.param(cronjob(startingDeadlineSeconds=60), [], t(1.5), True, [], id="within-deadline"),
        pytest.param(cronjob(), [], t(200), False, ["TooManyMissedTimes"], id="too-many-missed"),
        pytest.param(
            cronjob(startingDeadlineSeconds=120), [], t(200), True, [], id="deadline-bounds-the-missed-count"
        ),
        pytest.param(cronjob(schedule="bad"), [], t(5), False, ["UnparseableSchedule"], id="unparseable"),
        pytest.param(cronjob(timeZone="Nowhere/City"), [], t(5), False, ["UnknownTimeZone"], id="bad-zone"),
        pytest.param(
            {**cronjob(), "metadata": {**cronjob()["metadata"], "deletionTimestamp": rfc3339(t(1))}},
            [],
            t(5),
            False,
            [],
            id="being-deleted",
        ),
    ],
)
def test_whether_a_job_starts(
    cj: dict[str, Any], jobs: list[dict[str, Any]], now: datetime, created: bool, event_reasons: list[str]
) -> None:
    plan = sync_cronjob(cj, jobs, now)
    assert (plan.create is not None) == created
    assert reasons(plan) == event_reasons


def test_many_missed_starts_only_the_most_recent() -> None:
    plan = sync_cronjob(cronjob(), [], t(7) + timedelta(seconds=1))
    assert plan.create is not None
    assert plan.status["lastScheduleTime"] == rfc3339(t(7))


def test_replace_deletes_the_active_jobs_first() -> None:
    plan = sync_cronjob(cronjob({"active": [ref("a")]}, concurrencyPolicy="Replace"), [job("a")], t(1.1))
    assert deleted(plan) == ["a"]
    assert [e for _, e in plan.delete] == [("Normal", "SuccessfulDelete", "Deleted job a")]
    assert plan.create is not None
    assert "active" not in plan.status  # the caller adds the new Job's reference


# ----------------------------------------------------------------------------------------- bookkeeping


def test_a_finished_job_leaves_the_active_list_and_sets_last_successful_time() -> None:
    cj = cronjob({"active": [ref("a"), ref("b")], "lastScheduleTime": rfc3339(t(1))})
    plan = sync_cronjob(cj, [job("a", "Complete", completed=1.5), job("b")], t(1.6))
    assert plan.status["active"] == [ref("b")]
    assert plan.status["lastSuccessfulTime"] == rfc3339(t(1.5))
    assert plan.events == (("Normal", "SawCompletedJob", "Saw completed job: a, condition: Complete"),)


def test_last_successful_time_only_moves_forward() -> None:
    cj = cronjob({"lastSuccessfulTime": rfc3339(t(5)), "lastScheduleTime": rfc3339(t(5))})
    plan = sync_cronjob(cj, [job("a", "Complete", completed=2)], t(5.5))
    assert plan.status["lastSuccessfulTime"] == rfc3339(t(5))


def test_a_missing_active_job_is_dropped() -> None:
    plan = sync_cronjob(cronjob({"active": [ref("gone")], "lastScheduleTime": rfc3339(t(1))}), [], t(1.5))
    assert "active" not in plan.status
    assert reasons(plan) == ["MissingJob"]


@pytest.mark.parametrize(
    ("spec", "jobs", "expected"),
    [
        pytest.param(
            {"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1},
            [
                job("s1", "Complete", started=1),
                job("s3", "Complete", started=3),
                job("s2", "Complete", started=2),
            ],
            ["s1", "s2"],
            id="oldest-successes",
        ),
        pytest.param(
            {"successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1},
            [job("f1", "Failed", started=1), job("f2", "Failed", started=2), job("s1", "Complete"), job("r")],
            ["f1"],
            id="failures-separately-running-untouched",
        ),
        pytest.param(
            {"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 0},
            [job("s", "Complete"), job("f", "Failed")],
            ["s", "f"],
            id="zero-keeps-none",
        ),
        pytest.param({}, [job("s", "Complete"), job("t", "Complete")], [], id="no-limits"),
    ],
)
def test_history_limits(spec: dict[str, Any], jobs: list[dict[str, Any]], expected: list[str]) -> None:
    assert [j["metadata"]["name"] for j in jobs_to_trim(spec, jobs)] == expected


def test_trimmed_jobs_are_deleted_with_an_event() -> None:
    cj = cronjob({"lastScheduleTime": rfc3339(t(3))}, successfulJobsHistoryLimit=1)
    jobs = [job("a", "Complete", started=1), job("b", "Complete", started=2)]
    plan = sync_cronjob(cj, jobs, t(3.5))
    assert deleted(plan) == ["a"]
    assert plan.delete[0][1] == ("Normal", "SuccessfulDelete", "Deleted job a")


def test_a_time_missed_beyond_the_starting_deadline_is_reported_and_not_started() -> None:
    plan = sync_cronjob(cronjob(startingDeadlineSeconds=10), [], t(1.5))
    assert plan.create is None
    assert plan.events == (
        ("Warning", "MissSchedule", "Missed scheduled time to start a job: Thu, 01 Jan 2026 12:01:00 +0000"),
    )
