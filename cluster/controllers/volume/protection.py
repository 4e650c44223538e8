"""kube-controller-manager's ``pvc-protection`` and ``pv-protection``: a claim in use by a pod, and a
volume bound to a claim, are not removed until they are free.

Both add their finalizer to objects that lack it (admission normally does it at create) and remove it
from an object being deleted only once nothing uses it:

* a **claim** is in use while a scheduled pod of its namespace that has not finished (phase neither
  Succeeded nor Failed) names it in a ``persistentVolumeClaim`` volume, or owns it as the claim of a
  generic ephemeral volume (``<pod>-<volume>``). The cache is asked first; before the finalizer goes,
  a live list of the namespace's pods confirms it (a pod created a moment ago may not be cached yet);
* a **volume** is in use while its phase is Bound.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.client.lister import object_key, split_key
from cluster.controllers.runtime import Controller, ControllerContext

log = logging.getLogger("raykube.controllers.protection")

PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"

Obj = Mapping[str, Any]


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def claim_names_of_pod(pod: Obj) -> list[str]:
    """The claims a pod's volumes name: ``persistentVolumeClaim.claimName`` and ``<pod>-<volume>`` of
    each generic ephemeral volume."""
    names: list[str] = []
    pod_name = _meta(pod).get("name", "")
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        pvc = volume.get("persistentVolumeClaim")
        if pvc and pvc.get("claimName"):
            names.append(str(pvc["claimName"]))
        elif volume.get("ephemeral") is not None:
            names.append(f"{pod_name}-{volume.get('name', '')}")
    return names


def _pod_shut_down(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_uses_claim(pod: Obj, claim: Obj) -> bool:
    """Whether ``pod`` keeps ``claim`` in use (same namespace assumed by the caller)."""
    if not (pod.get("spec") or {}).get("nodeName") or _pod_shut_down(pod):
        return False  # the node agent refuses to start a pod on a claim being deleted
    name = _meta(claim).get("name")
    pod_name = _meta(pod).get("name", "")
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        pvc = volume.get("persistentVolumeClaim")
        if pvc and pvc.get("claimName") == name:
            return True
        if volume.get("ephemeral") is not None and f"{pod_name}-{volume.get('name', '')}" == name:
            owner = next((r for r in _meta(claim).get("ownerReferences") or () if r.get("controller")), None)
            if owner is None or owner.get("uid") == _meta(pod).get("uid"):
                return True
    return False


def claim_in_use(claim: Obj, pods: Iterable[Obj]) -> bool:
    return any(pod_uses_claim(pod, claim) for pod in pods)


def volume_in_use(volume: Obj) -> bool:
    return (volume.get("status") or {}).get("phase") == "Bound"


def with_finalizer(obj: Obj, finalizer: str, present: bool) -> dict[str, Any] | None:
    """``obj`` with ``finalizer`` added or removed; None when it already is as asked."""
    finalizers = list(_meta(obj).get("finalizers") or ())
    if (finalizer in finalizers) == present:
        return None
    finalizers = [*finalizers, finalizer] if present else [f for f in finalizers if f != finalizer]
    return {**obj, "metadata": {**_meta(obj), "finalizers": finalizers}}


class _Protection(Controller):
    """Shared loop: add the finalizer to live objects, remove it from deleting ones not in use."""

    GROUP_VERSION: ClassVar[str] = "v1"
    PLURAL: ClassVar[str]
    FINALIZER: ClassVar[str]

    async def _set_finalizer(self, obj: Obj, present: bool) -> None:
        new = with_finalizer(obj, self.FINALIZER, present)
        if new is None:
            return
        try:
            await self.client.update(self.GROUP_VERSION, self.PLURAL, new, _meta(obj).get("namespace"))
        except ApiError as err:
            if err.status not in (404, 409):  # gone, or changed: its own event brings it back
                raise
            return
        verb = "added" if present else "removed"
        log.info("%s: %s %s %s", self.NAME, verb, self.FINALIZER, object_key(obj))


class PVCProtectionController(_Protection):
    NAME: ClassVar[str] = "pvc-protection"
    COMPONENT: ClassVar[str] = "pvc-protection-controller"
    PLURAL: ClassVar[str] = "persistentvolumeclaims"
    FINALIZER: ClassVar[str] = PVC_PROTECTION_FINALIZER

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.claims = self.watch(
            "v1", "persistentvolumeclaims", on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n)
        )
        self.pods = self.watch(
            "v1",
            "pods",
            on_add=self._pod_changed,
            on_update=lambda _o, n: self._pod_changed(n),
            on_delete=self._pod_changed,
        )

    def _pod_changed(self, pod: Obj) -> None:
        """A pod that goes away or finishes may free a deleting claim: look at the claims it names."""
        namespace = _meta(pod).get("namespace")
        for name in claim_names_of_pod(pod):
            claim = self.claims.get(namespace, name)
            if claim is not None and _meta(claim).get("deletionTimestamp"):
                self.queue.add(f"{namespace}/{name}")

    async def reconcile(self, key: str) -> float | None:
        claim = self.claims.get_by_key(key)
        if claim is None:
            return None
        if not _meta(claim).get("deletionTimestamp"):
            await self._set_finalizer(claim, True)
            return None
        if self.FINALIZER not in (_meta(claim).get("finalizers") or ()):
            return None
        namespace, _ = split_key(key)
        if claim_in_use(claim, self.pods.list(namespace)):
            return None
        live = await self.client.list_all("v1", "pods", namespace)
        if claim_in_use(claim, live.get("items") or ()):
            return None
        await self._set_finalizer(claim, False)
        return None


class PVProtectionController(_Protection):
    NAME: ClassVar[str] = "pv-protection"
    COMPONENT: ClassVar[str] = "pv-protection-controller"
    PLURAL: ClassVar[str] = "persistentvolumes"
    FINALIZER: ClassVar[str] = PV_PROTECTION_FINALIZER

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.volumes = self.watch(
            "v1", "persistentvolumes", on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n)
        )

    async def reconcile(self, key: str) -> float | None:
        volume = self.volumes.get_by_key(key)
        if volume is None:
            return None
        deleting = bool(_meta(volume).get("deletionTimestamp"))
        if not deleting:
            await self._set_finalizer(volume, True)
        elif not volume_in_use(volume):
            await self._set_finalizer(volume, False)
        return None
