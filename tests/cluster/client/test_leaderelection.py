"""Leader election against the real API server in process (no Ray), with a manual clock: the tests
move time by hand, so a 15 s lease expires without waiting and no assertion depends on timing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.client.errors import ApiError, TransportError
from cluster.client.leaderelection import (
    GROUP_VERSION,
    LeaderElectionConfig,
    LeaderElector,
    new_identity,
)
from cluster.client.rest import ApiClient
from cluster.machinery.times import parse_rfc3339
from tests.cluster.controllers.local_apiserver import local_apiserver

NS, NAME = "kube-system", "kube-scheduler"


class ManualClock:
    """Time moves only by ``advance``; ``sleep`` parks the caller until then."""

    def __init__(self) -> None:
        self.t = 0.0
        self.origin = datetime(2026, 1, 1, tzinfo=UTC)
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.t + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        self.t += seconds
        due = [(at, f) for at, f in self.sleepers if at <= self.t]
        self.sleepers = [(at, f) for at, f in self.sleepers if at > self.t]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    async def settle(self, sleeping: int, *tasks: asyncio.Task[Any]) -> None:
        """Until ``sleeping`` callers are parked (or one of ``tasks`` ended): every elector has
        finished its step at the current time."""
        async with asyncio.timeout(10):
            while sum(not f.done() for _, f in self.sleepers) < sleeping and not any(t.done() for t in tasks):
                await asyncio.sleep(0.005)


def elector(client: ApiClient, clock: ManualClock, node: str, **kwargs: Any) -> LeaderElector:
    config = LeaderElectionConfig(NS, NAME, new_identity(node), release_on_cancel=kwargs.pop("release", True))
    return LeaderElector(client, config, clock=clock, sleep=clock.sleep, **kwargs)


async def lease(client: ApiClient) -> dict[str, Any]:
    spec: dict[str, Any] = (await client.get(GROUP_VERSION, "leases", NAME, NS))["spec"]
    return spec


def run(test: Callable[[ApiClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with local_apiserver() as client:
            await test(client)

    asyncio.run(main())


def test_the_first_elector_leads_and_writes_a_lease_as_client_go_does() -> None:
    async def test(client: ApiClient) -> None:
        clock = ManualClock()
        a, b = elector(client, clock, "node-a"), elector(client, clock, "node-b")
        assert a.identity.startswith("node-a_")
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        assert a.is_leader() and not b.is_leader()
        assert b.leader == a.identity
        spec = await lease(client)
        assert spec["holderIdentity"] == a.identity
        assert spec["leaseDurationSeconds"] == 15
        assert spec["leaseTransitions"] == 0
        assert spec["acquireTime"] == spec["renewTime"] == "2026-01-01T00:00:00.000000Z"
        clock.advance(2)
        assert await a.try_acquire_or_renew()  # a renewal keeps acquireTime and the transitions
        spec = await lease(client)
        assert spec["acquireTime"] == "2026-01-01T00:00:00.000000Z"
        assert parse_rfc3339(spec["renewTime"]) == clock.now()
        assert spec["leaseTransitions"] == 0

    run(test)


def test_a_standby_takes_over_only_after_the_lease_expires_unrenewed() -> None:
    async def test(client: ApiClient) -> None:
        clock = ManualClock()
        a, b = elector(client, clock, "node-a"), elector(client, clock, "node-b")
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()  # b observes a's record at t=0
        for _ in range(10):  # a renews every 2 s: b sees the record change and never takes it
            clock.advance(2)
            assert await a.try_acquire_or_renew()
            assert not await b.try_acquire_or_renew()
        seen = clock.t
        # a stops renewing (its process hangs or dies): b waits out 15 s from its last observation.
        clock.advance(14.9)
        assert not await b.try_acquire_or_renew()
        assert clock.t - seen < 15
        clock.advance(0.1)
        assert await b.try_acquire_or_renew()
        spec = await lease(client)
        assert spec["holderIdentity"] == b.identity
        assert spec["leaseTransitions"] == 1
        assert parse_rfc3339(spec["acquireTime"]) == clock.now()
        # a wakes up: its renewal finds b's record (new to it) and fails; it no longer leads.
        assert not await a.try_acquire_or_renew()
        assert not a.is_leader() and a.leader == b.identity

    run(test)


def test_release_hands_the_lease_over_at_once() -> None:
    async def test(client: ApiClient) -> None:
        clock = ManualClock()
        a, b = elector(client, clock, "node-a"), elector(client, clock, "node-b")
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        assert await a.release()
        spec = await lease(client)
        assert spec["holderIdentity"] == ""
        assert spec["leaseTransitions"] == 0
        assert not a.is_leader()
        assert not await a.release()  # not ours any more: nothing to release
        assert await b.try_acquire_or_renew()  # no waiting: the holder is empty
        spec = await lease(client)
        assert spec["holderIdentity"] == b.identity
        assert spec["leaseTransitions"] == 1

    run(test)


class InterleavingClient(ApiClient):
    """The real client; ``before_update`` runs once between this client's read and its write, and
    the error the server answered the write with is kept."""

    before_update: Callable[[], Awaitable[Any]] | None = None
    update_error: ApiError | None = None

    async def update(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        hook, self.before_update = self.before_update, None
        if hook is not None:
            await hook()
        try:
            return await super().update(*args, **kwargs)
        except ApiError as err:
            self.update_error = err
            raise


def test_of_two_electors_writing_the_same_record_one_wins_and_the_other_gets_a_409() -> None:
    async def test(client: ApiClient) -> None:
        clock = ManualClock()
        racer = InterleavingClient(client.server)
        try:
            a, b = elector(client, clock, "node-a"), elector(racer, clock, "node-b")
            old = elector(client, clock, "node-old")
            assert await old.try_acquire_or_renew()
            assert await old.release()
            # b reads the released lease; before it writes, a takes it: b's write is stale.
            racer.before_update = a.try_acquire_or_renew
            assert not await b.try_acquire_or_renew()
            assert racer.update_error is not None and racer.update_error.conflict
            assert (await lease(client))["holderIdentity"] == a.identity
            assert a.is_leader() and not b.is_leader()
            assert not await b.try_acquire_or_renew()  # b now sees a's fresh record
            assert b.leader == a.identity
        finally:
            await racer.close()

    run(test)


class BreakableClient(ApiClient):
    """The real client, until ``broken``: then every call fails as if the server were unreachable."""

    broken = False

    async def _request(self, method: str, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.broken:
            raise TransportError(f"{method} {path}: connection refused (test)")
        return await super()._request(method, path, *args, **kwargs)


class Work:
    """A term's work: records that it ran and that it was cancelled."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0

    async def __call__(self) -> None:
        self.started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def test_run_leads_until_cancelled_then_releases_and_the_standby_leads_at_its_next_retry() -> None:
    async def test(client: ApiClient) -> None:
        clock = ManualClock()
        leaders: list[str] = []
        stopped: list[str] = []
        work_a, work_b = Work(), Work()
        a = elector(
            client, clock, "node-a", lead=work_a, on_new_leader=leaders.append,
            on_stopped_leading=lambda: stopped.append("a"),
        )  # fmt: skip
        b = elector(client, clock, "node-b", lead=work_b, on_new_leader=leaders.append)
        task_a = asyncio.create_task(a.run())
        await asyncio.wait_for(a.wait_leading(), 10)
        task_b = asyncio.create_task(b.run())
        await clock.settle(2, task_a, task_b)  # a renews, b retries: both parked on the clock
        assert work_a.started == 1 and work_b.started == 0
        assert leaders == [a.identity, a.identity]  # each elector saw a become leader
        task_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_a
        assert work_a.cancelled == 1 and stopped == ["a"]
        assert (await lease(client))["holderIdentity"] == ""
        clock.advance(2)  # b's next retry, long before a's 15 s would have run out
        await asyncio.wait_for(b.wait_leading(), 10)
        assert work_b.started == 1
        assert (await lease(client))["holderIdentity"] == b.identity
        assert leaders[-1] == b.identity
        task_b.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_b
        assert work_b.cancelled == 1

    run(test)


def test_run_stops_the_work_at_once_when_the_lease_names_someone_else() -> None:
    async def test(client: ApiClient) -> None:
        clock = ManualClock()
        work = Work()
        a = elector(client, clock, "node-a", lead=work)
        task = asyncio.create_task(a.run())
        await asyncio.wait_for(a.wait_leading(), 10)
        await clock.settle(1, task)
        # Someone else wrote the lease (a took too long to renew, say): a's next renewal sees it.
        current = await client.get(GROUP_VERSION, "leases", NAME, NS)
        current["spec"]["holderIdentity"] = "node-z_1"
        await client.update(GROUP_VERSION, "leases", current, NS)
        clock.advance(2)
        await asyncio.wait_for(task, 10)  # run returned: the term is over
        assert work.cancelled == 1
        assert not a.is_leader() and a.leader == "node-z_1"
        assert (await lease(client))["holderIdentity"] == "node-z_1"  # nothing released that is not ours

    run(test)


def test_run_gives_up_after_the_renew_deadline_when_the_server_cannot_be_reached() -> None:
    async def test(client: ApiClient) -> None:
        clock = ManualClock()
        flaky = BreakableClient(client.server)
        try:
            work = Work()
            a = elector(flaky, clock, "node-a", lead=work)
            task = asyncio.create_task(a.run())
            await asyncio.wait_for(a.wait_leading(), 10)
            await clock.settle(1, task)
            flaky.broken = True
            for _ in range(4):  # 8 s without a renewal: still within the 10 s deadline
                clock.advance(2)
                await clock.settle(1, task)
                assert not task.done() and work.cancelled == 0
            clock.advance(2)  # 10 s: it must stop before a standby (15 s) could take over
            await asyncio.wait_for(task, 10)
            assert work.cancelled == 1
        finally:
            await flaky.close()

    run(test)


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [
        pytest.param(10, 10, 2, id="deadline-not-below-duration"),
        pytest.param(15, 2, 2, id="retry-not-below-deadline"),
        pytest.param(15, 10, 0, id="no-retry-period"),
    ],
)
def test_timings_that_would_let_two_lead_are_refused(duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="lease_duration > renew_deadline > retry_period"):
        LeaderElectionConfig(NS, NAME, "me_1", duration, deadline, retry)
