"""OpenAPI v3 component schemas built from the kubernetes client's pydantic models.

Role: name every model class the Kubernetes way (``io.k8s.api.core.v1.Pod``), convert its
``openapi_types`` / ``attribute_map`` / field descriptions into an OpenAPI schema with the
strategic-merge markers kubectl reads, tag top-level kinds with ``x-kubernetes-group-version-kind``,
and compute the reference closure a document must carry. See the package docstring for limits.

Invariants: generated once per process (``functools.cache``) and deterministic; every name in a
schema's dependency set is itself a key of ``all_schemas()``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from cluster.apiserver.resources import RESOURCES, ResourceInfo

REF_PREFIX = "#/components/schemas/"
META_PACKAGE = "io.k8s.apimachinery.pkg.apis.meta.v1"
_META_TYPES = frozenset(
    {
        "ObjectMeta",
        "ListMeta",
        "LabelSelector",
        "LabelSelectorRequirement",
        "OwnerReference",
        "ManagedFieldsEntry",
        "Status",
        "StatusDetails",
        "StatusCause",
        "DeleteOptions",
        "Preconditions",
        "Condition",
        "WatchEvent",
        "APIResource",
        "APIResourceList",
    }
)
_PACKAGES = {
    "": "core",
    "networking.k8s.io": "networking",
    "rbac.authorization.k8s.io": "rbac",
    "coordination.k8s.io": "coordination",
    "discovery.k8s.io": "discovery",
    "storage.k8s.io": "storage",
    "scheduling.k8s.io": "scheduling",
    "events.k8s.io": "events",
    "authorization.k8s.io": "authorization",
    "authentication.k8s.io": "authentication",
}
# Types no served core kind reaches but that must be named first: core's PodTemplateSpec (else it
# would be named after apps), and meta's Status (every deletecollection response).
_EXTRA_CORE_ROOTS = ("V1PodTemplate", "V1ReplicationController", "V1Status")
_CLASS_OVERRIDES = {
    ("", "v1", "Event"): "CoreV1Event",
    ("events.k8s.io", "v1", "Event"): "EventsV1Event",
    ("authentication.k8s.io", "v1", "TokenRequest"): "AuthenticationV1TokenRequest",
}
_CLASS_PREFIX = re.compile(r"^(?:[A-Z][a-z]+)?V\d+(?:(?:alpha|beta)\d+)?(?=[A-Z])")
_MICRO_TIME_FIELDS = frozenset({"eventTime", "renewTime", "acquireTime", "lastObservedTime"})
_INT_OR_STRING_FIELDS = frozenset({"targetPort", "port", "maxSurge", "maxUnavailable", "minAvailable"})
_QUANTITY_MAP_FIELDS = frozenset({"limits", "requests", "capacity", "allocatable", "hard", "used"})
_INT64_NAME = re.compile(r"(Seconds|[gG]eneration|^runAs(User|Group)$|^fsGroup$|^value$|^revision$|^count$)")

# Strategic-merge metadata of the Kubernetes Go types: (type, field) -> extensions.
_MERGE_BY_NAME = {
    "x-kubernetes-list-map-keys": ["name"],
    "x-kubernetes-list-type": "map",
    "x-kubernetes-patch-merge-key": "name",
    "x-kubernetes-patch-strategy": "merge",
}


def _merge(keys: list[str], strategy: str = "merge") -> dict[str, Any]:
    return {
        "x-kubernetes-list-map-keys": keys,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-patch-merge-key": keys[0],
        "x-kubernetes-patch-strategy": strategy,
    }


_PATCH_META: dict[tuple[str, str], dict[str, Any]] = {
    ("PodSpec", "containers"): _MERGE_BY_NAME,
    ("PodSpec", "initContainers"): _MERGE_BY_NAME,
    ("PodSpec", "ephemeralContainers"): _MERGE_BY_NAME,
    ("PodSpec", "imagePullSecrets"): _MERGE_BY_NAME,
    ("PodSpec", "schedulingGates"): _MERGE_BY_NAME,
    ("PodSpec", "volumes"): _merge(["name"], "merge,retainKeys"),
    ("PodSpec", "resourceClaims"): _merge(["name"], "merge,retainKeys"),
    ("PodSpec", "hostAliases"): _merge(["ip"]),
    ("PodSpec", "topologySpreadConstraints"): _merge(["topologyKey", "whenUnsatisfiable"]),
    ("Container", "env"): _MERGE_BY_NAME,
    ("Container", "ports"): _merge(["containerPort", "protocol"]),
    ("Container", "volumeMounts"): _merge(["mountPath"]),
    ("Container", "volumeDevices"): _merge(["devicePath"]),
    ("EphemeralContainer", "env"): _MERGE_BY_NAME,
    ("EphemeralContainer", "ports"): _merge(["containerPort", "protocol"]),
    ("EphemeralContainer", "volumeMounts"): _merge(["mountPath"]),
    ("EphemeralContainer", "volumeDevices"): _merge(["devicePath"]),
    ("ServiceSpec", "ports"): _merge(["port", "protocol"]),
    ("ObjectMeta", "ownerReferences"): _merge(["uid"]),
    ("ObjectMeta", "finalizers"): {"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
    ("NodeSpec", "podCIDRs"): {"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
    ("NodeStatus", "addresses"): _merge(["type"]),
    ("PodStatus", "podIPs"): _merge(["ip"]),
    ("ServiceAccount", "secrets"): _MERGE_BY_NAME,
    ("DeploymentSpec", "strategy"): {"x-kubernetes-patch-strategy": "retainKeys"},
}


# ---------------------------------------------------------------------------------------------
# Schemas from the client's models
# ---------------------------------------------------------------------------------------------


def _models() -> Any:
    from kubernetes.client import models

    return models


def kind_of_class(class_name: str) -> str:
    """``V1Pod`` -> ``Pod``, ``CoreV1Event`` -> ``Event``."""
    return _CLASS_PREFIX.sub("", class_name)


def model_class_name(group: str, version: str, kind: str) -> str:
    """The kubernetes client class for a kind (``V1Pod``, ``CoreV1Event``)."""
    return _CLASS_OVERRIDES.get((group, version, kind), f"{version.capitalize()}{kind}")


def _referenced_classes(type_name: str) -> list[str]:
    return [t for t in re.findall(r"[A-Za-z0-9]+", type_name) if t[0].isupper() and t not in ("List", "Dict")]


def _roots() -> list[tuple[str, str, str]]:
    """(group, version, class) of every kind we publish, subresource kinds included, in discovery order."""
    roots: list[tuple[str, str, str]] = []
    for info in RESOURCES:
        roots.append((info.group, info.version, model_class_name(info.group, info.version, info.kind)))
        roots.append((info.group, info.version, model_class_name(info.group, info.version, info.list_kind)))
        for sub in info.subresources:
            roots.append((sub.group, sub.version, model_class_name(sub.group, sub.version, sub.kind)))
    return roots


@cache
def _schema_names() -> dict[str, str]:
    """Client class name -> Kubernetes definition name, owning package decided by first reach."""
    models = _models()
    names: dict[str, str] = {}
    roots = [("", "v1", c) for c in _EXTRA_CORE_ROOTS]
    roots[0:0] = [r for r in _roots() if r[0] == ""]
    roots += [r for r in _roots() if r[0] != ""]
    for group, version, root in roots:
        stack = [root]
        while stack:
            cls_name = stack.pop()
            cls = getattr(models, cls_name, None)
            if cls_name in names or cls is None:
                continue
            kind = kind_of_class(cls_name)
            if kind in _META_TYPES:
                names[cls_name] = f"{META_PACKAGE}.{kind}"
            else:
                package = _PACKAGES.get(group, group.split(".")[0])
                names[cls_name] = f"io.k8s.api.{package}.{version}.{kind}"
            for type_name in cls.openapi_types.values():
                stack.extend(_referenced_classes(type_name))
    return names


def _description(cls: Any) -> str:
    doc = (cls.__doc__ or "").split("Attributes:")[0]
    return " ".join(line.strip() for line in doc.strip().splitlines()).strip()


def _int_schema(field: str) -> dict[str, Any]:
    return {"type": "integer", "format": "int64" if _INT64_NAME.search(field) else "int32"}


def _type_schema(type_name: str, field: str, refs: set[str]) -> dict[str, Any]:
    if type_name.startswith("List["):
        return {"type": "array", "items": _item_schema(type_name[5:-1], field, refs)}
    if type_name.startswith("Dict[str, "):
        inner = type_name[len("Dict[str, ") : -1]
        if field in _QUANTITY_MAP_FIELDS and inner == "str":
            refs.add("Quantity")
            return {"type": "object", "additionalProperties": {"$ref": REF_PREFIX + _QUANTITY}}
        return {"type": "object", "additionalProperties": _item_schema(inner, field, refs)}
    if type_name == "str":
        return {"type": "string"}
    if type_name == "int":
        return _int_schema(field)
    if type_name == "bool":
        return {"type": "boolean"}
    if type_name == "float":
        return {"type": "number", "format": "double"}
    if type_name == "bytes":
        return {"type": "string", "format": "byte"}
    if type_name == "datetime":
        special = "MicroTime" if field in _MICRO_TIME_FIELDS else "Time"
        refs.add(special)
        return {"$ref": REF_PREFIX + f"{META_PACKAGE}.{special}"}
    if type_name == "object":
        if field in _INT_OR_STRING_FIELDS:
            refs.add("IntOrString")
            return {"$ref": REF_PREFIX + _INT_OR_STRING}
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    refs.add(type_name)
    return {"$ref": REF_PREFIX + _schema_names().get(type_name, type_name)}


def _item_schema(type_name: str, field: str, refs: set[str]) -> dict[str, Any]:
    schema = _type_schema(type_name, field, refs)
    if "$ref" in schema:
        return {"allOf": [schema], "default": {}}
    return schema


_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_SPECIAL_SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "Time": (
        f"{META_PACKAGE}.Time",
        {
            "type": "string",
            "format": "date-time",
            "description": "Time is a wrapper around time.Time (RFC 3339).",
        },
    ),
    "MicroTime": (
        f"{META_PACKAGE}.MicroTime",
        {
            "type": "string",
            "format": "date-time",
            "description": "MicroTime is version of Time with microsecond level precision.",
        },
    ),
    "Quantity": (
        _QUANTITY,
        {
            "oneOf": [{"type": "string"}, {"type": "number"}],
            "description": "Quantity is a fixed-point representation of a number (e.g. 100m, 1Gi).",
        },
    ),
    "IntOrString": (
        _INT_OR_STRING,
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "description": "IntOrString is a type that can hold an int32 or a string.",
        },
    ),
}


def _class_schema(cls_name: str, refs: set[str]) -> dict[str, Any]:
    cls = getattr(_models(), cls_name)
    kind = kind_of_class(cls_name)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for attr, type_name in cls.openapi_types.items():
        wire = cls.attribute_map[attr]
        info = cls.model_fields.get(attr)
        schema = _type_schema(type_name, wire, refs)
        if "$ref" in schema:
            schema = {"allOf": [schema]}
        description = info.description if info is not None else None
        if description:
            schema["description"] = description
        extensions = _PATCH_META.get((kind, wire))
        if (
            extensions is None
            and wire == "conditions"
            and kind.endswith("Status")
            and type_name.startswith("List[")
        ):
            extensions = _merge(["type"])
        if extensions:
            schema.update(extensions)
        properties[wire] = schema
        if info is not None and info.is_required():
            required.append(wire)
    out: dict[str, Any] = {"description": _description(cls), "type": "object", "properties": properties}
    if required:
        out["required"] = sorted(required)
    return out


@cache
def all_schemas() -> dict[str, tuple[dict[str, Any], frozenset[str]]]:
    """Definition name -> (schema, names of the definitions it references directly)."""
    out: dict[str, tuple[dict[str, Any], frozenset[str]]] = {}
    for special_name, special_schema in _SPECIAL_SCHEMAS.values():
        out[special_name] = (special_schema, frozenset())
    for cls_name, name in _schema_names().items():
        refs: set[str] = set()
        schema = _class_schema(cls_name, refs)
        targets = {(_SPECIAL_SCHEMAS[r][0] if r in _SPECIAL_SCHEMAS else _schema_names()[r]) for r in refs}
        out[name] = (schema, frozenset(targets))
    for info in RESOURCES:
        for api_kind, gvk_group, gvk_version in _gvks_of(info):
            kind_name = _schema_names().get(model_class_name(gvk_group, gvk_version, api_kind))
            if kind_name is None:
                continue
            schema, deps = out[kind_name]
            tag = {"group": gvk_group, "kind": api_kind, "version": gvk_version}
            existing = schema.setdefault("x-kubernetes-group-version-kind", [])
            if tag not in existing:
                existing.append(tag)
            out[kind_name] = (schema, deps)
    return out


def _gvks_of(info: ResourceInfo) -> list[tuple[str, str, str]]:
    kinds = [(info.kind, info.group, info.version), (info.list_kind, info.group, info.version)]
    kinds += [(sub.kind, sub.group, sub.version) for sub in info.subresources]
    return kinds


def schema_name(group: str, version: str, kind: str) -> str | None:
    """The ``components.schemas`` key of a kind (``io.k8s.api.apps.v1.Deployment``), if modelled."""
    return _schema_names().get(model_class_name(group, version, kind))


def closure(names: list[str]) -> dict[str, Any]:
    schemas = all_schemas()
    seen: dict[str, Any] = {}
    stack = [n for n in names if n in schemas]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        schema, deps = schemas[name]
        seen[name] = schema
        stack.extend(d for d in deps if d not in seen)
    return dict(sorted(seen.items()))


# ---------------------------------------------------------------------------------------------
# Paths
