"""Kind-specific hooks of the registry: what Kubernetes' strategies and admission plugins add.

* NamespaceLifecycle: no creates in a missing or terminating namespace.
* ServiceAccount / DefaultTolerationSeconds / Priority (pods): ``admission_defaults_pod``.
* Service IP and NodePort allocation: one marker key per allocated IP or port, created in the same
  transaction as the Service, so two Services can never get the same one; released on delete.
* Job: the generated selector and labels, from the Job's uid.
* Graceful deletion: pods on a node get their termination grace period; namespaces wait for the
  namespace finalizer.
"""

from __future__ import annotations

import copy
import ipaddress
import random
from typing import TYPE_CHECKING, Any

from cluster.apiserver.defaults import admission_defaults_pod
from cluster.apiserver.errors import StatusError, forbidden
from cluster.apiserver.resources import ResourceInfo, lookup
from cluster.apiserver.storage import list_prefix

if TYPE_CHECKING:
    from cluster.apiserver.registry import Registry

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
NODE_PORT_RANGE = (30000, 32767)
IP_KEYS = "/registry/ranges/serviceips/"
PORT_KEYS = "/registry/ranges/servicenodeports/"

HAS_GENERATION = {
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Ingress",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "PersistentVolumeClaim",
    "IngressClass",
    "Service",
}

_rng = random.SystemRandom()


async def check_namespace_accepts(registry: Registry, namespace: str, info: ResourceInfo) -> None:
    ns_info = lookup("", "v1", "namespaces")
    assert ns_info is not None
    key = registry.key(ns_info, None, namespace)
    ns = None
    if registry.cache is not None:
        # Like Kubernetes' NamespaceLifecycle plugin: the informer cache first, a live read on a miss
        # (a namespace created a moment ago may not have reached the cache yet).
        cache = registry.cache.for_prefix(list_prefix(ns_info, None))
        if cache.revision:
            ns = cache.objects.get(key)
    if ns is None:
        ns = await registry.store.get(key)
    if ns is None:
        raise StatusError(
            404,
            "NotFound",
            f'namespaces "{namespace}" not found',
            details={"name": namespace, "kind": "namespaces"},
        )
    if ns.get("metadata", {}).get("deletionTimestamp") or ns.get("status", {}).get("phase") == "Terminating":
        raise forbidden(
            f"{info.plural} is forbidden: unable to create new content in namespace {namespace} "
            "because it is being terminated"
        )


def mutate_create(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    if info.kind == "Pod" and info.group == "":
        obj = admission_defaults_pod(obj)
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", qos_class(obj))
    if info.kind not in HAS_GENERATION:
        obj["metadata"].pop("generation", None)
    return obj


def generation_applies(info: ResourceInfo) -> bool:
    return info.kind in HAS_GENERATION


def qos_class(pod: dict[str, Any]) -> str:
    containers = list(pod.get("spec", {}).get("containers") or []) + list(
        pod.get("spec", {}).get("initContainers") or []
    )
    requests_any = limits_all = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
        limits_all = limits_all or bool(lim)
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed and limits_all else "Burstable"


SCHEDULING_GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"


def scheduling_gated_condition(pod: dict[str, Any]) -> dict[str, Any]:
    """A new pod with scheduling gates starts ``PodScheduled=False`` (reason ``SchedulingGated``), as
    Kubernetes' pod strategy sets it on create: the scheduler leaves gated pods alone, so without it
    nothing would say why the pod waits (kubectl shows the reason as the pod's STATUS)."""
    if not (pod.get("spec") or {}).get("schedulingGates"):
        return pod
    status = pod.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    if any(c.get("type") == "PodScheduled" for c in conditions):
        return pod
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": pod["metadata"].get("creationTimestamp"),
            "reason": "SchedulingGated",
            "message": SCHEDULING_GATED_MESSAGE,
        }
    )
    return pod


def after_uid(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """Create-time mutations that need the server-set metadata (uid, creationTimestamp)."""
    if info.kind == "Pod" and info.group == "":
        return scheduling_gated_condition(obj)
    if info.kind == "Job" and info.group == "batch":
        spec = obj.setdefault("spec", {})
        uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
        if not spec.get("manualSelector"):
            labels = {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}
    return obj


async def allocate(
    registry: Registry, info: ResourceInfo, obj: dict[str, Any], *, dry_run: bool
) -> list[str]:
    """Marker keys to create with the object (allocated Service IPs and node ports)."""
    if info.kind != "Service" or info.group != "":
        return []
    spec = obj.setdefault("spec", {})
    keys: list[str] = []
    stype = spec.get("type", "ClusterIP")
    if stype != "ExternalName" and spec.get("clusterIP") != "None":
        ip = spec.get("clusterIP") or ""
        if not ip:
            ip = await _free_ip(registry)
        elif ipaddress.ip_address(ip) not in SERVICE_CIDR:
            raise _invalid_service(
                obj,
                "spec.clusterIPs",
                ip,
                f"provided IP is not in the valid range. The range of valid IPs is {SERVICE_CIDR}",
            )
        elif await registry.store.exists(IP_KEYS + ip):
            raise _invalid_service(obj, "spec.clusterIPs", ip, "provided IP is already allocated")
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        keys.append(IP_KEYS + ip)
    elif spec.get("clusterIP") == "None":
        spec["clusterIPs"] = ["None"]
    if stype in ("NodePort", "LoadBalancer"):
        used: set[int] = set()
        for port in spec.get("ports") or []:
            proto = port.get("protocol", "TCP")
            np = port.get("nodePort")
            if np:
                if await registry.store.exists(f"{PORT_KEYS}{np}-{proto}"):
                    raise _invalid_service(
                        obj, "spec.ports[].nodePort", np, "provided port is already allocated"
                    )
            else:
                np = await _free_port(registry, proto, used)
                port["nodePort"] = np
            used.add(int(np))
            keys.append(f"{PORT_KEYS}{np}-{proto}")
    return keys


def _invalid_service(obj: dict[str, Any], field: str, value: Any, why: str) -> StatusError:
    name = obj["metadata"]["name"]
    msg = f'Service "{name}" is invalid: {field}: Invalid value: "{value}": {why}'
    return StatusError(
        422,
        "Invalid",
        msg,
        details={
            "name": name,
            "kind": "Service",
            "causes": [
                {"reason": "FieldValueInvalid", "message": f'Invalid value: "{value}": {why}', "field": field}
            ],
        },
    )


async def _free_ip(registry: Registry) -> str:
    reserved = {KUBERNETES_SERVICE_IP, DNS_SERVICE_IP}
    first, size = int(SERVICE_CIDR.network_address), SERVICE_CIDR.num_addresses
    for _ in range(64):
        ip = str(ipaddress.ip_address(first + _rng.randrange(16, size - 1)))
        if ip not in reserved and not await registry.store.exists(IP_KEYS + ip):
            return ip
    raise StatusError(
        500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: range is full"
    )


async def _free_port(registry: Registry, proto: str, used: set[int]) -> int:
    lo, hi = NODE_PORT_RANGE
    for _ in range(256):
        port = _rng.randint(lo, hi)
        if port not in used and not await registry.store.exists(f"{PORT_KEYS}{port}-{proto}"):
            return port
    raise StatusError(
        500, "InternalError", "Internal error occurred: failed to allocate a nodePort: range is full"
    )


def mutate_update(info: ResourceInfo, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    if info.kind == "Service" and info.group == "":
        nspec, ospec = new.setdefault("spec", {}), old.get("spec", {})
        for f in ("clusterIP", "clusterIPs"):
            if not nspec.get(f) and ospec.get(f):
                nspec[f] = copy.deepcopy(ospec[f])
        old_ports = {
            (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in ospec.get("ports") or []
        }
        for p in nspec.get("ports") or []:
            np = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
            if np and not p.get("nodePort") and nspec.get("type") in ("NodePort", "LoadBalancer"):
                p["nodePort"] = np
    if info.kind not in HAS_GENERATION:
        new["metadata"].pop("generation", None)
    return new


def release_keys(info: ResourceInfo, obj: dict[str, Any]) -> list[str]:
    if info.kind != "Service" or info.group != "":
        return []
    spec = obj.get("spec", {})
    keys = [IP_KEYS + ip for ip in spec.get("clusterIPs") or [] if ip and ip != "None"]
    keys += [
        f"{PORT_KEYS}{p['nodePort']}-{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
        if p.get("nodePort")
    ]
    return keys


def grace_period(info: ResourceInfo, obj: dict[str, Any], options: dict[str, Any]) -> int:
    """Seconds of graceful termination; 0 deletes at once (unless finalizers hold the object)."""
    if info.kind == "Namespace" and info.group == "":
        return 0
    if info.kind != "Pod" or info.group != "":
        return 0
    spec, status = obj.get("spec", {}), obj.get("status", {})
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0  # nothing runs it: Kubernetes deletes such pods immediately
    requested = options.get("gracePeriodSeconds")
    if requested is not None:
        return max(0, int(requested))
    return int(spec.get("terminationGracePeriodSeconds", 30))


def waits_for_finalization(info: ResourceInfo, obj: dict[str, Any]) -> bool:
    return info.kind == "Namespace" and info.group == "" and bool(obj.get("spec", {}).get("finalizers"))


def mark_terminating(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    if info.kind == "Namespace" and info.group == "":
        obj.setdefault("status", {})["phase"] = "Terminating"
    return obj
