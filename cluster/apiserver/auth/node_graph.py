"""Which objects each node may read (kube's node authorizer graph, ``plugin/pkg/auth/authorizer/node``):
a node is related to the Secrets, ConfigMaps, PersistentVolumeClaims, ServiceAccounts and
ResourceClaims its bound pods refer to, to the PersistentVolumes bound to those claims (and the
Secrets those volumes name), and to the VolumeAttachments naming it.

Kept current from the watch cache (pods, persistentvolumes, volumeattachments): each pod's
references are computed once per event and counted per node, so a question is a dict lookup.
Pods not yet bound (no ``spec.nodeName``) relate to no node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

Ref = tuple[
    str, str, str
]  # (kind, namespace, name); kind is secret|configmap|pvc|serviceaccount|resourceclaim


def _volume_refs(namespace: str, pod_name: str, volume: dict[str, Any]) -> Iterator[Ref]:
    if (secret := volume.get("secret")) and secret.get("secretName"):
        yield "secret", namespace, secret["secretName"]
    if (cm := volume.get("configMap")) and cm.get("name"):
        yield "configmap", namespace, cm["name"]
    if (claim := volume.get("persistentVolumeClaim")) and claim.get("claimName"):
        yield "pvc", namespace, claim["claimName"]
    if volume.get("ephemeral") is not None:
        yield "pvc", namespace, f"{pod_name}-{volume.get('name', '')}"
    for source in (volume.get("projected") or {}).get("sources") or ():
        if (secret := source.get("secret")) and secret.get("name"):
            yield "secret", namespace, secret["name"]
        if (cm := source.get("configMap")) and cm.get("name"):
            yield "configmap", namespace, cm["name"]
    for plugin in volume.values():  # csi, cephfs, rbd, iscsi, flexVolume, azureFile ... secret refs
        if not isinstance(plugin, dict):
            continue
        for field in ("secretRef", "nodePublishSecretRef", "nodeStageSecretRef"):
            if (ref := plugin.get(field)) and isinstance(ref, dict) and ref.get("name"):
                yield "secret", namespace, ref["name"]
        if isinstance(plugin.get("secretName"), str) and "secret" not in volume:
            yield "secret", namespace, plugin["secretName"]


def _container_refs(namespace: str, container: dict[str, Any]) -> Iterator[Ref]:
    for env in container.get("env") or ():
        source = env.get("valueFrom") or {}
        if (ref := source.get("secretKeyRef")) and ref.get("name"):
            yield "secret", namespace, ref["name"]
        if (ref := source.get("configMapKeyRef")) and ref.get("name"):
            yield "configmap", namespace, ref["name"]
    for env_from in container.get("envFrom") or ():
        if (ref := env_from.get("secretRef")) and ref.get("name"):
            yield "secret", namespace, ref["name"]
        if (ref := env_from.get("configMapRef")) and ref.get("name"):
            yield "configmap", namespace, ref["name"]


def pod_refs(pod: dict[str, Any]) -> frozenset[Ref]:
    """Everything a pod refers to that its node must be able to read."""
    meta = pod.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    spec = pod.get("spec") or {}
    refs: set[Ref] = set()
    for volume in spec.get("volumes") or ():
        refs.update(_volume_refs(namespace, name, volume))
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or ():
            refs.update(_container_refs(namespace, container))
    for secret in spec.get("imagePullSecrets") or ():
        if secret.get("name"):
            refs.add(("secret", namespace, secret["name"]))
    if spec.get("serviceAccountName"):
        refs.add(("serviceaccount", namespace, spec["serviceAccountName"]))
    for claim in spec.get("resourceClaims") or ():
        if claim.get("resourceClaimName"):
            refs.add(("resourceclaim", namespace, claim["resourceClaimName"]))
    for status in (pod.get("status") or {}).get("resourceClaimStatuses") or ():
        if status.get("resourceClaimName"):
            refs.add(("resourceclaim", namespace, status["resourceClaimName"]))
    return frozenset(refs)


def pv_secrets(pv: dict[str, Any]) -> set[tuple[str, str]]:
    """(namespace, name) of the Secrets a PersistentVolume names (CSI and plugin secret refs)."""
    out: set[tuple[str, str]] = set()
    for plugin in (pv.get("spec") or {}).values():
        if not isinstance(plugin, dict):
            continue
        for field in (
            "secretRef",
            "nodePublishSecretRef",
            "nodeStageSecretRef",
            "nodeExpandSecretRef",
            "controllerPublishSecretRef",
        ):
            ref = plugin.get(field)
            if isinstance(ref, dict) and ref.get("name") and ref.get("namespace"):
                out.add((ref["namespace"], ref["name"]))
    return out


class NodeGraph:
    def __init__(self) -> None:
        self.pods: dict[str, tuple[str, frozenset[Ref]]] = {}  # pod key -> (node, refs)
        self.node_refs: dict[str, Counter[Ref]] = {}
        self.pv_claim: dict[str, tuple[str, str]] = {}  # pv name -> (claim namespace, claim name)
        self.pv_secrets: dict[str, set[tuple[str, str]]] = {}
        self.attachments: dict[str, str] = {}  # volumeattachment name -> node

    # ---------------------------------------------------------------- updates

    def put_pod(self, key: str, pod: dict[str, Any]) -> None:
        self.remove_pod(key)
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return
        refs = pod_refs(pod)
        self.pods[key] = (node, refs)
        self.node_refs.setdefault(node, Counter()).update(refs)

    def remove_pod(self, key: str) -> None:
        old = self.pods.pop(key, None)
        if old is None:
            return
        counts = self.node_refs.get(old[0])
        if counts is not None:
            counts.subtract(old[1])
            for ref in old[1]:
                if counts[ref] <= 0:
                    del counts[ref]

    def put_pv(self, pv: dict[str, Any]) -> None:
        name = (pv.get("metadata") or {}).get("name") or ""
        claim = (pv.get("spec") or {}).get("claimRef") or {}
        if claim.get("name"):
            self.pv_claim[name] = (claim.get("namespace") or "", claim["name"])
        else:
            self.pv_claim.pop(name, None)
        self.pv_secrets[name] = pv_secrets(pv)

    def remove_pv(self, pv: dict[str, Any]) -> None:
        name = (pv.get("metadata") or {}).get("name") or ""
        self.pv_claim.pop(name, None)
        self.pv_secrets.pop(name, None)

    def put_attachment(self, va: dict[str, Any]) -> None:
        self.attachments[(va.get("metadata") or {}).get("name") or ""] = (va.get("spec") or {}).get(
            "nodeName"
        ) or ""

    def remove_attachment(self, va: dict[str, Any]) -> None:
        self.attachments.pop((va.get("metadata") or {}).get("name") or "", None)

    def reload(self, kind: str, objects: Iterable[tuple[str, dict[str, Any]]]) -> None:
        if kind == "pods":
            self.pods.clear()
            self.node_refs.clear()
            for key, pod in objects:
                self.put_pod(key, pod)
        elif kind == "persistentvolumes":
            self.pv_claim.clear()
            self.pv_secrets.clear()
            for _, pv in objects:
                self.put_pv(pv)
        else:
            self.attachments.clear()
            for _, va in objects:
                self.put_attachment(va)

    # ---------------------------------------------------------------- questions

    def related(self, node: str, kind: str, namespace: str, name: str) -> bool:
        """Whether ``node`` may read the object: a pod bound to it refers to it, directly or (for
        PersistentVolumes and their Secrets) through a bound claim."""
        refs = self.node_refs.get(node)
        if kind == "volumeattachment":
            return self.attachments.get(name) == node
        if not refs:
            return False
        if kind == "persistentvolume":
            claim = self.pv_claim.get(name)
            return claim is not None and ("pvc", *claim) in refs
        if (kind, namespace, name) in refs:
            return True
        if kind == "secret":  # through a PersistentVolume's secret reference
            return any(
                (namespace, name) in secrets
                and (claim := self.pv_claim.get(pv)) is not None
                and ("pvc", *claim) in refs
                for pv, secrets in self.pv_secrets.items()
                if secrets
            )
        return False
