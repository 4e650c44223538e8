"""TTL after finished: when a finished Job expires, and the controller deleting it (re-read first,
uid precondition, Background propagation)."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.controllers.ttl_after_finished import (
    TTLAfterFinishedController,
    expire_at,
    finish_time,
    time_left,
)
from cluster.machinery.times import rfc3339
from tests.cluster.controllers.fakes import T0, FakeClock, FakeRecorder


def job(ttl: int | None, finished: str | None = "Complete", at: float = 0, **meta: Any) -> dict[str, Any]:
    conditions = []
    if finished is not None:
        conditions.append(
            {"type": finished, "status": "True", "lastTransitionTime": rfc3339(T0 + timedelta(seconds=at))}
        )
    spec = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}
    return {
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1", **meta},
        "spec": spec,
        "status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, *conditions]},
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(job(60), T0 + timedelta(seconds=60), id="complete"),
        pytest.param(job(0, "Failed", at=5), T0 + timedelta(seconds=5), id="failed-ttl-zero"),
        pytest.param(job(None), None, id="no-ttl"),
        pytest.param(job(60, None), None, id="still-running"),
        pytest.param(job(60, deletionTimestamp=rfc3339(T0)), None, id="being-deleted"),
    ],
)
def test_expire_at(obj: dict[str, Any], expected: datetime | None) -> None:
    assert expire_at(obj) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(0, 100.0, id="just-finished"),
        pytest.param(99, 1.0, id="almost"),
        pytest.param(100, 0.0, id="due"),
        pytest.param(150, -50.0, id="overdue"),
    ],
)
def test_time_left(now: float, expected: float) -> None:
    assert time_left(job(100), T0 + timedelta(seconds=now)) == expected


def test_finish_time_ignores_a_false_condition() -> None:
    obj = job(10, None)
    obj["status"]["conditions"].append(
        {"type": "Complete", "status": "False", "lastTransitionTime": rfc3339(T0)}
    )
    assert finish_time(obj) is None


class FakeApi:
    def __init__(self, stored: dict[str, Any] | None) -> None:
        self.stored = stored
        self.deletes: list[tuple[str, str | None, dict[str, Any] | None]] = []

    async def get(self, gv: str, plural: str, name: str, namespace: str) -> dict[str, Any]:
        if self.stored is None:
            raise ApiError(404, "NotFound", name)
        return copy.deepcopy(self.stored)

    async def delete(
        self,
        gv: str,
        plural: str,
        name: str,
        namespace: str,
        *,
        propagation_policy: str | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self.deletes.append((name, propagation_policy, preconditions))
        return {}


def run(cached: dict[str, Any], stored: dict[str, Any] | None, now: float) -> tuple[float | None, FakeApi]:
    clock = FakeClock(T0)
    clock.advance(now)
    api = FakeApi(stored)
    ctx = ControllerContext(api, SharedInformers(None), clock, lambda _: FakeRecorder())  # type: ignore[arg-type]
    controller = TTLAfterFinishedController(ctx)
    controller.jobs.upsert(copy.deepcopy(cached))
    return asyncio.run(controller.reconcile("ns/j")), api


@pytest.mark.parametrize(
    ("cached", "stored", "now", "again", "deleted"),
    [
        pytest.param(job(30), job(30), 10, 20.0, False, id="not-yet-requeue"),
        pytest.param(job(30), job(30), 30, None, True, id="expired-deleted"),
        pytest.param(job(30), job(300), 40, 260.0, False, id="ttl-raised-on-the-server"),
        pytest.param(job(30), job(None), 40, None, False, id="ttl-removed-on-the-server"),
        pytest.param(job(30), None, 40, None, False, id="already-gone"),
        pytest.param(job(None), job(None), 40, None, False, id="no-ttl"),
    ],
)
def test_controller(
    cached: dict[str, Any], stored: dict[str, Any] | None, now: float, again: float | None, deleted: bool
) -> None:
    result, api = run(cached, stored, now)
    assert result == again
    assert api.deletes == ([("j", "Background", {"uid": "u1"})] if deleted else [])
