"""Table printers for core/v1 resources other than pods, mirroring kubectl's ``printers.go``.

Role: columns and row cells for nodes, namespaces, services, endpoints, configmaps, secrets,
serviceaccounts, events (core/v1 and events.k8s.io/v1), persistentvolumes, persistentvolumeclaims,
resourcequotas and limitranges. Pure functions of (object, now).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cluster.apiserver.tables.format import (
    Column,
    Obj,
    TablePrinter,
    access_modes,
    age,
    age_column,
    as_dict,
    as_list,
    created_at_column,
    field_doc,
    format_labels,
    get,
    load_balancer_ingress,
    name_column,
    name_of,
    quantity,
    rfc3339,
    since,
)
from cluster.machinery.meta import object_meta

_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_ROLE_LABEL = "kubernetes.io/role"


# --- nodes -------------------------------------------------------------------------------------


def _node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in as_dict(object_meta(node).get("labels")).items():
        if key.startswith(_NODE_ROLE_PREFIX) and key[len(_NODE_ROLE_PREFIX) :]:
            roles.add(key[len(_NODE_ROLE_PREFIX) :])
        elif key == _NODE_ROLE_LABEL and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, kind: str) -> str:
    for address in as_list(get(node, "status", "addresses")):
        if get(address, "type") == kind:
            return str(get(address, "address", default=""))
    return "<none>"


def _node_row(node: Obj, now: datetime) -> list[Any]:
    states: list[str] = []
    for condition in as_list(get(node, "status", "conditions")):
        if get(condition, "type") == "Ready":
            states = ["Ready" if get(condition, "status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if get(node, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    info = get(node, "status", "nodeInfo", default={})
    return [
        name_of(node),
        ",".join(states),
        _node_roles(node),
        age(node, now),
        str(get(info, "kubeletVersion", default="")),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        get(info, "osImage") or "<unknown>",
        get(info, "kernelVersion") or "<unknown>",
        get(info, "containerRuntimeVersion") or "<unknown>",
    ]


def node_printer() -> TablePrinter:
    addresses = field_doc("V1NodeStatus", "addresses")
    return TablePrinter(
        (
            name_column(),
            Column("Status", "string", "The status of the node"),
            Column("Roles", "string", "The roles of the node"),
            age_column(),
            Column("Version", "string", field_doc("V1NodeSystemInfo", "kubeletVersion")),
            Column("Internal-IP", "string", addresses, priority=1),
            Column("External-IP", "string", addresses, priority=1),
            Column("OS-Image", "string", field_doc("V1NodeSystemInfo", "osImage"), priority=1),
            Column("Kernel-Version", "string", field_doc("V1NodeSystemInfo", "kernelVersion"), priority=1),
            Column(
                "Container-Runtime",
                "string",
                field_doc("V1NodeSystemInfo", "containerRuntimeVersion"),
                priority=1,
            ),
        ),
        _node_row,
    )


# --- namespaces, configmaps, secrets, serviceaccounts, limitranges ------------------------------


def namespace_printer() -> TablePrinter:
    return TablePrinter(
        (name_column(), Column("Status", "string", "The status of the namespace"), age_column()),
        lambda ns, now: [name_of(ns), str(get(ns, "status", "phase", default="")), age(ns, now)],
    )


def configmap_printer() -> TablePrinter:
    return TablePrinter(
        (name_column(), Column("Data", "string", field_doc("V1ConfigMap", "data")), age_column()),
        lambda cm, now: [
            name_of(cm),
            len(as_dict(cm.get("data"))) + len(as_dict(cm.get("binaryData"))),
            age(cm, now),
        ],
    )


def secret_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Type", "string", field_doc("V1Secret", "type")),
            Column("Data", "string", field_doc("V1Secret", "data")),
            age_column(),
        ),
        lambda s, now: [name_of(s), str(s.get("type") or ""), len(as_dict(s.get("data"))), age(s, now)],
    )


def serviceaccount_printer() -> TablePrinter:
    return TablePrinter(
        (name_column(), Column("Secrets", "string", field_doc("V1ServiceAccount", "secrets")), age_column()),
        lambda sa, now: [name_of(sa), len(as_list(sa.get("secrets"))), age(sa, now)],
    )


def limitrange_printer() -> TablePrinter:
    return TablePrinter(
        (name_column(), created_at_column()),
        lambda lr, now: [name_of(lr), rfc3339(object_meta(lr).get("creationTimestamp"))],
    )


# --- services and endpoints --------------------------------------------------------------------


def _service_external_ip(svc: Obj) -> str:
    spec = get(svc, "spec", default={})
    external = [str(ip) for ip in as_list(get(spec, "externalIPs"))]
    kind = get(spec, "type") or "ClusterIP"
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        lb = load_balancer_ingress(get(svc, "status", default={}))
        if external:
            return ",".join([*(lb.split(",") if lb else []), *external])
        return lb or "<pending>"
    if kind == "ExternalName":
        return str(get(spec, "externalName", default=""))
    return "<unknown>"


def service_ports(ports: Any) -> str:
    """``makePortString``: ``80/TCP`` or ``80:30080/TCP`` when a node port is allocated."""
    pieces: list[str] = []
    for port in as_list(ports):
        protocol = get(port, "protocol") or "TCP"
        node_port = get(port, "nodePort")
        if isinstance(node_port, int) and node_port > 0:
            pieces.append(f"{get(port, 'port')}:{node_port}/{protocol}")
        else:
            pieces.append(f"{get(port, 'port')}/{protocol}")
    return ",".join(pieces)


def _service_row(svc: Obj, now: datetime) -> list[Any]:
    spec = get(svc, "spec", default={})
    cluster_ips = as_list(get(spec, "clusterIPs"))
    cluster_ip = str(cluster_ips[0]) if cluster_ips else str(get(spec, "clusterIP") or "<none>")
    return [
        name_of(svc),
        str(get(spec, "type") or "ClusterIP"),
        cluster_ip,
        _service_external_ip(svc),
        service_ports(get(spec, "ports")) or "<none>",
        age(svc, now),
        format_labels(get(spec, "selector")),
    ]


def service_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Type", "string", field_doc("V1ServiceSpec", "type")),
            Column("Cluster-IP", "string", field_doc("V1ServiceSpec", "clusterIP")),
            Column("External-IP", "string", field_doc("V1ServiceSpec", "externalIPs")),
            Column("Port(s)", "string", field_doc("V1ServiceSpec", "ports")),
            age_column(),
            Column("Selector", "string", field_doc("V1ServiceSpec", "selector"), priority=1),
        ),
        _service_row,
    )


def format_endpoints(endpoints: Obj) -> str:
    """``formatEndpoints``: up to three ``ip:port`` entries, then `` + N more...``."""
    subsets = as_list(endpoints.get("subsets"))
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    more = False
    for subset in subsets:
        addresses = [str(get(a, "ip", default="")) for a in as_list(get(subset, "addresses"))]
        ports = as_list(get(subset, "ports"))
        if not ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == 3:
                    more = True
                    break
                shown.append(ip)
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == 3:
                    more = True
                    break
                host = f"[{ip}]" if ":" in ip else ip
                shown.append(f"{host}:{get(port, 'port')}")
    text = ",".join(shown)
    if more:
        return f"{text} + {count - 3} more..."
    return text or "<none>"


def endpoints_printer() -> TablePrinter:
    return TablePrinter(
        (name_column(), Column("Endpoints", "string", field_doc("V1Endpoints", "subsets")), age_column()),
        lambda ep, now: [name_of(ep), format_endpoints(ep), age(ep, now)],
    )


# --- events ------------------------------------------------------------------------------------


def _event_row(event: Obj, now: datetime) -> list[Any]:
    # events.k8s.io/v1 names the same data differently; read both spellings.
    involved = as_dict(event.get("involvedObject") or event.get("regarding"))
    source = as_dict(event.get("source") or event.get("deprecatedSource"))
    first_ts = event.get("firstTimestamp") or event.get("deprecatedFirstTimestamp")
    last_ts = event.get("lastTimestamp") or event.get("deprecatedLastTimestamp")
    first = since(first_ts, now) if first_ts else since(event.get("eventTime"), now)
    last = since(last_ts, now) if last_ts else first
    count = event.get("count") or event.get("deprecatedCount") or 0
    series = event.get("series")
    if isinstance(series, dict):
        last = since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif not count:
        count = 1
    kind = str(involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    component = source.get("component") or event.get("reportingController") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    source_cell = f"{component}, {instance}" if instance else str(component)
    message = str(event.get("message") or event.get("note") or "").strip()
    return [
        last,
        str(event.get("type") or ""),
        str(event.get("reason") or ""),
        target,
        str(involved.get("fieldPath") or ""),
        source_cell,
        message,
        first,
        int(count),
        name_of(event),
    ]


def event_printer() -> TablePrinter:
    return TablePrinter(
        (
            Column("Last Seen", "string", field_doc("CoreV1Event", "lastTimestamp")),
            Column("Type", "string", field_doc("CoreV1Event", "type")),
            Column("Reason", "string", field_doc("CoreV1Event", "reason")),
            Column("Object", "string", field_doc("CoreV1Event", "involvedObject")),
            Column("Subobject", "string", field_doc("V1ObjectReference", "fieldPath"), priority=1),
            Column("Source", "string", field_doc("CoreV1Event", "source"), priority=1),
            Column("Message", "string", field_doc("CoreV1Event", "message")),
            Column("First Seen", "string", field_doc("CoreV1Event", "firstTimestamp"), priority=1),
            Column("Count", "string", field_doc("CoreV1Event", "count"), priority=1),
            Column("Name", "string", field_doc("V1ObjectMeta", "name"), format="name", priority=1),
        ),
        _event_row,
    )


# --- storage -----------------------------------------------------------------------------------


def _storage_class_of(obj: Obj) -> str:
    beta = as_dict(object_meta(obj).get("annotations")).get("volume.beta.kubernetes.io/storage-class")
    return str(beta if beta is not None else get(obj, "spec", "storageClassName", default=""))


def _pv_row(pv: Obj, now: datetime) -> list[Any]:
    spec = get(pv, "spec", default={})
    claim = get(spec, "claimRef")
    claim_cell = f"{get(claim, 'namespace', default='')}/{get(claim, 'name', default='')}" if claim else ""
    phase = (
        "Terminating"
        if object_meta(pv).get("deletionTimestamp")
        else str(get(pv, "status", "phase", default=""))
    )
    return [
        name_of(pv),
        quantity(get(spec, "capacity", "storage")),
        access_modes(get(spec, "accessModes")),
        str(get(spec, "persistentVolumeReclaimPolicy", default="")),
        phase,
        claim_cell,
        _storage_class_of(pv),
        get(spec, "volumeAttributesClassName") or "<unset>",
        str(get(pv, "status", "reason", default="")),
        age(pv, now),
        get(spec, "volumeMode") or "<unset>",
    ]


def pv_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Capacity", "string", field_doc("V1PersistentVolumeSpec", "capacity")),
            Column("Access Modes", "string", field_doc("V1PersistentVolumeSpec", "accessModes")),
            Column(
                "Reclaim Policy",
                "string",
                field_doc("V1PersistentVolumeSpec", "persistentVolumeReclaimPolicy"),
            ),
            Column("Status", "string", field_doc("V1PersistentVolumeStatus", "phase")),
            Column("Claim", "string", field_doc("V1PersistentVolumeSpec", "claimRef")),
            Column("StorageClass", "string", "StorageClass of the pv"),
            Column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
            Column("Reason", "string", field_doc("V1PersistentVolumeStatus", "reason")),
            age_column(),
            Column("VolumeMode", "string", field_doc("V1PersistentVolumeSpec", "volumeMode"), priority=1),
        ),
        _pv_row,
    )


def _pvc_row(pvc: Obj, now: datetime) -> list[Any]:
    spec = get(pvc, "spec", default={})
    phase = (
        "Terminating"
        if object_meta(pvc).get("deletionTimestamp")
        else str(get(pvc, "status", "phase", default=""))
    )
    capacity = ""
    modes = ""
    if get(spec, "volumeName"):
        modes = access_modes(get(pvc, "status", "accessModes"))
        capacity = quantity(get(pvc, "status", "capacity", "storage"))
    return [
        name_of(pvc),
        phase,
        str(get(spec, "volumeName", default="")),
        capacity,
        modes,
        _storage_class_of(pvc),
        get(spec, "volumeAttributesClassName") or "<unset>",
        age(pvc, now),
        get(spec, "volumeMode") or "<unset>",
    ]


def pvc_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Status", "string", field_doc("V1PersistentVolumeClaimStatus", "phase")),
            Column("Volume", "string", field_doc("V1PersistentVolumeClaimSpec", "volumeName")),
            Column("Capacity", "string", field_doc("V1PersistentVolumeClaimStatus", "capacity")),
            Column("Access Modes", "string", field_doc("V1PersistentVolumeClaimStatus", "accessModes")),
            Column("StorageClass", "string", "StorageClass of the pvc"),
            Column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
            age_column(),
            Column(
                "VolumeMode", "string", field_doc("V1PersistentVolumeClaimSpec", "volumeMode"), priority=1
            ),
        ),
        _pvc_row,
    )


def _quota_row(quota: Obj, now: datetime) -> list[Any]:
    hard = as_dict(get(quota, "status", "hard"))
    used = as_dict(get(quota, "status", "used"))
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        target = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        target.append(f"{resource}: {quantity(used.get(resource))}/{quantity(hard[resource])}")
    return [name_of(quota), age(quota, now), ", ".join(requests), ", ".join(limits)]


def resourcequota_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            age_column(),
            Column(
                "Request",
                "string",
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            Column(
                "Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use."
            ),
        ),
        _quota_row,
    )
