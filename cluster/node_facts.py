"""What a Ray node tells its Node: labels and capacity from a ``ray.nodes()`` entry.

Pure (no Ray, no I/O): ``ray_node_facts(entry)`` maps one entry to ``RayNodeFacts``, which the node
agent deployment hands to each agent, so a Node says where it runs in Ray's terms and a pod can select
it with a node selector that means the same as a Ray label selector.

Labels:

* every Ray label (``Labels``: ``ray.io/node-id``, ``ray.io/node-group``, ``ray.io/availability-zone``,
  ``ray.io/accelerator-type``, and the labels a cluster config or ``ray start --labels`` gives) is
  copied as it is when its key is a valid Kubernetes label key and its value a valid label value;
  the others are SKIPPED, never rewritten (a normalized value could match a selector it was not
  meant for): keys with spaces or other characters outside ``[A-Za-z0-9._-]``, a name part over 63
  characters or a prefix that is not a DNS subdomain, values over 63 characters or not starting and
  ending alphanumeric. ``skipped_labels`` names them, for the log.
* keys under ``kubernetes.io`` or ``k8s.io`` are the cluster's own: only those a kubelet may set on
  its Node (the NodeRestriction admission plugin's list: ``node.kubernetes.io/*``,
  ``kubelet.kubernetes.io/*``, ``topology.kubernetes.io/{region,zone}``) are copied, and never the
  agent's own well-known ones (``kubernetes.io/hostname``, ``/os``, ``/arch``).
* ``raykube.io/ray-node-type``: the node type of Ray's cluster launcher. Ray 2.60 exposes it as the
  label ``ray.io/node-group``, set from ``$RAY_NODE_TYPE_NAME``, which ``ray up`` (autoscaler v2),
  KubeRay and the fake multi-node provider export to ``ray start``; a node started by hand has none.
* ``topology.kubernetes.io/zone`` and ``/region`` from Ray's ``ray.io/availability-zone`` and
  ``ray.io/availability-region`` (``$RAY_NODE_ZONE``/``$RAY_NODE_REGION``), as cloud providers set them.
* ``node.kubernetes.io/instance-type`` (and the agent's beta twin) when known: Ray does not expose
  the cloud's machine type, so only when the node's labels carry it (a cluster config's node type can
  set ``labels: {node.kubernetes.io/instance-type: m5.large}``).

Capacity: ``cpu`` and ``memory`` from Ray's ``CPU`` and ``memory`` resources (what Ray lets tasks use,
which may be less than the machine: ``ray start --num-cpus 2``), ``nvidia.com/gpu`` from ``GPU``
(whole GPUs: Kubernetes counts devices). Ray's custom resources (``ray start --resources``), its
``node:<ip>`` markers and ``object_store_memory`` are NOT exposed: they mean something to Ray's
scheduler only, and a pod asking for them would wait for a device plugin that never comes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NODE_TYPE_LABEL = "raykube.io/ray-node-type"
RAY_NODE_ID_LABEL = "ray.io/node-id"
RAY_NODE_GROUP_LABEL = "ray.io/node-group"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
GPU_RESOURCE = "nvidia.com/gpu"
_TOPOLOGY = {
    "ray.io/availability-zone": "topology.kubernetes.io/zone",
    "ray.io/availability-region": "topology.kubernetes.io/region",
}
_AGENT_OWN = {"kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch"}
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class RayNodeFacts:
    """One Ray node as its Node shows it: labels, Ray's CPUs and memory (None: the machine's), GPUs,
    the instance type ("" when unknown) and the Ray labels left out (invalid or reserved)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    cpus: float | None = None
    memory: float | None = None
    gpus: int = 0
    instance_type: str = ""
    skipped_labels: tuple[str, ...] = ()

    def extended_resources(self) -> dict[str, str]:
        """The Node's capacity beyond cpu and memory: ``nvidia.com/gpu`` when Ray has GPUs."""
        return {GPU_RESOURCE: str(self.gpus)} if self.gpus > 0 else {}


def valid_label_key(key: str) -> bool:
    """Kubernetes' IsQualifiedName: ``[prefix/]name``, prefix a DNS subdomain (<= 253), name <= 63."""
    prefix, _, name = key.rpartition("/")
    if "/" in prefix or not name or len(name) > 63 or not _NAME.match(name):
        return False
    if not prefix and "/" in key:
        return False
    return not prefix or (len(prefix) <= 253 and all(_DNS_LABEL.match(p) for p in prefix.split(".")))


def valid_label_value(value: str) -> bool:
    """Kubernetes' label value: empty, or <= 63 characters of ``[A-Za-z0-9._-]`` starting and ending
    alphanumeric."""
    return value == "" or (len(value) <= 63 and bool(_NAME.match(value)))


def _reserved(key: str) -> bool:
    prefix = key.rpartition("/")[0]
    return any(prefix == d or prefix.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))


def _kubelet_may_set(key: str) -> bool:
    """NodeRestriction's allowed kubernetes.io/k8s.io labels for a kubelet's own Node."""
    if key in _AGENT_OWN:
        return False
    prefix = key.rpartition("/")[0]
    return prefix in ("node.kubernetes.io", "kubelet.kubernetes.io") or key in _TOPOLOGY.values()


def ray_node_facts(entry: Mapping[str, Any]) -> RayNodeFacts:
    """``entry`` (one ``ray.nodes()`` dict: ``Labels``, ``Resources``) as its Node's labels and
    capacity; see the module docstring for what is copied, mapped and skipped."""
    labels: dict[str, str] = {}
    skipped: list[str] = []
    for key, raw in sorted((entry.get("Labels") or {}).items()):
        key, value = str(key), str(raw)
        valid = valid_label_key(key) and valid_label_value(value)
        if not valid or (_reserved(key) and not _kubelet_may_set(key)):
            skipped.append(key)
        else:
            labels[key] = value
    for ray_key, kube_key in _TOPOLOGY.items():
        if ray_key in labels:
            labels.setdefault(kube_key, labels[ray_key])
    if labels.get(RAY_NODE_GROUP_LABEL):
        labels[NODE_TYPE_LABEL] = labels[RAY_NODE_GROUP_LABEL]
    resources = entry.get("Resources") or {}
    cpus, memory, gpus = resources.get("CPU"), resources.get("memory"), resources.get("GPU")
    return RayNodeFacts(
        labels=labels,
        cpus=float(cpus) if cpus is not None else None,
        memory=float(memory) if memory is not None else None,
        gpus=math.floor(float(gpus)) if gpus else 0,
        instance_type=labels.get(INSTANCE_TYPE_LABEL, ""),
        skipped_labels=tuple(skipped),
    )
