"""kube-controller-manager's ``persistentvolume-binder``: binds claims to volumes and keeps both sides'
phases right; reclaims Released volumes by their policy.

The decisions are :mod:`.binding`'s (pure); this controller reads the caches, performs the steps in
order and stops at the first failed write, so the next sync starts again from what the server has.
One work queue holds both kinds of key, ``claim:<ns>/<name>`` and ``volume:<name>``; a key is never
worked on by two workers, but a claim and a volume may be, as in kube (every write carries the object's
resourceVersion, so a stale one fails with 409 and is retried).

Every claim and volume is looked at again every ``RESYNC`` seconds (kube's 15 s), which is how a
Pending claim finds a volume created later; an Available volume also nudges the Pending claims at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.controllers.volume import binding
from cluster.controllers.volume.binding import (
    Bind,
    ClaimEvent,
    ClaimPhase,
    EnqueueClaim,
    SetProvisioner,
    Step,
    Unbind,
    VolumePhase,
)
from cluster.machinery.times import rfc3339

log = logging.getLogger("raykube.controllers.pv")

RESYNC = 15.0
CLAIM, VOLUME = "claim:", "volume:"


class _Stop(Exception):
    """A write that must not be followed by the rest of the steps (the object changed under us)."""


class PersistentVolumeController(Controller):
    NAME: ClassVar[str] = "persistentvolume-binder"
    COMPONENT: ClassVar[str] = "persistentvolume-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.resync = float(ctx.options.extra.get("pv_resync", RESYNC))
        self.volumes = self.watch(
            "v1",
            "persistentvolumes",
            on_add=self._volume_changed,
            on_update=lambda _old, new: self._volume_changed(new),
            on_delete=self._volume_deleted,
        )
        self.claims = self.watch(
            "v1",
            "persistentvolumeclaims",
            on_add=self._claim_changed,
            on_update=lambda _old, new: self._claim_changed(new),
            on_delete=self._claim_deleted,
        )
        self.classes = self.watch("storage.k8s.io/v1", "storageclasses")

    # -- handlers ----------------------------------------------------------------------------------

    def _volume_changed(self, volume: Mapping[str, Any]) -> None:
        self.queue.add(VOLUME + str((volume.get("metadata") or {}).get("name", "")))

    def _volume_deleted(self, volume: Mapping[str, Any]) -> None:
        # kube: a deleted volume makes its claim Lost; the claim's sync finds it gone.
        ref = binding.claim_ref_key(volume)
        if ref:
            self.queue.add(CLAIM + ref)

    def _claim_changed(self, claim: Mapping[str, Any]) -> None:
        self.queue.add(CLAIM + binding.claim_key(claim))

    def _claim_deleted(self, claim: Mapping[str, Any]) -> None:
        # A tombstone (DeletedFinalStateUnknown) is a dict of the last known state: read it the same way.
        name = (claim.get("spec") or {}).get("volumeName")
        if name:
            self.queue.add(VOLUME + str(name))

    # -- sync --------------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(CLAIM):
            claim = self.claims.get_by_key(key.removeprefix(CLAIM))
            if claim is None:
                return None
            steps = binding.sync_claim(
                claim,
                self.volumes.list(),
                lambda name: self.volumes.get(None, name),
                lambda name: self.classes.get(None, name),
            )
            await self._perform(steps, claim=claim, volume=None)
            return self.resync
        if key.startswith(VOLUME):
            volume = self.volumes.get(None, key.removeprefix(VOLUME))
            if volume is None:
                return None
            claim = await self._claim_of(volume)
            steps = binding.sync_volume(volume, claim)
            await self._perform(steps, claim=claim, volume=volume)
            return self.resync
        return None

    async def _claim_of(self, volume: Mapping[str, Any]) -> dict[str, Any] | None:
        """The claim the volume's claimRef names: from the cache, or, when the cache lacks it, a live
        read (kube does the same before declaring a volume Released: the cache may just be late)."""
        ref = binding.claim_ref_key(volume)
        if ref is None:
            return None
        claim = self.claims.get_by_key(ref)
        if claim is not None:
            return claim
        namespace, _, name = ref.partition("/")
        try:
            return await self.client.get("v1", "persistentvolumeclaims", name, namespace)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    async def _perform(
        self, steps: list[Step], *, claim: Mapping[str, Any] | None, volume: Mapping[str, Any] | None
    ) -> None:
        try:
            for step in steps:
                if isinstance(step, Bind):
                    assert claim is not None
                    await self._bind(step.volume, claim)
                elif isinstance(step, ClaimPhase):
                    assert claim is not None
                    claim = await self._claim_phase(claim, step)
                elif isinstance(step, ClaimEvent):
                    assert claim is not None
                    self.recorder.event(claim, step.event.event_type, step.event.reason, step.event.message)
                elif isinstance(step, SetProvisioner):
                    assert claim is not None
                    claim = await self._set_provisioner(claim, step.provisioner)
                elif isinstance(step, VolumePhase):
                    assert volume is not None
                    volume = await self._volume_phase(volume, step)
                elif isinstance(step, Unbind):
                    assert volume is not None
                    await self._unbind(volume)
                elif isinstance(step, EnqueueClaim):
                    self.queue.add(CLAIM + step.key)
        except _Stop:
            return

    async def _write(self, plural: str, obj: Mapping[str, Any], *, status: bool = False) -> dict[str, Any]:
        namespace = (obj.get("metadata") or {}).get("namespace")
        try:
            return await self.client.update(
                "v1", plural, dict(obj), namespace, subresource="status" if status else None
            )
        except ApiError as err:
            if err.status in (404, 409):
                # Gone or changed since the cache saw it: its own event requeues it; stop here.
                log.debug("pv controller: %s %s: %s", plural, (obj.get("metadata") or {}).get("name"), err)
                raise _Stop from err
            raise

    async def _bind(self, volume_name: str, claim: Mapping[str, Any]) -> None:
        """kube's bind(): volume claimRef, volume Bound, claim volumeName + annotations, claim Bound."""
        volume = self.volumes.get(None, volume_name)
        if volume is None:
            raise _Stop
        new_volume = binding.volume_bound_to(volume, claim)
        if new_volume is not None:
            volume = await self._write("persistentvolumes", new_volume)
            log.info("pv controller: volume %s bound to claim %s", volume_name, binding.claim_key(claim))
        volume = await self._volume_phase(volume, VolumePhase("Bound"))
        new_claim = binding.claim_bound_to(claim, volume)
        if new_claim is not None:
            claim = await self._write("persistentvolumeclaims", new_claim)
        status = binding.claim_status(claim, "Bound", volume)
        if status is not None:
            await self._write("persistentvolumeclaims", status, status=True)

    async def _claim_phase(self, claim: Mapping[str, Any], step: ClaimPhase) -> Mapping[str, Any]:
        volume = self.volumes.get(None, step.volume) if step.volume else None
        before = (claim.get("status") or {}).get("phase")
        new = binding.claim_status(claim, step.phase, volume)
        if new is None:
            return claim
        written = await self._write("persistentvolumeclaims", new, status=True)
        if step.event is not None and before != step.phase:
            self.recorder.event(written, step.event.event_type, step.event.reason, step.event.message)
        return written

    async def _set_provisioner(self, claim: Mapping[str, Any], provisioner: str) -> Mapping[str, Any]:
        new = dict(claim)
        meta = dict(new.get("metadata") or {})
        annotations = dict(meta.get("annotations") or {})
        annotations[binding.STORAGE_PROVISIONER_ANN] = provisioner
        annotations[binding.BETA_STORAGE_PROVISIONER_ANN] = provisioner
        meta["annotations"] = annotations
        new["metadata"] = meta
        return await self._write("persistentvolumeclaims", new)

    async def _volume_phase(self, volume: Mapping[str, Any], step: VolumePhase) -> dict[str, Any]:
        status = dict(volume.get("status") or {})
        if status.get("phase") == step.phase:
            return dict(volume)
        status["phase"] = step.phase
        status["lastPhaseTransitionTime"] = rfc3339(self.clock.now())
        if step.message:
            status["message"] = step.message
        else:
            status.pop("message", None)
        written = await self._write("persistentvolumes", {**volume, "status": status}, status=True)
        log.info(
            "pv controller: volume %s entered phase %s",
            (volume.get("metadata") or {}).get("name"),
            step.phase,
        )
        if step.event is not None:
            self.recorder.event(written, step.event.event_type, step.event.reason, step.event.message)
        if step.phase == "Available":
            self._nudge_pending_claims()
        return written

    def _nudge_pending_claims(self) -> None:
        """An Available volume may be what a Pending claim waits for; look at those now, not at resync."""
        for claim in self.claims.list():
            if not binding.is_claim_bound(claim) and not (claim.get("spec") or {}).get("volumeName"):
                self.queue.add(CLAIM + binding.claim_key(claim))

    async def _unbind(self, volume: Mapping[str, Any]) -> None:
        """kube's unbindVolume: a controller-made binding is dropped; a user's pre-binding keeps the
        claim's name and loses only the uid. The volume is Available again."""
        new = dict(volume)
        spec = dict(new.get("spec") or {})
        meta = dict(new.get("metadata") or {})
        annotations = dict(meta.get("annotations") or {})
        if binding.BOUND_BY_CONTROLLER_ANN in annotations:
            spec.pop("claimRef", None)
            annotations.pop(binding.BOUND_BY_CONTROLLER_ANN)
        else:
            ref = dict(spec.get("claimRef") or {})
            ref.pop("uid", None)
            spec["claimRef"] = ref
        meta["annotations"] = annotations
        new.update(spec=spec, metadata=meta)
        written = await self._write("persistentvolumes", new)
        await self._volume_phase(written, VolumePhase("Available"))
