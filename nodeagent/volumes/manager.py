"""``VolumeManager``: makes a pod's volumes exist on this node, hands their mounts to the runtime, keeps
API-data volumes current and removes everything once the pod is gone (the kubelet's volume manager).

Callers (the pod worker) must: ``await setup(pod)`` before creating the sandbox or a container (cheap
when nothing changed: what is set up is remembered per pod uid); build each container's CRI mounts with
``container_mounts`` (binds a subPath as the kubelet does: opened without following symlinks, refused
when it leaves the volume); ``await refresh(pod)`` on periodic syncs of a running pod (configMap,
secret, downwardAPI and projected contents are re-read and rewritten through the atomic writer only when
they changed; service-account tokens are renewed at 80% of their lifetime); ``await teardown(uid)``
after the pod's sandbox is gone; ``await cleanup_orphans(live_uids)`` at agent start. Failures are
``VolumeError`` with the kubelet's message (``MountVolume.SetUp failed for volume "x" : ...``).

Root only: tmpfs (secrets, projected, emptyDir medium Memory) and subPath binds need CAP_SYS_ADMIN.
Without it, secret and projected volumes and a medium Memory emptyDir are plain directories on disk,
each with a ``MemoryMediumUnsupported`` Warning event on the pod. Claims (persistentVolumeClaim,
inline csi) go to the ``ClaimVolumes`` seam
(``csi_volumes.CSIVolumes``); without one the pod waits with "no CSI volume plugin on this node".
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from cluster.client.errors import ApiError
from cluster.machinery import mountinfo
from nodeagent.cri import api_pb2
from nodeagent.volumes import atomic_writer, csi_layout, mounts
from nodeagent.volumes import plan as vp
from nodeagent.volumes.errors import VolumeError
from nodeagent.volumes.hostpath import check_type

log = logging.getLogger(__name__)

MEMORY_MEDIUM_UNSUPPORTED = "MemoryMediumUnsupported"
TOKEN_REFRESH_FRACTION = 0.8
_PROPAGATION = {
    "HostToContainer": api_pb2.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": api_pb2.PROPAGATION_BIDIRECTIONAL,
}

ObjectGet = Callable[[str, str, str | None, str], Awaitable[dict[str, Any]]]  # (gv, plural, ns, name)
TokenRequester = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]  # (ns, sa, request)
Warn = Callable[[Mapping[str, Any], str, str], None]  # (pod, reason, message): a Warning event on the pod


class ClaimVolumes(Protocol):
    """The CSI side (``nodeagent.volumes.csi_volumes.CSIVolumes``)."""

    async def publish(
        self, pod: dict[str, Any], volume: dict[str, Any], target_dir: str, readonly: bool
    ) -> None: ...

    async def unpublish(self, target_dir: str) -> None: ...

    async def unstage_unused(self) -> None: ...


@dataclass(slots=True)
class _Token:
    token: str
    renew_at: datetime
    key: tuple[str, int]  # (audience, seconds): a changed source asks for a new token


@dataclass(slots=True)
class _PodVolumes:
    ready: set[str] = field(default_factory=set)
    claims: dict[str, str] = field(default_factory=dict)  # volume name -> published target dir
    in_use: dict[str, str] = field(default_factory=dict)  # volume -> kubernetes.io/csi/<driver>^<handle>
    tokens: dict[tuple[str, int], _Token] = field(default_factory=dict)  # (volume, source index)
    warned: set[str] = field(default_factory=set)
    refreshed_at: datetime | None = None


def _setup_failed(volume: str, message: str) -> str:
    return (
        message
        if message.startswith("MountVolume.")
        else f'MountVolume.SetUp failed for volume "{volume}" : {message}'
    )


def _ensure_dir(path: str) -> None:
    os.makedirs(path, mode=0o750, exist_ok=True)


class VolumeManager:
    def __init__(
        self,
        root: str,
        get: ObjectGet,
        *,
        request_token: TokenRequester | None = None,
        warn: Warn = lambda _pod, _reason, _message: None,
        clock: Callable[[], datetime],
        ca_pem: str = "",
        claims: ClaimVolumes | None = None,
        allocatable: Mapping[str, Any] | None = None,
        refresh_period: timedelta = timedelta(0),
    ) -> None:
        """``refresh_period``: ``refresh`` re-reads a pod's objects at most this often (the agent's sync
        period), however often its worker wakes."""
        self.root = root
        self._get = get
        self._request_token = request_token
        self._warn = warn
        self._clock = clock
        self.ca_pem = ca_pem
        self.claims = claims
        self.allocatable = dict(allocatable or {})
        self.refresh_period = refresh_period
        self.privileged = os.geteuid() == 0
        self._pods: dict[str, _PodVolumes] = {}

    def _state(self, pod: Mapping[str, Any]) -> _PodVolumes:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        return self._pods.setdefault(uid, _PodVolumes())

    def in_use(self) -> list[str]:
        """The CSI volumes published for pods here, by the kubelet's unique volume name
        (``kubernetes.io/csi/<driver>^<handle>``): the Node's ``status.volumesInUse``."""
        return sorted({name for s in self._pods.values() for name in s.in_use.values()})

    # -- setup ------------------------------------------------------------------------------------

    async def setup(self, pod: Mapping[str, Any]) -> None:
        """Make every volume of ``pod`` ready; idempotent. Raises ``VolumeError`` for the first one that
        cannot be (the others keep what they got; the next call retries the rest)."""
        state = self._state(pod)
        for plan in vp.plan_volumes(pod, self.root):
            if plan.name in state.ready:
                continue
            try:
                await self._setup_one(pod, plan, state)
            except VolumeError as err:
                raise VolumeError(_setup_failed(plan.name, err.message), err.reason) from err
            except OSError as err:
                raise VolumeError(_setup_failed(plan.name, str(err))) from err
            state.ready.add(plan.name)

    async def _setup_one(self, pod: Mapping[str, Any], plan: vp.VolumePlan, state: _PodVolumes) -> None:
        if plan.kind == "hostPath":
            await asyncio.to_thread(check_type, plan.path, str(plan.source.get("type") or ""))
            return
        if plan.kind in ("persistentVolumeClaim", "csi"):
            await self._publish_claim(pod, plan, state)
            return
        _ensure_dir(plan.path)
        if plan.memory:
            self._memory(pod, plan, state)
        if plan.kind in vp.API_DATA:
            payload = await self._payload(pod, plan, state)
            await asyncio.to_thread(atomic_writer.write, plan.path, payload, self._clock())

    def _memory(self, pod: Mapping[str, Any], plan: vp.VolumePlan, state: _PodVolumes) -> None:
        if self.privileged:
            if not mountinfo.is_mount_point(plan.path):
                mounts.mount_tmpfs(plan.path, plan.size_limit)
            return
        if plan.name in state.warned:
            return
        state.warned.add(plan.name)
        what = (
            f'emptyDir "{plan.name}" with medium Memory'
            if plan.kind == "emptyDir"
            else f'{plan.kind} volume "{plan.name}" (which the kubelet keeps in memory, off the disk)'
        )
        message = (
            f"{what} is on disk: the node agent does not run as root, so it cannot mount tmpfs; "
            "run the agent as root for memory-backed volumes"
        )
        self._warn(pod, MEMORY_MEDIUM_UNSUPPORTED, message)

    async def _publish_claim(self, pod: Mapping[str, Any], plan: vp.VolumePlan, state: _PodVolumes) -> None:
        if self.claims is None:
            raise VolumeError(
                "no CSI volume plugin on this node; start the cluster with a volume plugin "
                "(raykube up --volume-plugin hostpath) to use persistentVolumeClaim and csi volumes"
            )
        meta = pod.get("metadata") or {}
        uid, namespace = str(meta.get("uid", "")), meta.get("namespace") or "default"
        name = plan.name
        if plan.kind == "persistentVolumeClaim":
            claim = str(plan.source.get("claimName", ""))
            try:
                pvc = await self._get("v1", "persistentvolumeclaims", namespace, claim)
            except ApiError as err:
                if err.status == 404:
                    raise VolumeError(f'persistentvolumeclaim "{claim}" not found') from err
                raise VolumeError(str(err)) from err
            name = str((pvc.get("spec") or {}).get("volumeName") or "")
            phase = (pvc.get("status") or {}).get("phase", "")
            if not name or phase != "Bound":
                raise VolumeError(
                    f'PVC {namespace}/{claim} has non-bound phase ("{phase}") or empty '
                    f'pvc.Spec.VolumeName ("{name}")'
                )
        target = vp.csi_target(self.root, uid, name)
        _ensure_dir(os.path.dirname(target))
        volume = next(v for v in (pod.get("spec") or {}).get("volumes") or () if v.get("name") == plan.name)
        await self.claims.publish(dict(pod), dict(volume), target, plan.readonly)
        state.claims[plan.name] = target
        data = csi_layout.read_vol_data(os.path.dirname(target)) or {}
        if data.get("driverName") and data.get("volumeHandle"):
            state.in_use[plan.name] = f"kubernetes.io/csi/{data['driverName']}^{data['volumeHandle']}"

    # -- API data ---------------------------------------------------------------------------------

    async def _fetch(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        plural = "configmaps" if kind == "configMap" else "secrets"
        try:
            return await self._get("v1", plural, namespace, name)
        except ApiError as err:
            if err.status != 404:
                raise VolumeError(f"cannot read {kind} {namespace}/{name}: {err}") from err
        if kind == "configMap" and name == vp.ROOT_CA_CONFIGMAP and self.ca_pem:
            # the cluster does not publish kube-root-ca.crt; the agent's cluster CA is the same content
            return {"data": {"ca.crt": self.ca_pem}}
        return None

    async def _token(self, pod: Mapping[str, Any], volume: str, index: int, source: Mapping[str, Any],
                     state: _PodVolumes) -> str:  # fmt: skip
        key = (str(source.get("audience") or ""), vp.token_seconds(source))
        held = state.tokens.get((volume, index))
        now = self._clock()
        if held is not None and held.key == key and now < held.renew_at:
            return held.token
        if self._request_token is None:
            raise VolumeError("this node agent cannot request service account tokens")
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        try:
            answer = await self._request_token(
                meta.get("namespace") or "default", sa, vp.token_request(pod, source)
            )
        except ApiError as err:
            raise VolumeError(f"failed to fetch token: {err}") from err
        status = answer.get("status") or {}
        seconds = int((answer.get("spec") or {}).get("expirationSeconds") or key[1])
        renew = now + timedelta(seconds=seconds * TOKEN_REFRESH_FRACTION)
        state.tokens[(volume, index)] = _Token(str(status.get("token", "")), renew, key)
        return str(status.get("token", ""))

    async def _payload(self, pod: Mapping[str, Any], plan: vp.VolumePlan, state: _PodVolumes) -> vp.Payload:
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        source = plan.source
        default_mode = int(source.get("defaultMode") or vp.DEFAULT_MODE) & 0o777
        if plan.kind in ("configMap", "secret"):
            key = "name" if plan.kind == "configMap" else "secretName"
            name = str(source.get(key, ""))
            obj = await self._fetch(namespace, plan.kind, name)
            return vp.object_payload(plan.kind, {**source, "name": name}, obj, default_mode)
        if plan.kind == "downwardAPI":
            return vp.downward_payload(pod, source.get("items"), default_mode, self.allocatable)
        objects: dict[tuple[str, str], dict[str, Any] | None] = {}
        tokens: dict[int, str] = {}
        for i, src in enumerate(source.get("sources") or ()):
            for kind in ("configMap", "secret"):
                if kind in src:
                    name = str((src[kind] or {}).get("name", ""))
                    objects[(kind, name)] = await self._fetch(namespace, kind, name)
            if "serviceAccountToken" in src:
                tokens[i] = await self._token(pod, plan.name, i, src["serviceAccountToken"] or {}, state)
        return vp.projected_payload(
            pod,
            source,
            lambda kind, name: objects.get((kind, name)),
            lambda i, _src: tokens[i],
            self.allocatable,
        )

    async def refresh(self, pod: Mapping[str, Any]) -> None:
        """Rewrite the API-data volumes already set up whose content changed (and renew due tokens).
        A failure is logged and left for the next call: a running pod keeps its last good files."""
        state = self._state(pod)
        now = self._clock()
        if state.refreshed_at is not None and now - state.refreshed_at < self.refresh_period:
            return
        state.refreshed_at = now
        for plan in vp.plan_volumes(pod, self.root):
            if plan.kind not in vp.API_DATA or plan.name not in state.ready:
                continue
            try:
                payload = await self._payload(pod, plan, state)
                if await asyncio.to_thread(atomic_writer.write, plan.path, payload, self._clock()):
                    log.info(
                        "volume %s of pod %s updated", plan.name, (pod.get("metadata") or {}).get("name")
                    )
            except (VolumeError, OSError) as err:
                log.warning("refreshing volume %s: %s", plan.name, err)

    # -- container mounts -------------------------------------------------------------------------

    def container_mounts(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        env: Sequence[tuple[str, str]] | Mapping[str, str],
    ) -> list[api_pb2.Mount]:
        """The CRI mounts of one container (``setup`` must have succeeded); subPaths are bound under
        ``volume-subpaths``. Raises ``VolumeError`` (reason ``Failed``) for a subPath it refuses."""
        state = self._state(pod)
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        plans = {p.name: p for p in vp.plan_volumes(pod, self.root)}
        for name, target in state.claims.items():
            if name in plans:
                plans[name] = vp.VolumePlan(name, plans[name].kind, target, plans[name].source,
                                            readonly=plans[name].readonly)  # fmt: skip
        cname = str(container.get("name", ""))
        out = []
        for m in vp.plan_mounts(container, dict(env), plans):
            host = plans[m.volume].path
            if not host:
                raise VolumeError(f'volume "{m.volume}" is not set up yet', vp.FAILED)
            if m.sub_path:
                try:
                    host = self._bind_subpath(uid, cname, m, host)
                except (mounts.EscapeError, OSError) as err:
                    message = f'failed to prepare subPath for volumeMount "{m.volume}" of container "{cname}"'
                    raise VolumeError(f"{message}: {err}", vp.FAILED) from err
            out.append(
                api_pb2.Mount(
                    container_path=m.container_path, host_path=host, readonly=m.readonly,
                    propagation=_PROPAGATION.get(m.propagation, api_pb2.PROPAGATION_PRIVATE),
                )
            )  # fmt: skip
        return out

    def _bind_subpath(self, uid: str, container: str, m: vp.MountPlan, volume_path: str) -> str:
        base = os.path.realpath(volume_path)
        full = os.path.realpath(os.path.join(base, m.sub_path))
        if full != base and not full.startswith(base + "/"):
            raise mounts.EscapeError(
                f'subPath "{m.sub_path}" resolves to {full} through a symlink, outside the volume; '
                "a subPath must stay inside its volume"
            )
        target = vp.subpath_dir(self.root, uid, m.volume, container, m.index)
        if os.path.lexists(target) and mountinfo.is_mount_point(target):
            return target
        if not self.privileged:
            raise OSError("subPath needs the node agent to run as root (a bind mount)")
        fd = mounts.open_beneath(base, os.path.relpath(full, base), create=True)
        try:
            os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
            if not os.path.lexists(target):
                if os.path.isdir(f"/proc/self/fd/{fd}"):
                    os.mkdir(target, 0o750)
                else:
                    os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o640))
            mounts.bind_fd(fd, target)
        finally:
            os.close(fd)
        return target

    # -- teardown ---------------------------------------------------------------------------------

    async def teardown(self, uid: str) -> None:
        """Unpublish the pod's claims, unmount everything of the pod and remove its directory."""
        state = self._pods.pop(uid, None)
        pdir = vp.pod_dir(self.root, uid)
        targets = set(state.claims.values()) if state else set()
        csi_dir = os.path.join(pdir, "volumes", vp.PLUGIN_DIRS["csi"])
        if os.path.isdir(csi_dir):  # after a restart the memory is gone; the directory tells
            targets |= {os.path.join(csi_dir, d, "mount") for d in os.listdir(csi_dir)}
        if targets and self.claims is not None:
            for t in sorted(targets):
                try:
                    await self.claims.unpublish(t)
                except Exception as err:  # the unmount below still runs; the driver is told again next time
                    log.warning("unpublishing %s: %s", t, err)
        await asyncio.to_thread(mounts.remove_tree, pdir)
        if targets and self.claims is not None:
            try:
                await self.claims.unstage_unused()
            except Exception as err:
                log.warning("unstaging volumes: %s", err)

    async def cleanup_orphans(self, live_uids: set[str]) -> list[str]:
        """Tear down the volume directories of pods not in ``live_uids`` (what a crashed agent left).
        Only ``pods/<uid>`` entries with volumes are touched; the log directories
        (``<ns>_<name>_<uid>``) are not ours."""
        pods = os.path.join(self.root, "pods")
        removed = []
        for entry in sorted(os.listdir(pods)) if os.path.isdir(pods) else ():
            if "_" in entry or entry in live_uids:
                continue
            pdir = os.path.join(pods, entry)
            if not any(os.path.isdir(os.path.join(pdir, d)) for d in ("volumes", "volume-subpaths")):
                continue
            try:
                await self.teardown(entry)
                removed.append(entry)
            except OSError as err:
                log.warning("removing volumes of vanished pod %s: %s", entry, err)
        return removed
