"""The CronJob controller's shell against an in-memory API: the created Job joins status.active, an
AlreadyExists create is adopted into the status, an active Job missing from the cache is confirmed
with a GET, and history deletes go out with Background propagation."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.cronjob import CronJobController
from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.machinery.times import rfc3339
from tests.cluster.controllers.fakes import T0, FakeClock, FakeRecorder

OWNER = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick", "uid": "cj-uid", "controller": True}


def make_cronjob(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "tick", "namespace": "ns", "uid": "cj-uid", "creationTimestamp": rfc3339(T0)},
        "spec": {
            "schedule": "*/1 * * * *",
            "concurrencyPolicy": "Allow",
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}},
        },
        "status": status or {},
    }


def make_job(name: str, done: bool = False, started: float = 0) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": rfc3339(T0 + timedelta(minutes=started))}
    if done:
        status["conditions"] = [{"type": "Complete", "status": "True"}]
        status["completionTime"] = rfc3339(T0 + timedelta(minutes=started + 0.5))
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "ownerReferences": [OWNER]},
        "status": status,
    }


class FakeApi:
    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = {j["metadata"]["name"]: copy.deepcopy(j) for j in jobs}
        self.status: dict[str, Any] | None = None
        self.calls: list[tuple[str, str, Any]] = []

    async def get(self, gv: str, plural: str, name: str, namespace: str) -> dict[str, Any]:
        if name not in self.jobs:
            raise ApiError(404, "NotFound", name)
        return copy.deepcopy(self.jobs[name])

    async def create(self, gv: str, plural: str, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.calls.append(("create", name, None))
        if name in self.jobs:
            raise ApiError(409, "AlreadyExists", name)
        job = copy.deepcopy(body)
        job["metadata"].update(uid=f"uid-{name}", resourceVersion="7")
        self.jobs[name] = job
        return copy.deepcopy(job)

    async def delete(self, gv: str, plural: str, name: str, namespace: str, **kw: Any) -> dict[str, Any]:
        self.calls.append(("delete", name, kw.get("propagation_policy")))
        self.jobs.pop(name, None)
        return {}

    async def update(
        self, gv: str, plural: str, body: dict[str, Any], namespace: str, **_: Any
    ) -> dict[str, Any]:
        self.status = copy.deepcopy(body["status"])
        return body


def run(
    cronjob: dict[str, Any], cached: list[dict[str, Any]], server: list[dict[str, Any]], minutes: float
) -> tuple[float | None, FakeApi, FakeRecorder]:
    clock = FakeClock(T0)
    clock.advance(minutes * 60)
    recorder = FakeRecorder()
    api = FakeApi(server)
    ctx = ControllerContext(api, SharedInformers(None), clock, lambda _: recorder)  # type: ignore[arg-type]
    controller = CronJobController(ctx)
    controller.cronjobs.upsert(copy.deepcopy(cronjob))
    for j in cached:
        controller.jobs.upsert(copy.deepcopy(j))
    return asyncio.run(controller.reconcile("ns/tick")), api, recorder


def test_creates_the_job_and_records_it_as_active() -> None:
    again, api, recorder = run(make_cronjob(), [], [], 1.25)
    name = f"tick-{int((T0 + timedelta(minutes=1)).timestamp()) // 60}"
    assert api.calls == [("create", name, None)]
    assert api.status is not None
    assert [r["name"] for r in api.status["active"]] == [name]
    assert api.status["active"][0]["uid"] == f"uid-{name}"
    assert api.status["lastScheduleTime"] == rfc3339(T0 + timedelta(minutes=1))
    assert recorder.events == [("Normal", "SuccessfulCreate", f"Created job {name}", "ns/tick")]
    assert again is not None and 44 < again < 46


def test_an_existing_job_of_ours_is_put_in_the_active_list() -> None:
    name = f"tick-{int((T0 + timedelta(minutes=1)).timestamp()) // 60}"
    _, api, recorder = run(make_cronjob(), [], [make_job(name)], 1.25)
    assert api.status is not None and [r["name"] for r in api.status["active"]] == [name]
    assert recorder.reasons() == []


def test_an_active_job_the_cache_has_not_seen_is_not_called_missing() -> None:
    status = {
        "active": [{"name": "late", "uid": "uid-late"}],
        "lastScheduleTime": rfc3339(T0 + timedelta(minutes=1)),
    }
    _, api, recorder = run(make_cronjob(status), [], [make_job("late")], 1.5)
    assert "MissingJob" not in recorder.reasons()
    assert api.status is None  # nothing changed


def test_history_is_trimmed_with_background_propagation() -> None:
    jobs = [make_job("old", done=True, started=0), make_job("new", done=True, started=1)]
    status = {"lastScheduleTime": rfc3339(T0 + timedelta(minutes=2))}
    _, api, recorder = run(make_cronjob(status), jobs, jobs, 2.5)
    assert api.calls == [("delete", "old", "Background")]
    assert ("Normal", "SuccessfulDelete", "Deleted job old", "ns/tick") in recorder.events
