"""From a pod's volume and the API objects it names to what NodeStage/NodePublish are given (pure).

``claim_source`` checks a claim and its PersistentVolume as the kubelet does before mounting (bound,
not being deleted, the PV's claimRef matching, a ``csi`` source) and ``inline_source`` reads an inline
``csi`` volume; both give a ``VolumeSource``. ``DriverPolicy`` is what the CSIDriver object asks
(Kubernetes' defaults when there is none: attach required, no pod info, Persistent only),
``access_mode``/``mount_capability`` build the CSI volume capability, ``pod_info`` the pod attributes
a ``podInfoOnMount`` driver receives, ``attachment_state`` reads a VolumeAttachment. Failures are
``VolumeError``s worded for ``kubectl describe pod``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeagent.csi import csi_pb2
from nodeagent.volumes.csi_layout import ephemeral_handle
from nodeagent.volumes.errors import FAILED_ATTACH, VolumeError

PERSISTENT, EPHEMERAL = "Persistent", "Ephemeral"
POD_INFO_PREFIX = "csi.storage.k8s.io/"
EPHEMERAL_KEY = "csi.storage.k8s.io/ephemeral"
_Mode = csi_pb2.VolumeCapability.AccessMode


@dataclass(frozen=True, slots=True)
class VolumeSource:
    """A resolved volume: what stage and publish need, from a PV or an inline ``csi`` source."""

    name: str  # the PV's name, or the pod volume's name for an inline volume
    driver: str
    handle: str
    mode: str  # Persistent | Ephemeral
    fs_type: str = ""
    mount_flags: tuple[str, ...] = ()
    access_modes: tuple[str, ...] = ()
    readonly: bool = False
    attributes: Mapping[str, str] = field(default_factory=dict)
    stage_secret: Mapping[str, Any] | None = None  # SecretReference {name, namespace}
    publish_secret: Mapping[str, Any] | None = None  # an inline volume's has no namespace (the pod's)
    expand_secret: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DriverPolicy:
    """The CSIDriver object's answers."""

    attach_required: bool = True
    pod_info_on_mount: bool = False
    modes: tuple[str, ...] = (PERSISTENT,)

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> DriverPolicy:
        if obj is None:
            return cls()
        spec = obj.get("spec") or {}
        return cls(
            attach_required=spec.get("attachRequired") is not False,
            pod_info_on_mount=bool(spec.get("podInfoOnMount")),
            modes=tuple(spec.get("volumeLifecycleModes") or (PERSISTENT,)),
        )


def claim_source(
    claim_ref: Mapping[str, Any], pvc: Mapping[str, Any], pv: Mapping[str, Any] | None, readonly: bool
) -> VolumeSource:
    """The volume of a bound claim (``pv`` None: not read yet, only the claim is checked, for callers
    that need the PV's name first). Raises ``VolumeError`` when the pod cannot use it (yet)."""
    claim = claim_ref.get("claimName", "")
    meta = pvc.get("metadata") or {}
    phase = (pvc.get("status") or {}).get("phase") or "Pending"
    pv_name = (pvc.get("spec") or {}).get("volumeName") or ""
    if phase != "Bound" or not pv_name:
        raise VolumeError(
            f'persistentvolumeclaim "{claim}" is not bound yet (phase {phase}): the pod starts once the '
            f"claim is bound to a PersistentVolume (kubectl describe pvc {claim} -n {meta.get('namespace')})"
        )
    if pv is None:
        return VolumeSource(name=pv_name, driver="", handle="", mode=PERSISTENT)
    spec = pv.get("spec") or {}
    claim_uid, pvc_uid = (spec.get("claimRef") or {}).get("uid"), meta.get("uid")
    if claim_uid and pvc_uid and claim_uid != pvc_uid:
        raise VolumeError(
            f'persistentvolume "{pv_name}" is bound to another claim than persistentvolumeclaim '
            f'"{claim}" (its claimRef uid differs): wait for the binder to settle it'
        )
    csi = spec.get("csi")
    if not csi:
        raise VolumeError(
            f'persistentvolume "{pv_name}" has no csi source: this node mounts claims through CSI'
        )
    return VolumeSource(
        name=pv_name, driver=csi.get("driver", ""), handle=csi.get("volumeHandle", ""), mode=PERSISTENT,
        fs_type=csi.get("fsType") or "", mount_flags=tuple(spec.get("mountOptions") or ()),
        access_modes=tuple(spec.get("accessModes") or ()),
        readonly=bool(readonly or claim_ref.get("readOnly") or csi.get("readOnly")),
        attributes=dict(csi.get("volumeAttributes") or {}),
        stage_secret=csi.get("nodeStageSecretRef"), publish_secret=csi.get("nodePublishSecretRef"),
        expand_secret=csi.get("nodeExpandSecretRef"),
    )  # fmt: skip


def inline_source(pod_uid: str, volume: Mapping[str, Any], readonly: bool) -> VolumeSource:
    """An inline ``csi`` volume of a pod (published only, never staged or attached)."""
    csi = volume.get("csi") or {}
    name = volume.get("name", "")
    return VolumeSource(
        name=name, driver=csi.get("driver", ""), handle=ephemeral_handle(pod_uid, name), mode=EPHEMERAL,
        fs_type=csi.get("fsType") or "", readonly=bool(readonly or csi.get("readOnly")),
        attributes=dict(csi.get("volumeAttributes") or {}), publish_secret=csi.get("nodePublishSecretRef"),
    )  # fmt: skip


def access_mode(modes: Iterable[str], single_node_multi_writer: bool) -> int:
    """The CSI access mode for the PV's first access mode (ReadWriteOnce when there is none); a
    driver with SINGLE_NODE_MULTI_WRITER gets the finer single-node modes, as Kubernetes sends them."""
    first = next(iter(modes), "ReadWriteOnce")
    if first == "ReadOnlyMany":
        return _Mode.MULTI_NODE_READER_ONLY
    if first == "ReadWriteMany":
        return _Mode.MULTI_NODE_MULTI_WRITER
    if first == "ReadWriteOncePod":
        return _Mode.SINGLE_NODE_SINGLE_WRITER if single_node_multi_writer else _Mode.SINGLE_NODE_WRITER
    return _Mode.SINGLE_NODE_MULTI_WRITER if single_node_multi_writer else _Mode.SINGLE_NODE_WRITER


def mount_capability(fs_type: str, flags: Iterable[str], mode: int) -> csi_pb2.VolumeCapability:
    """A mount (filesystem) volume capability."""
    cap = csi_pb2.VolumeCapability(access_mode=_Mode(mode=mode))  # type: ignore[arg-type]
    cap.mount.fs_type = fs_type
    cap.mount.mount_flags.extend(flags)
    return cap


def pod_info(pod: Mapping[str, Any], ephemeral: bool) -> dict[str, str]:
    """The pod attributes a driver with ``podInfoOnMount`` receives in its volume context."""
    meta = pod.get("metadata") or {}
    return {
        "csi.storage.k8s.io/pod.name": meta.get("name", ""),
        "csi.storage.k8s.io/pod.namespace": meta.get("namespace", ""),
        "csi.storage.k8s.io/pod.uid": meta.get("uid", ""),
        "csi.storage.k8s.io/serviceAccount.name": (pod.get("spec") or {}).get("serviceAccountName")
        or "default",
        EPHEMERAL_KEY: "true" if ephemeral else "false",
    }


def volume_context(source: VolumeSource, policy: DriverPolicy, pod: Mapping[str, Any]) -> dict[str, str]:
    """NodePublishVolume's volume context: the volume's attributes, the pod's when the driver asks,
    and ``csi.storage.k8s.io/ephemeral: "true"`` on every inline volume (the driver creates it then)."""
    context = dict(source.attributes)
    ephemeral = source.mode == EPHEMERAL
    if policy.pod_info_on_mount:
        context.update(pod_info(pod, ephemeral))
    elif ephemeral:
        context[EPHEMERAL_KEY] = "true"
    return context


def attachment_state(va: Mapping[str, Any] | None, source: VolumeSource) -> dict[str, str] | None:
    """The publish context of an attached VolumeAttachment, None while it is not (yet) attached;
    ``VolumeError`` when it is being deleted or the attacher reported an error."""
    if va is None:
        return None
    name = (va.get("metadata") or {}).get("name")
    if (va.get("metadata") or {}).get("deletionTimestamp"):
        raise VolumeError(
            f'volume "{source.name}": VolumeAttachment {name} is being deleted; the attach/detach controller '
            "attaches the volume again once it is gone",
            FAILED_ATTACH,
        )
    status = va.get("status") or {}
    if status.get("attached"):
        return dict(status.get("attachmentMetadata") or {})
    attach_error = (status.get("attachError") or {}).get("message")
    if attach_error:
        raise VolumeError(
            f'AttachVolume.Attach failed for volume "{source.name}" : {attach_error}', FAILED_ATTACH
        )
    return None
