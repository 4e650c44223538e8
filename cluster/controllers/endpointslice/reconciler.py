"""The pure half of the EndpointSlice controller: pods to endpoints, endpoints to slice writes.

Endpoint conditions as kube sets them: ``serving`` is the pod's Ready condition, ``terminating`` is
whether it has a deletionTimestamp, ``ready`` is serving and not terminating (or always true under
``publishNotReadyAddresses``). A Service port's named ``targetPort`` is resolved in each pod's containers,
so pods that resolve to different numbers land in different slices (a slice has one port list); a pod
where a port does not resolve just lacks that port.

Invariants of :func:`plan_slices`: unchanged slices are never rewritten; an endpoint already in a slice
stays in that slice while it is still wanted (changes update it in place); new endpoints fill slices
that are being updated anyway before an untouched slice gets them, and only then are new slices made,
at most ``MAX_ENDPOINTS_PER_SLICE`` endpoints each; with no endpoints at all one empty placeholder
slice remains. Nothing here mutates its arguments.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cluster.controllers.pods import is_pod_ready

MAX_ENDPOINTS_PER_SLICE = 100
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
ADDRESS_TYPE = "IPv4"
# Labels the controller owns on a slice: a Service's own labels never override them.
RESERVED_LABELS = frozenset({SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL})

PortKey = tuple[tuple[str, int, str, str], ...]


# -- pods -----------------------------------------------------------------------------------------


def pod_ip(pod: Mapping[str, Any]) -> str | None:
    status = pod.get("status") or {}
    if status.get("podIP"):
        return str(status["podIP"])
    for entry in status.get("podIPs") or []:
        if entry.get("ip"):
            return str(entry["ip"])
    return None


def should_pod_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    """Kube's rule: not terminal, has an IP, and terminating only when the caller keeps those."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if pod_ip(pod) is None:
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The container port a Service port's targetPort means in ``pod`` (None when a name is unknown)."""
    target = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def endpoint_ports(service: Mapping[str, Any], pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Service's ports as this pod serves them, in Service order; unresolvable ones left out."""
    out = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = find_port(pod, sp)
        if number is None:
            continue
        port: dict[str, Any] = {
            "name": sp.get("name") or "",
            "port": number,
            "protocol": sp.get("protocol") or "TCP",
        }
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def port_key(ports: Iterable[Mapping[str, Any]]) -> PortKey:
    return tuple(
        sorted(
            (
                str(p.get("name") or ""),
                int(p.get("port") or 0),
                str(p.get("protocol") or "TCP"),
                str(p.get("appProtocol") or ""),
            )
            for p in ports
        )
    )


def should_set_hostname(pod: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    """A pod's hostname is published when its subdomain names this (headless) Service."""
    spec = pod.get("spec") or {}
    meta_ns = (pod.get("metadata") or {}).get("namespace")
    svc_meta = service.get("metadata") or {}
    return bool(
        spec.get("hostname")
        and spec.get("subdomain") == svc_meta.get("name")
        and meta_ns == svc_meta.get("namespace")
    )


def pod_endpoint(
    pod: Mapping[str, Any], service: Mapping[str, Any], node: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The EndpointSlice endpoint for ``pod`` (caller checked :func:`should_pod_be_in_endpoints`)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    serving = is_pod_ready(pod)
    terminating = bool(meta.get("deletionTimestamp"))
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    endpoint: dict[str, Any] = {
        "addresses": [pod_ip(pod)],
        "conditions": {
            "ready": publish or (serving and not terminating),
            "serving": serving,
            "terminating": terminating,
        },
        "targetRef": {
            "kind": "Pod",
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        },
    }
    if should_set_hostname(pod, service):
        endpoint["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        endpoint["nodeName"] = spec["nodeName"]
        zone = ((node or {}).get("metadata") or {}).get("labels", {}).get(ZONE_LABEL)
        if zone:
            endpoint["zone"] = zone
    return endpoint


def endpoint_key(endpoint: Mapping[str, Any]) -> str:
    """Identity of an endpoint across syncs: the pod it points at, else its address."""
    ref = endpoint.get("targetRef") or {}
    if ref.get("name"):
        return f"{ref.get('namespace')}/{ref['name']}"
    return ",".join(endpoint.get("addresses") or [])


@dataclass(frozen=True, slots=True)
class PortGroup:
    """Endpoints sharing one resolved port list: they can share a slice."""

    ports: tuple[Mapping[str, Any], ...]
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)


def desired_endpoints(
    service: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    nodes: Mapping[str, Mapping[str, Any]],
) -> dict[PortKey, PortGroup]:
    """The endpoints the Service should have, grouped by their resolved ports."""
    groups: dict[PortKey, PortGroup] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        ports = endpoint_ports(service, pod)
        key = port_key(ports)
        group = groups.setdefault(key, PortGroup(tuple(ports)))
        node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        endpoint = pod_endpoint(pod, service, node)
        group.endpoints[endpoint_key(endpoint)] = endpoint
    return groups


# -- slices ---------------------------------------------------------------------------------------


def slice_labels(service: Mapping[str, Any]) -> dict[str, str]:
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in RESERVED_LABELS}
    if spec.get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = meta.get("name", "")
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def new_slice(
    service: Mapping[str, Any], ports: Sequence[Mapping[str, Any]], endpoints: list[dict[str, Any]]
) -> dict[str, Any]:
    meta = service.get("metadata") or {}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": f"{meta.get('name')}-",
            "namespace": meta.get("namespace"),
            "labels": slice_labels(service),
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": meta.get("name"),
                    "uid": meta.get("uid"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": ADDRESS_TYPE,
        "endpoints": endpoints,
        "ports": [dict(p) for p in ports],
    }


def is_managed_slice(eps: Mapping[str, Any], service_name: str) -> bool:
    labels = (eps.get("metadata") or {}).get("labels") or {}
    return labels.get(SERVICE_NAME_LABEL) == service_name and labels.get(MANAGED_BY_LABEL) == MANAGED_BY


def _is_placeholder(eps: Mapping[str, Any]) -> bool:
    return not eps.get("endpoints") and not eps.get("ports")


@dataclass(frozen=True, slots=True)
class SlicePlan:
    """What to write: new slices (with generateName), whole updated slices, and slice names to delete."""

    create: list[dict[str, Any]]
    update: list[dict[str, Any]]
    delete: list[str]

    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def plan_slices(
    service: Mapping[str, Any],
    desired: Mapping[PortKey, PortGroup],
    existing: Sequence[Mapping[str, Any]],
    max_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
) -> SlicePlan:
    """The writes that turn ``existing`` (this Service's managed IPv4 slices) into ``desired``."""
    labels = slice_labels(service)
    remaining = {key: dict(group.endpoints) for key, group in desired.items()}
    to_update: dict[str, dict[str, Any]] = {}
    unchanged: list[dict[str, Any]] = []
    delete: list[str] = []
    placeholder: Mapping[str, Any] | None = None

    for eps in sorted(existing, key=lambda s: s["metadata"]["name"]):
        name = eps["metadata"]["name"]
        if _is_placeholder(eps) and placeholder is None:
            placeholder = eps
            continue
        key = port_key(eps.get("ports") or [])
        wanted = remaining.get(key)
        if wanted is None:
            delete.append(name)
            continue
        kept, changed = [], False
        for endpoint in eps.get("endpoints") or []:
            want = wanted.pop(endpoint_key(endpoint), None)
            if want is None:
                changed = True  # no longer wanted, or already placed in an earlier slice
            else:
                kept.append(want)
                changed = changed or want != endpoint
        if not kept:
            delete.append(name)
            continue
        if changed or (eps.get("metadata") or {}).get("labels") != labels:
            updated = copy.deepcopy(dict(eps))
            updated["metadata"]["labels"] = dict(labels)
            updated["endpoints"] = kept
            to_update[name] = updated
        else:
            unchanged.append(dict(eps))

    create: list[dict[str, Any]] = []
    for key, wanted in remaining.items():
        if not wanted:
            continue
        pending = list(wanted.values())
        # 1. Top up slices that are written anyway.
        for updated in to_update.values():
            if port_key(updated.get("ports") or []) == key:
                room = max_per_slice - len(updated["endpoints"])
                updated["endpoints"].extend(pending[:room])
                pending = pending[max(room, 0) :]
        # 2. A leftover smaller than a slice goes into the untouched slice with the least room that fits it.
        if 0 < len(pending) < max_per_slice:
            fits = [
                s
                for s in unchanged
                if port_key(s.get("ports") or []) == key
                and len(s.get("endpoints") or []) + len(pending) <= max_per_slice
            ]
            if fits:
                target = max(fits, key=lambda s: len(s.get("endpoints") or []))
                unchanged.remove(target)
                updated = copy.deepcopy(target)
                updated["endpoints"] = list(updated.get("endpoints") or []) + pending
                to_update[updated["metadata"]["name"]] = updated
                pending = []
        # 3. New slices for the rest.
        for start in range(0, len(pending), max_per_slice):
            create.append(new_slice(service, desired[key].ports, pending[start : start + max_per_slice]))

    have_slices = bool(create or to_update or unchanged)
    if placeholder is not None:
        if have_slices:
            delete.append(placeholder["metadata"]["name"])
        elif (placeholder.get("metadata") or {}).get("labels") != labels:
            updated = copy.deepcopy(dict(placeholder))
            updated["metadata"]["labels"] = dict(labels)
            to_update[updated["metadata"]["name"]] = updated
    elif not have_slices:
        create.append(new_slice(service, [], []))
    return SlicePlan(create=create, update=list(to_update.values()), delete=sorted(delete))


def service_has_selector(service: Mapping[str, Any]) -> bool:
    return bool((service.get("spec") or {}).get("selector"))


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str] | None) -> bool:
    """A Service selector (a plain map) picks the pods carrying every one of its labels."""
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())
