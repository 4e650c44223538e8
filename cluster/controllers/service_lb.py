"""The LoadBalancer address controller (``service-lb-controller``): gives every Service of type
LoadBalancer an address from the cluster's pool, as MetalLB's controller does on bare metal.

Options (``ControllerOptions.extra``): ``lb_pool``, a CIDR or a comma-separated list of CIDRs and
``first-last`` ranges (default ``172.29.0.0/24``; see :mod:`cluster.machinery.ippool`).

Invariants:

* the allocations live only in the Services' ``status.loadBalancer.ingress``: before its first
  decision the controller claims every pool address a LoadBalancer Service already carries, oldest
  Service first (so a restart never hands one out twice, and of two Services carrying one address
  the younger is moved);
* a Service is ours when its type is LoadBalancer and it has no ``spec.loadBalancerClass`` (a class
  names another implementation, whose status we never touch);
* an ours Service without a valid address of ours gets ``spec.loadBalancerIP`` when set (deprecated
  but used; when it is outside the pool or taken the Service gets nothing and an Event, as MetalLB),
  else the lowest free address, written through the ``status`` subresource as
  ``ingress: [{ip, ipMode: VIP}]``;
* a deleted Service frees its address; one whose type changes away from LoadBalancer (or that gets
  a class) frees it and has its status cleared; a freed address wakes the Services still waiting;
* problems are Warning Events ``AllocationFailed`` (MetalLB's reason), said once per state;
  an allocation is a Normal ``IPAllocated``.

:class:`~cluster.machinery.ippool.IpPool` is the pure bookkeeping; the controller reads Services and
writes their status.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.client.lister import object_key
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.ippool import DEFAULT_LB_POOL, AddressUnavailable, IpPool, PoolError

log = logging.getLogger("raykube.controllers.service_lb")

ALLOCATION_FAILED = "AllocationFailed"
IP_ALLOCATED = "IPAllocated"


def is_ours(svc: Mapping[str, Any]) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def ingress_ips(svc: Mapping[str, Any]) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress if isinstance(i, Mapping) and i.get("ip")]


def status_patch(ip: str | None) -> dict[str, Any]:
    """The status merge patch setting ``ip`` as the only ingress, or clearing the ingress (None)."""
    ingress = [{"ip": ip, "ipMode": "VIP"}] if ip else None
    return {"status": {"loadBalancer": {"ingress": ingress}}}


def _age(svc: Mapping[str, Any]) -> tuple[str, str]:
    meta = svc.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), object_key(svc))


class ServiceLBController(Controller):
    NAME: ClassVar[str] = "service-lb-controller"
    COMPONENT: ClassVar[str] = "service-lb-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pool = IpPool(str(ctx.options.extra.get("lb_pool") or DEFAULT_LB_POOL))
        self.services = self.watch(
            "v1",
            "services",
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self.enqueue,
        )
        self._primed = False
        self._reported: dict[str, str] = {}

    def _prime(self) -> None:
        """Claim what the cached Services carry, oldest first (workers start after the first list)."""
        if self._primed:
            return
        self._primed = True
        for svc in sorted(filter(is_ours, self.services.list()), key=_age):
            for ip in ingress_ips(svc)[:1]:
                # outside the pool or a duplicate: reconcile gives it a new one
                with contextlib.suppress(AddressUnavailable):
                    self.pool.claim(object_key(svc), ip)

    def _report(self, svc: Mapping[str, Any], message: str) -> None:
        key = object_key(svc)
        if self._reported.get(key) != message:
            self._reported[key] = message
            log.warning("service %s: %s", key, message)
            self.recorder.event(
                svc, "Warning", ALLOCATION_FAILED, f"Failed to allocate IP for {key!r}: {message}"
            )

    def _wake_waiting(self) -> None:
        for svc in self.services.list():
            if is_ours(svc) and object_key(svc) not in self.pool.held:
                self.enqueue(svc)

    async def reconcile(self, key: str) -> float | None:
        self._prime()
        svc = self.services.get_by_key(key)
        if svc is None:
            self._reported.pop(key, None)
            if self.pool.release(key):
                self._wake_waiting()
            return None
        if is_ours(svc):
            await self._allocate(key, svc)
        else:
            await self._let_go(key, svc)
        return None

    async def _let_go(self, key: str, svc: Mapping[str, Any]) -> None:
        """Free what ``svc`` held; clear its status when the address was ours and it is no longer a
        LoadBalancer (a Service with a class keeps what its own implementation writes)."""
        self._reported.pop(key, None)
        freed = self.pool.release(key)
        ips = ingress_ips(svc)
        stale = (svc.get("spec") or {}).get("type") != "LoadBalancer" and any(ip in self.pool for ip in ips)
        if ips and (stale or freed in ips):
            await self._write(svc, None)
        if freed:
            self._wake_waiting()

    async def _allocate(self, key: str, svc: Mapping[str, Any]) -> None:
        requested = str((svc.get("spec") or {}).get("loadBalancerIP") or "")
        current = next(iter(ingress_ips(svc)), "")
        if current and (not requested or current == requested):
            try:
                self.pool.claim(key, current)
                return
            except AddressUnavailable:
                pass  # not ours, invalid, or a duplicate of an older Service's: give a new one
        try:
            ip = self.pool.assign(key, requested)
        except PoolError as err:
            self._report(svc, str(err))
            return
        try:
            await self._write(svc, ip)
        except ApiError:
            self.pool.release(key)
            raise
        self._reported.pop(key, None)
        log.info("service %s: load-balancer address %s", key, ip)
        self.recorder.event(svc, "Normal", IP_ALLOCATED, f'Assigned IP ["{ip}"]')

    async def _write(self, svc: Mapping[str, Any], ip: str | None) -> None:
        meta = svc["metadata"]
        try:
            await self.client.patch(
                "v1", "services", meta["name"], status_patch(ip), meta.get("namespace"), subresource="status"
            )
        except ApiError as err:
            if err.status != 404:  # a Service deleted meanwhile needs nothing written
                raise
