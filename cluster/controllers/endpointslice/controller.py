"""The EndpointSlice controller's shell: informers in, creates/updates/deletes out.

Handlers only enqueue Service keys (a pod enqueues every Service whose selector matches its old or new
labels; a managed slice enqueues its Service). ``reconcile`` reads the Service, its pods, its managed
IPv4 slices and the nodes from the listers, and applies :func:`~.reconciler.plan_slices` in kube's order
(create, update, delete). A :class:`WriteTracker` holds the key back while the cache does not yet show
the controller's own last writes, so a slow informer never makes it create a slice twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.endpointslice.reconciler import (
    ADDRESS_TYPE,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    desired_endpoints,
    is_managed_slice,
    plan_slices,
    selector_matches,
    service_has_selector,
)
from cluster.controllers.runtime import Controller, ControllerContext

log = logging.getLogger("raykube.controllers.endpointslice")


class WriteTracker:
    """The writes a controller made per key, until its informer shows them (kube's slice tracker).

    A reconcile that runs before the cache holds its own last writes would create twice what it just
    created; ``stale(key, current)`` says so and the caller waits. Each record expires after
    ``timeout`` seconds so a write the cache never shows (deleted by someone else) cannot stall a key.
    """

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._expected: dict[str, tuple[float, dict[str, str | None]]] = {}

    def record(self, key: str, now: float, written: Mapping[str, str | None]) -> None:
        """``written``: name -> resourceVersion written, or None for a deletion."""
        if written:
            self._expected[key] = (now, dict(written))

    def stale(self, key: str, now: float, current: Mapping[str, Mapping[str, Any]]) -> bool:
        entry = self._expected.get(key)
        if entry is None:
            return False
        since, written = entry
        if now - since > self.timeout:
            del self._expected[key]
            return False
        for name, rv in written.items():
            seen = current.get(name)
            if rv is None:
                if seen is not None:
                    return True
            elif seen is None or not _at_least(
                str((seen.get("metadata") or {}).get("resourceVersion") or ""), rv
            ):
                return True
        del self._expected[key]
        return False

    def forget(self, key: str) -> None:
        self._expected.pop(key, None)


def _at_least(seen: str, want: str) -> bool:
    if seen.isdigit() and want.isdigit():
        return int(seen) >= int(want)
    return seen == want


class EndpointSliceController(Controller):
    """Keeps every selector Service's EndpointSlices in line with its pods (see the module docstring)."""

    NAME = "endpointslice"
    COMPONENT = "endpoint-slice-controller"
    GV = "discovery.k8s.io/v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.tracker = WriteTracker()
        self.services = self.watch(
            "v1",
            "services",
            on_add=self.enqueue,
            on_update=lambda _o, n: self.enqueue(n),
            on_delete=self._service_gone,
        )
        self.pods = self.watch(
            "v1", "pods", on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed
        )
        self.slices = self.watch(
            self.GV,
            "endpointslices",
            on_add=self._slice_changed,
            on_update=lambda _o, n: self._slice_changed(n),
            on_delete=self._slice_changed,
        )
        self.nodes = self.watch("v1", "nodes")

    # -- handlers (enqueue only) -------------------------------------------------------------------

    def _service_gone(self, service: dict[str, Any]) -> None:
        self.enqueue(service)

    def _services_of(self, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        meta = pod.get("metadata") or {}
        return [
            s
            for s in self.services.list(meta.get("namespace"))
            if service_has_selector(s) and selector_matches(s["spec"]["selector"], meta.get("labels"))
        ]

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        for service in self._services_of(pod):
            self.enqueue(service)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        keys = {f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in self._services_of(old)}
        keys |= {f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in self._services_of(new)}
        for key in sorted(keys):
            self.enqueue(key)

    def _slice_changed(self, eps: dict[str, Any]) -> None:
        meta = eps.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(SERVICE_NAME_LABEL):
            self.enqueue(f"{meta.get('namespace')}/{labels[SERVICE_NAME_LABEL]}")

    # -- reconcile ---------------------------------------------------------------------------------

    def _existing(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self.slices.list(namespace)
            if is_managed_slice(s, name) and s.get("addressType", ADDRESS_TYPE) == ADDRESS_TYPE
        ]

    async def reconcile(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        service = self.services.get(namespace, name)
        if (
            service is None
            or not service_has_selector(service)
            or service["metadata"].get("deletionTimestamp")
        ):
            self.tracker.forget(key)
            return None  # gone: the garbage collector removes the owned slices; selectorless: not ours
        existing = self._existing(namespace, name)
        now = self.clock.monotonic()
        if self.tracker.stale(key, now, {s["metadata"]["name"]: s for s in existing}):
            return 0.1  # the cache has not caught up with our own writes yet
        selector = service["spec"]["selector"]
        pods = [
            p for p in self.pods.list(namespace) if selector_matches(selector, p["metadata"].get("labels"))
        ]
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        plan = plan_slices(service, desired_endpoints(service, pods, nodes), existing)
        if plan.empty():
            return None
        written: dict[str, str | None] = {}
        try:
            for body in plan.create:
                made = await self.client.create(self.GV, "endpointslices", body, namespace)
                written[made["metadata"]["name"]] = made["metadata"].get("resourceVersion")
            for body in plan.update:
                made = await self.client.update(self.GV, "endpointslices", body, namespace)
                written[made["metadata"]["name"]] = made["metadata"].get("resourceVersion")
            for slice_name in plan.delete:
                try:
                    await self.client.delete(self.GV, "endpointslices", slice_name, namespace)
                except ApiError as e:
                    if not e.not_found:
                        raise
                written[slice_name] = None
        except ApiError as e:
            self.recorder.event(
                service,
                "Warning",
                "FailedToUpdateEndpointSlices",
                f"Error updating Endpoint Slices for Service {key}: {e}",
            )
            raise
        finally:
            self.tracker.record(key, now, written)
        return None
