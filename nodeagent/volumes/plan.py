"""What a pod's volumes need on this node, as values: the pure planning core of the volume manager.

Nothing here touches the file system or the API. ``plan_volumes`` turns ``spec.volumes`` into one
``VolumePlan`` each (its plugin, its directory by the kubelet's layout, whether it lives on tmpfs);
``plan_mounts`` turns one container's ``volumeMounts`` into ``MountPlan`` values (subPathExpr expanded
with the container's env, the kubelet's checks on subPath, read-only rules); ``*_payload`` compute the
files a configMap, secret, downwardAPI or projected volume holds from objects the caller fetched.
The manager (``manager.py``) does what these values say.

Layout (the kubelet's, under the agent's data dir ``root``):
``pods/<uid>/volumes/kubernetes.io~<plugin>/<volume>`` for each volume, ``.../kubernetes.io~csi/<pv>/mount``
for claims, ``pods/<uid>/volume-subpaths/<volume>/<container>/<index>`` for subPath bind mounts.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cluster.machinery.quantity import QuantityError, parse_quantity
from nodeagent.kubelet.container_env import (
    CreateContainerConfigError,
    EnvSources,
    expand,
    field_ref_value,
    mapping_for,
    resource_field_ref_value,
)
from nodeagent.volumes.errors import VolumeError

DEFAULT_MODE = 0o644
DEFAULT_TOKEN_SECONDS = 3600
MIN_TOKEN_SECONDS = 600
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
FAILED = "Failed"  # the event reason of a container whose config cannot be built (subPath)

# volume source key -> the kubelet's plugin directory name
PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
    "csi": "kubernetes.io~csi",
    "persistentVolumeClaim": "kubernetes.io~csi",
}
KINDS = (*PLUGIN_DIRS, "hostPath")
API_DATA = ("configMap", "secret", "downwardAPI", "projected")  # always mounted read-only


def pod_dir(root: str, uid: str) -> str:
    return os.path.join(root, "pods", uid)


def subpath_dir(root: str, uid: str, volume: str, container: str, index: int) -> str:
    return os.path.join(pod_dir(root, uid), "volume-subpaths", volume, container, str(index))


def csi_target(root: str, uid: str, pv_name: str) -> str:
    """Where a claim's (or inline CSI volume's) volume is published for the pod."""
    return os.path.join(pod_dir(root, uid), "volumes", PLUGIN_DIRS["csi"], pv_name, "mount")


@dataclass(frozen=True, slots=True)
class VolumePlan:
    """One volume of the pod. ``path`` is its directory (for hostPath the host path itself; for a
    claim it is filled in by the manager once the PV name is known). ``memory`` means tmpfs."""

    name: str
    kind: str
    path: str
    source: Mapping[str, Any]
    memory: bool = False
    size_limit: int | None = None
    readonly: bool = False


def _kind(volume: Mapping[str, Any]) -> str:
    for kind in KINDS:
        if kind in volume:
            return kind
    others = sorted(k for k in volume if k != "name")
    raise VolumeError(
        f'MountVolume.SetUp failed for volume "{volume.get("name", "")}" : volume type '
        f"{others[0] if others else '(none)'} is not supported on this node; use one of {', '.join(KINDS)}"
    )


def plan_volumes(pod: Mapping[str, Any], root: str) -> list[VolumePlan]:
    """Every volume of ``pod``; raises ``VolumeError`` for a type this node cannot mount."""
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    out = []
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        name = str(volume.get("name", ""))
        kind = _kind(volume)
        source = volume.get(kind) or {}
        if kind == "hostPath":
            out.append(VolumePlan(name, kind, str(source.get("path", "")), source))
            continue
        if kind in ("persistentVolumeClaim", "csi"):
            ro = bool(source.get("readOnly"))
            out.append(VolumePlan(name, kind, "", source, readonly=ro))
            continue
        path = os.path.join(pod_dir(root, uid), "volumes", PLUGIN_DIRS[kind], name)
        memory = kind in ("secret", "projected") or (kind == "emptyDir" and source.get("medium") == "Memory")
        size = None
        if kind == "emptyDir" and source.get("sizeLimit") is not None:
            try:
                size = int(parse_quantity(source["sizeLimit"]))
            except QuantityError as err:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : sizeLimit: {err}') from err
        out.append(VolumePlan(name, kind, path, source, memory, size, readonly=kind in API_DATA))
    return out


@dataclass(frozen=True, slots=True)
class MountPlan:
    """One volumeMount of a container: ``sub_path`` is relative to the volume ('' = the whole volume)."""

    volume: str
    container_path: str
    sub_path: str
    readonly: bool
    propagation: str  # "" / None, HostToContainer, Bidirectional
    index: int


def plan_mounts(
    container: Mapping[str, Any], env: Mapping[str, str], volumes: Mapping[str, VolumePlan]
) -> list[MountPlan]:
    """The container's mounts in spec order, with the kubelet's checks (``VolumeError``, reason
    ``Failed``: the container waits with ``CreateContainerConfigError``)."""
    cname = str(container.get("name", ""))
    out = []
    for index, m in enumerate(container.get("volumeMounts") or ()):
        name = str(m.get("name", ""))
        if name not in volumes:
            raise VolumeError(f'cannot find volume "{name}" to mount into container "{cname}"', FAILED)
        sub = str(m.get("subPath") or "")
        if m.get("subPathExpr"):
            sub = expand(str(m["subPathExpr"]), mapping_for(env))
        if sub:
            if posixpath.isabs(sub):
                raise VolumeError(f"error SubPath `{sub}` must not be an absolute path", FAILED)
            if ".." in sub.split("/"):
                raise VolumeError(f"unable to provision SubPath `{sub}`: must not contain '..'", FAILED)
            sub = posixpath.normpath(sub)
            sub = "" if sub == "." else sub
        plan = volumes[name]
        out.append(
            MountPlan(
                volume=name,
                container_path=str(m.get("mountPath", "")),
                sub_path=sub,
                readonly=bool(m.get("readOnly")) or plan.readonly,
                propagation=str(m.get("mountPropagation") or ""),
                index=index,
            )
        )
    return out


# -- payloads ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileProjection:
    data: bytes
    mode: int


Payload = dict[str, FileProjection]


def _mode(value: Any, default: int) -> int:
    return int(value) & 0o777 if value is not None else default


def _key_values(kind: str, obj: Mapping[str, Any]) -> dict[str, bytes]:
    if kind == "configMap":
        out = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        out.update({k: base64.b64decode(str(v)) for k, v in (obj.get("binaryData") or {}).items()})
        return out
    return {k: base64.b64decode(str(v)) for k, v in (obj.get("data") or {}).items()}


def object_payload(
    kind: str, source: Mapping[str, Any], obj: Mapping[str, Any] | None, default_mode: int
) -> Payload:
    """A configMap's or secret's files: every key, or ``items`` (key -> path, mode). ``obj`` None is a
    missing object: empty when ``optional``, else the kubelet's not-found message."""
    name = str(source.get("name", ""))
    optional = bool(source.get("optional"))
    noun = "configmap" if kind == "configMap" else "secret"
    if obj is None:
        if optional:
            return {}
        raise VolumeError(f'{noun} "{name}" not found')
    values = _key_values(kind, obj)
    items = source.get("items") or ()
    if not items:
        return {k: FileProjection(v, default_mode) for k, v in values.items()}
    out: Payload = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in values:
            if optional:
                continue
            what = "config key" if kind == "configMap" else "secret key"
            raise VolumeError(f"{noun} references non-existent {what}: {key}")
        out[str(item.get("path", key))] = FileProjection(values[key], _mode(item.get("mode"), default_mode))
    return out


def _quoted_map(values: Mapping[str, Any]) -> bytes:
    """The kubelet's labels/annotations file: sorted ``key="value"`` lines (values quoted)."""
    return "\n".join(f"{k}={json.dumps(str(values[k]))}" for k in sorted(values)).encode()


def downward_payload(
    pod: Mapping[str, Any], items: Any, default_mode: int, allocatable: Mapping[str, Any]
) -> Payload:
    meta = pod.get("metadata") or {}
    out: Payload = {}
    sources = EnvSources(node_allocatable=allocatable)
    for item in items or ():
        path = str(item.get("path", ""))
        mode = _mode(item.get("mode"), default_mode)
        try:
            if "fieldRef" in item:
                field = str((item["fieldRef"] or {}).get("fieldPath", ""))
                if field in ("metadata.labels", "metadata.annotations"):
                    data = _quoted_map(meta.get(field.split(".")[1]) or {})
                else:
                    data = field_ref_value(pod, field, sources).encode()
            elif "resourceFieldRef" in item:
                ref = item["resourceFieldRef"] or {}
                if not ref.get("containerName"):
                    raise VolumeError(f"resourceFieldRef of {path}: containerName is required in a volume")
                data = resource_field_ref_value(pod, {}, ref, sources).encode()
            else:
                raise VolumeError(f"downwardAPI item {path} has neither fieldRef nor resourceFieldRef")
        except CreateContainerConfigError as err:
            raise VolumeError(str(err)) from err
        out[path] = FileProjection(data, mode)
    return out


def token_seconds(source: Mapping[str, Any]) -> int:
    return max(MIN_TOKEN_SECONDS, int(source.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS))


def token_request(pod: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """The TokenRequest the kubelet posts for a projected serviceAccountToken: bound to the pod."""
    meta = pod.get("metadata") or {}
    spec: dict[str, Any] = {
        "expirationSeconds": token_seconds(source),
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta.get("name", ""),
                           "uid": meta.get("uid", "")},
    }  # fmt: skip
    if source.get("audience"):
        spec["audiences"] = [str(source["audience"])]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


ObjectGetter = Callable[[str, str], Mapping[str, Any] | None]  # (kind, name) -> object or None
TokenGetter = Callable[[int, Mapping[str, Any]], str]  # (source index, source) -> token


def projected_payload(
    pod: Mapping[str, Any],
    source: Mapping[str, Any],
    objects: ObjectGetter,
    token: TokenGetter,
    allocatable: Mapping[str, Any],
) -> Payload:
    """A projected volume's files from its sources, in order (a later source's path wins)."""
    default_mode = _mode(source.get("defaultMode"), DEFAULT_MODE)
    out: Payload = {}
    for i, src in enumerate(source.get("sources") or ()):
        for kind in ("configMap", "secret"):
            if kind in src:
                sub = src[kind] or {}
                out.update(object_payload(kind, sub, objects(kind, str(sub.get("name", ""))), default_mode))
        if "downwardAPI" in src:
            out.update(
                downward_payload(pod, (src["downwardAPI"] or {}).get("items"), default_mode, allocatable)
            )
        if "serviceAccountToken" in src:
            sat = src["serviceAccountToken"] or {}
            path = str(sat.get("path", "token"))
            out[path] = FileProjection(token(i, sat).encode(), _mode(sat.get("mode"), default_mode))
    return out
