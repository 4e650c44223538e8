"""Static pods: pods from manifest files that run without the API server, and their mirror pods.

``read_manifests(directory)`` is the only I/O: it reads ``*.yaml``/``*.yml``/``*.json`` (one or more
documents; dotfiles ignored) and returns the Pod documents plus per-file errors. Everything else is
pure:
- ``static_pod`` applies the kubelet's file-source defaults: name ``<name>-<nodename>`` (lower-cased),
  namespace ``default`` when empty, ``spec.nodeName``, a toleration of every NoExecute taint, a uid
  derived from the document, the node and the file path (ours: sha256 of canonical JSON, 32 hex
  digits, where the kubelet uses a Go object hash), annotations ``kubernetes.io/config.source: file``,
  ``kubernetes.io/config.hash`` (= the uid) and ``kubernetes.io/config.seen``.
- ``diff`` compares two scans by uid: a changed file is a new hash, so it shows as removed + added
  under the same name (``changed`` lists those name pairs), as the kubelet replaces the pod.
- ``mirror_pod`` is the API copy (annotation ``kubernetes.io/config.mirror`` = hash, owned by the Node);
  ``mirror_actions`` decides creates and deletes against the API's current mirror pods: create
  missing ones, recreate those whose hash differs, delete orphans. Deleting a mirror pod never stops
  the static pod; it is simply created again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml  # type: ignore[import-untyped]

from cluster.machinery.times import rfc3339_micro

SOURCE = "kubernetes.io/config.source"
HASH = "kubernetes.io/config.hash"
MIRROR = "kubernetes.io/config.mirror"
SEEN = "kubernetes.io/config.seen"
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Manifest:
    """One Pod document and the file it came from."""

    path: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ManifestError:
    path: str
    message: str


def read_manifests(directory: str) -> tuple[list[Manifest], list[ManifestError]]:
    """Read every manifest in ``directory`` (sorted by file name); a missing directory is empty."""
    manifests: list[Manifest] = []
    errors: list[ManifestError] = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return manifests, errors
    for name in names:
        path = os.path.join(directory, name)
        if name.startswith(".") or not name.endswith(_SUFFIXES) or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except (OSError, yaml.YAMLError) as err:
            errors.append(ManifestError(path, str(err)))
            continue
        for doc in docs:
            problem = _check(doc)
            if problem:
                errors.append(ManifestError(path, problem))
            else:
                manifests.append(Manifest(path, doc))
    return manifests, errors


def _check(doc: object) -> str:
    if not isinstance(doc, dict):
        return "not an object"
    if doc.get("kind") != "Pod" or doc.get("apiVersion") != "v1":
        return f"kind {doc.get('kind')!r} apiVersion {doc.get('apiVersion')!r}: only v1 Pods are static pods"
    if not (doc.get("metadata") or {}).get("name"):
        return "metadata.name: Required value"
    if not (doc.get("spec") or {}).get("containers"):
        return "spec.containers: Required value"
    return ""


def pod_uid(doc: Mapping[str, Any], node_name: str, path: str) -> str:
    """Deterministic uid: the document, then ``host:<node>`` and ``file:<path>``, hashed."""
    h = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode())
    h.update(f"host:{node_name}".encode())
    h.update(f"file:{path}".encode())
    return h.hexdigest()[:32]


def static_pod(manifest: Manifest, node_name: str, seen: datetime) -> dict[str, Any]:
    """The pod the agent runs for ``manifest``, with the kubelet's file-source defaults."""
    pod = copy.deepcopy(manifest.doc)
    meta = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    uid = meta.get("uid") or pod_uid(manifest.doc, node_name, manifest.path)
    meta["uid"] = uid
    meta["name"] = f"{meta['name']}-{node_name.lower()}"
    meta["namespace"] = meta.get("namespace") or "default"
    spec["nodeName"] = node_name
    tolerations = spec.setdefault("tolerations", [])
    everything = {"operator": "Exists", "effect": "NoExecute"}
    if everything not in tolerations:
        tolerations.append(everything)
    annotations = meta.setdefault("annotations", {})
    annotations[HASH] = uid
    annotations[SOURCE] = "file"
    annotations[SEEN] = rfc3339_micro(seen)
    pod["status"] = {"phase": "Pending"}
    return pod


def static_pods(
    manifests: Iterable[Manifest],
    node_name: str,
    now: datetime,
    previous: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """All static pods by uid; a pod already in ``previous`` keeps its ``config.seen``.

    Two documents producing the same namespace/name: the first (by file name) wins, as the kubelet
    keeps the first one it saw.
    """
    out: dict[str, dict[str, Any]] = {}
    names: set[tuple[str, str]] = set()
    for m in manifests:
        pod = static_pod(m, node_name, now)
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if key in names:
            continue
        names.add(key)
        uid = pod["metadata"]["uid"]
        if previous and uid in previous:
            pod["metadata"]["annotations"][SEEN] = previous[uid]["metadata"]["annotations"][SEEN]
        out[uid] = pod
    return out


@dataclass(frozen=True, slots=True)
class StaticPodDiff:
    """Pods to start (``added``) and stop (``removed``); ``changed``: (ns, name) replaced by a new hash."""

    added: tuple[dict[str, Any], ...]
    removed: tuple[dict[str, Any], ...]
    changed: tuple[tuple[str, str], ...]


def diff(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> StaticPodDiff:
    """What changed between two ``static_pods`` results (keyed by uid)."""
    added = tuple(dict(new[u]) for u in sorted(new) if u not in old)
    removed = tuple(dict(old[u]) for u in sorted(old) if u not in new)

    def names(pods: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
        return {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods}

    return StaticPodDiff(added, removed, tuple(sorted(names(added) & names(removed))))


def mirror_pod(static: Mapping[str, Any], node_uid: str) -> dict[str, Any]:
    """The API copy of a static pod: annotated with its hash and owned by the Node."""
    pod = copy.deepcopy(dict(static))
    meta = pod["metadata"]
    meta.pop("uid", None)  # the API server assigns the mirror pod's own uid
    meta.pop("resourceVersion", None)
    meta["annotations"][MIRROR] = meta["annotations"][HASH]
    meta["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "name": pod["spec"]["nodeName"],
            "uid": node_uid,
            "controller": True,
        }
    ]
    pod.pop("status", None)
    return pod


def is_mirror_pod(pod: Mapping[str, Any]) -> bool:
    return MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


@dataclass(frozen=True, slots=True)
class MirrorDelete:
    """Delete this mirror pod, with ``uid`` as the precondition (never someone else's new pod)."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class MirrorActions:
    """Deletes first, then creates (a recreate is a delete plus a create of the same name)."""

    delete: tuple[MirrorDelete, ...]
    create: tuple[dict[str, Any], ...]


def mirror_actions(
    statics: Mapping[str, Mapping[str, Any]],
    api_pods: Iterable[Mapping[str, Any]],
    node_name: str,
    node_uid: str,
) -> MirrorActions:
    """Bring the API's mirror pods for ``node_name`` in line with ``statics`` (keyed by uid).

    A mirror pod already being deleted (``deletionTimestamp``) is left alone and not recreated until
    it is gone; a non-mirror pod holding the name is left alone too (the kubelet does not fight it).
    """
    by_name: dict[tuple[str, str], Mapping[str, Any]] = {}
    for p in api_pods:
        meta = p.get("metadata") or {}
        by_name[(meta.get("namespace", ""), meta.get("name", ""))] = p
    wanted = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in statics.values()}
    deletes: list[MirrorDelete] = []
    creates: list[dict[str, Any]] = []
    for key in sorted(wanted):
        static = wanted[key]
        current = by_name.get(key)
        if current is None:
            creates.append(mirror_pod(static, node_uid))
            continue
        meta = current.get("metadata") or {}
        if not is_mirror_pod(current) or meta.get("deletionTimestamp"):
            continue
        if meta["annotations"][MIRROR] != static["metadata"]["annotations"][HASH]:
            deletes.append(MirrorDelete(key[0], key[1], meta.get("uid", "")))
            creates.append(mirror_pod(static, node_uid))
    for key in sorted(by_name):
        p = by_name[key]
        meta = p.get("metadata") or {}
        on_node = (p.get("spec") or {}).get("nodeName") == node_name
        if key not in wanted and on_node and is_mirror_pod(p) and not meta.get("deletionTimestamp"):
            deletes.append(MirrorDelete(key[0], key[1], meta.get("uid", "")))
    return MirrorActions(tuple(deletes), tuple(creates))
