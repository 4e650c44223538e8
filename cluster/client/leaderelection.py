"""Leader election over a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` with
its ``LeaseLock`` does it, so several instances of a component can run and only one works.

The Lease is the lock: ``spec.holderIdentity`` names the leader, ``renewTime`` (MicroTime) moves on
every renewal, ``leaseTransitions`` counts changes of holder. An elector:

* campaigns: every ``retry_period`` it reads the Lease; it may take it when it does not exist, has no
  holder (released), or its record has not changed for ``leaseDurationSeconds`` *as this elector
  observed it* (its own monotonic clock from the moment it last saw the record change, never the
  writer's timestamps, so clock skew between hosts does not matter);
* writes with the ``resourceVersion`` it read, so of two electors racing for one record exactly one
  wins and the other gets a 409 (it just tries again later);
* while leading, renews every ``retry_period``; if no renewal succeeded for ``renew_deadline`` (or
  the Lease turns out to name someone else) it stops leading at once;
* on a clean stop (cancellation) with ``release_on_cancel`` clears ``holderIdentity`` so a standby
  takes over at its next retry instead of waiting out the lease (client-go's ``ReleaseOnCancel``).

``run`` is one term: it returns once leadership is lost (callers campaign again by calling it
again). The work of a term is the ``lead`` coroutine function, run as a task from the moment the
Lease is won and cancelled (and awaited) before ``run`` returns, like client-go's
``OnStartedLeading(ctx)`` whose context is cancelled on loss. The clock and the sleep are injectable
so tests drive the protocol without waiting for real leases to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.rest import ApiClient
from cluster.machinery.times import Clock, SystemClock, rfc3339_micro

log = logging.getLogger("raykube.leaderelection")

GROUP_VERSION = "coordination.k8s.io/v1"
LEASE_DURATION = 15.0  # Kubernetes' defaults for kube-scheduler and kube-controller-manager
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0


async def campaign_forever(elector: LeaderElector) -> None:
    """Term after term, as Kubernetes' components restart after losing the lease: ``run`` returns
    once leadership is lost (its work already stopped); campaign again after the retry period."""
    while True:
        try:
            await elector.run()
        except Exception:
            log.exception("leader election for %s failed; campaigning again", elector.config.name)
        await asyncio.sleep(elector.config.retry_period)


def new_identity(node_name: str) -> str:
    """``<node name>_<uuid4>``: unique per process incarnation, readable in ``kubectl get leases``."""
    return f"{node_name}_{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    """Which Lease, who we are, and client-go's timings (``lease_duration > renew_deadline >
    retry_period`` is required: a leader must give up before a standby may take over)."""

    namespace: str
    name: str
    identity: str
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs a non-empty identity (e.g. new_identity(node name))")
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "leader election timings must satisfy lease_duration > renew_deadline > retry_period > 0 "
                f"(got {self.lease_duration}, {self.renew_deadline}, {self.retry_period})"
            )


@dataclass(frozen=True, slots=True)
class LeaderElectionRecord:
    """The Lease spec's fields that leader election reads and writes."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int = 0

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaderElectionRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder_identity=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            lease_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.lease_transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            spec["renewTime"] = self.renew_time
        return spec


Lead = Callable[[], Coroutine[Any, Any, None]]


class LeaderElector:
    """Campaigns for and holds one Lease; see the module doc. One elector runs one ``run`` at a time.

    Callbacks: ``lead`` (the term's work, a coroutine function run as a task while leading),
    ``on_stopped_leading`` (after the work was cancelled and awaited) and ``on_new_leader(identity)``
    (whenever the observed holder changes, ourselves included; not for a released, empty holder).
    Awaitables: ``wait_leading()`` returns once this elector leads.
    """

    def __init__(
        self,
        client: ApiClient,
        config: LeaderElectionConfig,
        *,
        lead: Lead | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.config = config
        self._lead = lead
        self._on_stopped_leading = on_stopped_leading
        self._on_new_leader = on_new_leader
        self.clock = clock or SystemClock()
        self._sleep = sleep
        self.observed: LeaderElectionRecord | None = None
        self._observed_raw: dict[str, Any] | None = None  # the spec as read: a change restarts expiry
        self._observed_at = 0.0  # monotonic time the record was last seen to change
        self._resource_version: str | None = None
        self._reported_leader = ""
        self._leading = asyncio.Event()

    # -- state -------------------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return self.config.identity

    def is_leader(self) -> bool:
        """Whether the last record this elector saw (or wrote) names it as holder."""
        return self.observed is not None and self.observed.holder_identity == self.identity

    @property
    def leader(self) -> str:
        """The holder last observed ('' when none or released)."""
        return self.observed.holder_identity if self.observed else ""

    async def wait_leading(self) -> None:
        await self._leading.wait()

    # -- one attempt -------------------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One read-and-write of the Lease: True when this elector holds it afterwards.

        Never raises for the API's answers: a read or write that fails (a 409 included: someone
        else wrote first) counts as not holding it this time.
        """
        cfg = self.config
        stamp = rfc3339_micro(self.clock.now())
        try:
            lease = await self.client.get(GROUP_VERSION, "leases", cfg.name, cfg.namespace)
        except ApiError as err:
            if not err.not_found:
                log.warning("lease %s/%s: read failed: %s", cfg.namespace, cfg.name, err)
                return False
            return await self._create(stamp)
        spec = dict(lease.get("spec") or {})
        old = LeaderElectionRecord.from_lease(lease)
        now = self.clock.monotonic()
        if spec != self._observed_raw:
            self._observe(old, spec, now)
        self._resource_version = (lease.get("metadata") or {}).get("resourceVersion")
        duration = old.lease_duration_seconds or cfg.lease_duration
        if (
            old.holder_identity
            and old.holder_identity != self.identity
            and self._observed_at + duration > now
        ):
            return False  # held by someone else, and not yet expired as far as we have seen
        if old.holder_identity == self.identity:
            record = LeaderElectionRecord(
                self.identity,
                int(cfg.lease_duration),
                old.acquire_time or stamp,
                stamp,
                old.lease_transitions,
            )
        else:
            record = LeaderElectionRecord(
                self.identity, int(cfg.lease_duration), stamp, stamp, old.lease_transitions + 1
            )
        body = {**lease, "spec": {**spec, **record.spec()}}
        try:
            written = await self.client.update(GROUP_VERSION, "leases", body, cfg.namespace)
        except ApiError as err:
            if not err.conflict:
                log.warning("lease %s/%s: write failed: %s", cfg.namespace, cfg.name, err)
            return False
        self._observe_written(written)
        return True

    async def _create(self, stamp: str) -> bool:
        cfg = self.config
        record = LeaderElectionRecord(self.identity, int(cfg.lease_duration), stamp, stamp, 0)
        body = {
            "apiVersion": GROUP_VERSION,
            "kind": "Lease",
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": record.spec(),
        }
        try:
            written = await self.client.create(GROUP_VERSION, "leases", body, cfg.namespace)
        except ApiError as err:
            if not err.already_exists:
                log.warning("lease %s/%s: create failed: %s", cfg.namespace, cfg.name, err)
            return False
        self._observe_written(written)
        return True

    def _observe(self, record: LeaderElectionRecord, raw: dict[str, Any], at: float) -> None:
        self.observed = record
        self._observed_raw = raw
        self._observed_at = at
        holder = record.holder_identity
        if holder != self._reported_leader:
            self._reported_leader = holder  # '' after a release: the next holder is reported again
            if holder and holder != self.identity:
                log.info("lease %s/%s: new leader %s", self.config.namespace, self.config.name, holder)
            if holder and self._on_new_leader is not None:
                self._on_new_leader(holder)

    def _observe_written(self, lease: dict[str, Any]) -> None:
        self._resource_version = (lease.get("metadata") or {}).get("resourceVersion")
        spec = dict(lease.get("spec") or {})
        self._observe(LeaderElectionRecord.from_lease(lease), spec, self.clock.monotonic())

    async def release(self) -> bool:
        """Give the Lease up if we hold it: clear the holder (keeping ``leaseTransitions``) so a
        standby takes it at its next retry. True when released; False when not ours or the write
        failed (then it expires as usual)."""
        cfg = self.config
        if not self.is_leader() or self.observed is None:
            return False
        stamp = rfc3339_micro(self.clock.now())
        record = LeaderElectionRecord("", 1, stamp, stamp, self.observed.lease_transitions)
        body = {
            "apiVersion": GROUP_VERSION,
            "kind": "Lease",
            "metadata": {
                "name": cfg.name,
                "namespace": cfg.namespace,
                "resourceVersion": self._resource_version,
            },
            "spec": record.spec(),
        }
        try:
            written = await self.client.update(GROUP_VERSION, "leases", body, cfg.namespace)
        except ApiError as err:
            log.warning("lease %s/%s: release failed (it expires instead): %s", cfg.namespace, cfg.name, err)
            return False
        self._observe_written(written)
        log.info("lease %s/%s: released by %s", cfg.namespace, cfg.name, self.identity)
        return True

    # -- one term ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign until this elector leads, lead until it cannot renew, then return.

        Cancelled while leading, it stops the work and (with ``release_on_cancel``) releases the
        Lease before the cancellation propagates.
        """
        cfg = self.config
        while not await self._attempt():
            await self._sleep(cfg.retry_period)
        log.info("lease %s/%s: %s is leading", cfg.namespace, cfg.name, self.identity)
        self._leading.set()
        work = asyncio.create_task(self._lead()) if self._lead is not None else None
        try:
            await self._renew(work)
        except asyncio.CancelledError:
            await self._stop_work(work)
            if cfg.release_on_cancel:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.release())
            raise
        await self._stop_work(work)

    async def _attempt(self) -> bool:
        """One try, bounded by the renew deadline so a hung request cannot keep a stale leader."""
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), self.config.renew_deadline)
        except TimeoutError:
            log.warning(
                "lease %s/%s: no answer within the renew deadline", self.config.namespace, self.config.name
            )
            return False

    async def _renew(self, work: asyncio.Task[None] | None) -> None:
        cfg = self.config
        last_renewed = self.clock.monotonic()
        while True:
            await self._sleep(cfg.retry_period)
            if work is not None and work.done():
                if not work.cancelled() and work.exception() is not None:
                    log.error(
                        "lease %s/%s: the leader's work failed",
                        cfg.namespace,
                        cfg.name,
                        exc_info=work.exception(),
                    )
                else:
                    log.warning("lease %s/%s: the leader's work ended", cfg.namespace, cfg.name)
                await self.release()  # let a standby take over at once
                return
            if await self._attempt():
                last_renewed = self.clock.monotonic()
                continue
            if not self.is_leader():
                log.warning(
                    "lease %s/%s: %s lost the lease to %r",
                    cfg.namespace,
                    cfg.name,
                    self.identity,
                    self.leader,
                )
                return
            if self.clock.monotonic() - last_renewed >= cfg.renew_deadline:
                log.warning(
                    "lease %s/%s: %s could not renew within %.0fs",
                    cfg.namespace,
                    cfg.name,
                    self.identity,
                    cfg.renew_deadline,
                )
                return

    async def _stop_work(self, work: asyncio.Task[None] | None) -> None:
        self._leading.clear()
        if work is not None:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
        if self._on_stopped_leading is not None:
            self._on_stopped_leading()
