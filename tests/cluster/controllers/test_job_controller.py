"""The Job controller's shell against an in-memory API: pods created with the tracking finalizer, the
finalizer protocol (uncounted status, finalizer removal, counts) across passes with a lagging cache,
events, backoff requeues, and pods released when their Job goes away."""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.controllers.job import JobController
from cluster.controllers.job.sync import TRACKING_FINALIZER
from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.machinery.times import rfc3339
from tests.cluster.controllers.fakes import T0, FakeClock, FakeRecorder

KEY = "ns/work"


class FakeApi:
    """Jobs and pods "on the server"; deletes honour finalizers, patches replace metadata fields."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._seq = itertools.count(1)

    async def create(self, gv: str, plural: str, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        assert plural == "pods"
        pod = copy.deepcopy(body)
        n = next(self._seq)
        meta = pod["metadata"]
        meta.update(
            name=f"{meta.pop('generateName')}{n}",
            uid=f"pod-{n}",
            resourceVersion=str(n),
            creationTimestamp=rfc3339(self.clock.now()),
        )
        pod["status"] = {"phase": "Pending"}
        self.pods[meta["name"]] = pod
        self.calls.append(("create", meta["name"]))
        return copy.deepcopy(pod)

    async def update(
        self, gv: str, plural: str, body: dict[str, Any], namespace: str, *, subresource: str | None = None
    ) -> dict[str, Any]:
        assert (plural, subresource) == ("jobs", "status")
        stored = self.jobs[body["metadata"]["name"]]
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        stored["status"] = copy.deepcopy(body["status"])
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
        self.calls.append(("status", body["metadata"]["name"]))
        return copy.deepcopy(stored)

    async def patch(
        self, gv: str, plural: str, name: str, patch: dict[str, Any], namespace: str
    ) -> dict[str, Any]:
        pod = self.pods.get(name)
        if pod is None:
            raise ApiError(404, "NotFound", name)
        pod["metadata"]["finalizers"] = patch["metadata"]["finalizers"]
        self.calls.append(("unfinalize", name))
        self._settle(name)
        return copy.deepcopy(pod)

    async def delete(self, gv: str, plural: str, name: str, namespace: str, **_: Any) -> dict[str, Any]:
        pod = self.pods.get(name)
        if pod is None:
            raise ApiError(404, "NotFound", name)
        pod["metadata"]["deletionTimestamp"] = rfc3339(self.clock.now())
        self.calls.append(("delete", name))
        self._settle(name)
        return copy.deepcopy(pod)

    def _settle(self, name: str) -> None:
        meta = self.pods[name]["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.pods[name]

    def finish(self, name: str, phase: str, exit_code: int = 0) -> None:
        pod = self.pods[name]
        pod["status"] = {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "c",
                    "state": {"terminated": {"exitCode": exit_code, "finishedAt": rfc3339(self.clock.now())}},
                }
            ],
        }
        pod["metadata"]["resourceVersion"] = str(int(pod["metadata"]["resourceVersion"]) + 1000)


def make_job(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "completions": 3,
        "parallelism": 2,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "suspend": False,
        "podReplacementPolicy": "TerminatingOrFailed",
        "template": {
            "metadata": {"labels": {"batch.kubernetes.io/job-name": "work"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"},
        },
    }
    base.update(spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "work", "namespace": "ns", "uid": "job-uid", "resourceVersion": "1"},
        "spec": base,
        "status": {},
    }


class Harness:
    def __init__(self, **spec: Any) -> None:
        self.clock = FakeClock(T0)
        self.recorder = FakeRecorder()
        self.api = FakeApi(self.clock)
        self.api.jobs["work"] = make_job(**spec)
        ctx = ControllerContext(self.api, SharedInformers(None), self.clock, lambda _: self.recorder)  # type: ignore[arg-type]
        self.controller = JobController(ctx)
        self.catch_up()

    def reconcile(self) -> float | None:
        return asyncio.run(self.controller.reconcile(KEY))

    def catch_up(self) -> None:
        """Deliver the server's state through the handlers, as the informers would."""
        c = self.controller
        job = copy.deepcopy(self.api.jobs.get("work"))
        if job is None:
            c.jobs.remove(KEY)
        else:
            c.jobs.upsert(job)
        for key in list(c.pods.keys()):
            if key.split("/", 1)[1] not in self.api.pods:
                c._pod_deleted(c.pods.remove(key) or {})
        for pod in self.api.pods.values():
            old = c.pods.upsert(copy.deepcopy(pod))
            if old is None:
                c._pod_added(pod)
            else:
                c._pod_updated(old, pod)

    def status(self) -> dict[str, Any]:
        return self.api.jobs["work"]["status"]

    def live(self) -> list[str]:
        return sorted(
            n for n, p in self.api.pods.items() if p["status"]["phase"] not in ("Succeeded", "Failed")
        )


def test_a_job_of_three_completions_runs_to_complete() -> None:
    h = Harness()
    h.reconcile()
    pods = sorted(h.api.pods)
    assert len(pods) == 2
    created = h.api.pods[pods[0]]
    assert created["metadata"]["finalizers"] == [TRACKING_FINALIZER]
    assert created["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
    assert h.status()["active"] == 2 and h.status()["startTime"] == rfc3339(T0)
    with pytest.raises(ApiError, match="Conflict"):
        h.reconcile()  # a status from a stale cache is refused; the key comes back with backoff
    h.controller.jobs.upsert(copy.deepcopy(h.api.jobs["work"]))
    h.reconcile()  # expectations unmet (the cache has not seen the pods): nothing more is created
    assert len(h.api.pods) == 2
    h.catch_up()
    for name in pods:
        h.api.finish(name, "Succeeded")
    h.catch_up()
    h.reconcile()
    assert h.status()["succeeded"] == 2
    assert all(not p["metadata"]["finalizers"] for n, p in h.api.pods.items() if n in pods)
    assert len(h.live()) == 1
    h.reconcile()  # the cache still shows the finalizers: the pods are not counted again
    assert h.status()["succeeded"] == 2
    h.catch_up()
    h.api.finish(h.live()[0], "Succeeded")
    h.catch_up()
    h.reconcile()
    status = h.status()
    assert status["succeeded"] == 3 and status["active"] == 0
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "SuccessCriteriaMet": "CompletionsReached",
        "Complete": "CompletionsReached",
    }
    assert status["completionTime"] == rfc3339(T0)
    assert status["uncountedTerminatedPods"] == {}
    assert h.recorder.reasons().count("SuccessfulCreate") == 3
    assert h.recorder.reasons()[-1] == "Completed"
    assert ("Normal", "Completed", "Job completed", KEY) in h.recorder.events


def test_a_failing_job_backs_off_then_stops_at_its_limit() -> None:
    h = Harness(completions=1, parallelism=1, backoffLimit=1)
    h.reconcile()
    h.catch_up()
    first = h.live()[0]
    h.api.finish(first, "Failed", 1)
    h.catch_up()
    again = h.reconcile()
    assert h.status()["failed"] == 1
    assert h.live() == []  # no replacement during the backoff
    assert again == pytest.approx(10.0)
    h.catch_up()
    h.clock.advance(10)
    h.reconcile()
    assert len(h.live()) == 1
    h.catch_up()
    h.api.finish(h.live()[0], "Failed", 1)
    h.catch_up()
    h.reconcile()
    status = h.status()
    assert status["failed"] == 2
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "FailureTarget": "BackoffLimitExceeded",
        "Failed": "BackoffLimitExceeded",
    }
    assert (
        "Warning",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
        KEY,
    ) in h.recorder.events
    assert len(h.api.pods) == 2  # exactly backoffLimit + 1 pods, kept for their logs


def test_interrupted_finalizer_removal_resumes_without_double_counting() -> None:
    h = Harness(completions=2, parallelism=2)
    h.reconcile()
    h.catch_up()
    names = sorted(h.api.pods)
    for name in names:
        h.api.finish(name, "Succeeded")
    h.catch_up()

    real_patch = h.api.patch

    async def broken_patch(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ApiError(500, "InternalError", "etcd down")

    h.api.patch = broken_patch  # type: ignore[method-assign]
    with pytest.raises(ApiError):
        h.reconcile()
    assert h.status()["uncountedTerminatedPods"] == {
        "succeeded": [h.api.pods[n]["metadata"]["uid"] for n in names]
    }
    assert not h.status().get("succeeded")
    h.api.patch = real_patch  # type: ignore[method-assign]
    h.catch_up()
    h.reconcile()
    assert h.status()["succeeded"] == 2
    assert h.status()["uncountedTerminatedPods"] == {}
    assert any(c["type"] == "Complete" for c in h.status()["conditions"])


def test_indexed_pods_carry_their_index() -> None:
    h = Harness(completionMode="Indexed", completions=3, parallelism=3)
    h.reconcile()
    pods = sorted(h.api.pods.values(), key=lambda p: p["metadata"]["name"])
    assert [p["metadata"]["name"] for p in pods] == ["work-0-1", "work-1-2", "work-2-3"]
    assert [p["spec"]["hostname"] for p in pods] == ["work-0", "work-1", "work-2"]
    assert [p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods] == [
        "0",
        "1",
        "2",
    ]
    h.catch_up()
    h.api.finish("work-0-1", "Succeeded")
    h.api.finish("work-2-3", "Succeeded")
    h.catch_up()
    h.reconcile()
    assert h.status()["completedIndexes"] == "0,2"
    assert h.status()["succeeded"] == 2


def test_suspend_removes_pods_without_counting_them() -> None:
    h = Harness(completions=2, parallelism=2)
    h.reconcile()
    h.catch_up()
    h.api.jobs["work"]["spec"]["suspend"] = True
    h.catch_up()
    h.reconcile()
    assert h.api.pods == {}  # finalizer removed first, so the delete completes
    assert not h.status().get("failed")
    assert any(c["type"] == "Suspended" and c["status"] == "True" for c in h.status()["conditions"])
    assert h.recorder.reasons().count("SuccessfulDelete") == 2


def test_pods_of_a_deleted_job_lose_the_finalizer() -> None:
    h = Harness()
    h.reconcile()
    h.catch_up()
    del h.api.jobs["work"]
    for name in list(h.api.pods):
        h.api.pods[name]["metadata"]["deletionTimestamp"] = rfc3339(T0)  # the garbage collector's delete
    h.catch_up()
    h.reconcile()
    assert h.api.pods == {}


def test_a_job_managed_by_another_controller_is_left_alone() -> None:
    h = Harness(managedBy="example.com/other")
    assert h.reconcile() is None
    assert h.api.pods == {} and h.api.calls == []
