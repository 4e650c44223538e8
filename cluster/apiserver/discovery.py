"""Discovery documents: what kubectl and client-go read to learn which resources exist.

Role: pure builders of the JSON bodies served at ``/version``, ``/api``, ``/apis``, ``/api/v1``,
``/apis/<group>/<version>`` (legacy discovery) and of the aggregated ``APIGroupDiscoveryList`` served
at ``/api`` and ``/apis`` when the client asks for it, plus the Accept-header negotiation that picks
between them. Everything is derived from ``resources.RESOURCES``; no I/O, no clock.

Invariants:
- The aggregated document is only ever served with a Content-Type naming a version the client
  offered (kubectl 1.27-1.29 offer only v2beta1 and fail on a v2 reply).
- Legacy ``/api/v1`` stays available regardless: ``kubectl auth can-i`` and ``drain`` read it directly.
- Resources and their subresources are listed sorted by name, as kube-apiserver does; subresource
  entries carry ``group``/``version`` only when they differ from the parent's (``pods/eviction`` is
  policy/v1 Eviction, ``deployments/scale`` is autoscaling/v1 Scale).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal

from cluster.apiserver.resources import ResourceInfo, groups, resources_in

DiscoveryMode = Literal["v2", "v2beta1", "legacy"]

AGGREGATED_GROUP = "apidiscovery.k8s.io"
LEGACY_CONTENT_TYPE = "application/json"
SERVER_MAJOR = "1"
SERVER_MINOR = "33"
GIT_VERSION = "v1.33.0-raykube"


def aggregated_content_type(version: Literal["v2", "v2beta1"]) -> str:
    """The Content-Type announcing an aggregated discovery body of ``version``."""
    return f"application/json;g={AGGREGATED_GROUP};v={version};as=APIGroupDiscoveryList"


def version_info(
    *,
    git_commit: str = "0000000000000000000000000000000000000000",
    build_date: str = "1970-01-01T00:00:00Z",
    platform: str = "linux/amd64",
    go_version: str = "python3.11",
) -> dict[str, Any]:
    """The ``/version`` body (``version.Info``); kubectl warns when minor versions skew by more than one."""
    return {
        "major": SERVER_MAJOR,
        "minor": SERVER_MINOR,
        "emulationMajor": SERVER_MAJOR,
        "emulationMinor": SERVER_MINOR,
        "minCompatibilityMajor": SERVER_MAJOR,
        "minCompatibilityMinor": str(int(SERVER_MINOR) - 1),
        "gitVersion": GIT_VERSION,
        "gitCommit": git_commit,
        "gitTreeState": "clean",
        "buildDate": build_date,
        "goVersion": go_version,
        "compiler": "gc",
        "platform": platform,
    }


# ---------------------------------------------------------------------------------------------
# Legacy discovery
# ---------------------------------------------------------------------------------------------


def api_versions(server_address: str = "") -> dict[str, Any]:
    """``GET /api``: the core group's versions (``APIVersions``)."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list() -> dict[str, Any]:
    """``GET /apis``: every named group with its versions and preferred version (``APIGroupList``)."""
    out: list[dict[str, Any]] = []
    for group, versions in groups():
        if not group:
            continue
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        out.append({"name": group, "versions": entries, "preferredVersion": dict(entries[0])})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}


def storage_version_hash(info: ResourceInfo) -> str:
    """An opaque, stable hash of the storage version, as ``storageVersionHash`` (8 bytes, base64)."""
    digest = hashlib.sha256(f"{info.group}/{info.version}/{info.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _legacy_resource(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    if "list" in info.verbs:
        entry["storageVersionHash"] = storage_version_hash(info)
    return entry


def _legacy_subresource(info: ResourceInfo, sub_index: int) -> dict[str, Any]:
    sub = info.subresources[sub_index]
    entry: dict[str, Any] = {
        "name": f"{info.plural}/{sub.name}",
        "singularName": "",
        "namespaced": info.namespaced,
    }
    if (sub.group, sub.version) != (info.group, info.version):
        entry["group"] = sub.group
        entry["version"] = sub.version
    entry["kind"] = sub.kind
    entry["verbs"] = list(sub.verbs)
    return entry


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` (group "") or ``GET /apis/<group>/<version>``; None when not served."""
    infos = resources_in(group, version)
    if not infos:
        return None
    resources: list[dict[str, Any]] = []
    for info in infos:
        resources.append(_legacy_resource(info))
        resources.extend(_legacy_subresource(info, i) for i in range(len(info.subresources)))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# ---------------------------------------------------------------------------------------------
# Aggregated discovery (apidiscovery.k8s.io v2 / v2beta1)
# ---------------------------------------------------------------------------------------------


def _aggregated_resource(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": info.plural,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    if info.subresources:
        entry["subresources"] = [
            {
                "subresource": sub.name,
                "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                "verbs": list(sub.verbs),
            }
            for sub in info.subresources
        ]
    return entry


def _aggregated_group(group: str, versions: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": group, "creationTimestamp": None},
        "versions": [
            {
                "version": v,
                "resources": [_aggregated_resource(info) for info in resources_in(group, v)],
                "freshness": "Current",
            }
            for v in versions
        ],
    }


def aggregated_discovery(*, core: bool, version: Literal["v2", "v2beta1"] = "v2") -> dict[str, Any]:
    """The ``APIGroupDiscoveryList`` for ``/api`` (``core=True``) or ``/apis`` (``core=False``).

    The first version listed in each group is the preferred one.
    """
    items = [_aggregated_group(g, vs) for g, vs in groups() if (g == "") == core]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"{AGGREGATED_GROUP}/{version}",
        "metadata": {},
        "items": items,
    }


# ---------------------------------------------------------------------------------------------
# Negotiation
# ---------------------------------------------------------------------------------------------


def _parse_accept(accept_header: str) -> list[tuple[str, dict[str, str]]]:
    """Media ranges in the client's order of preference (by ``q``, ties in header order)."""
    ranges: list[tuple[float, int, str, dict[str, str]]] = []
    for index, part in enumerate(accept_header.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            key, sep, value = piece.partition("=")
            if sep:
                params[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append((-q, index, media, params))
    ranges.sort()
    return [(media, params) for _, _, media, params in ranges]


def negotiate_discovery(accept_header: str) -> tuple[DiscoveryMode, str]:
    """Choose the discovery form for ``GET /api`` or ``/apis`` and the Content-Type to reply with.

    Returns ``("v2" | "v2beta1", <aggregated content type>)`` when the client offers that aggregated
    version as JSON, else ``("legacy", "application/json")``. Only JSON is served, so protobuf
    offers are skipped; the client's preference order (q-values, then header order) decides.
    """
    for media, params in _parse_accept(accept_header):
        if media not in ("application/json", "application/*", "*/*"):
            continue
        if params.get("g") != AGGREGATED_GROUP or params.get("as") != "APIGroupDiscoveryList":
            continue
        version = params.get("v")
        if version == "v2":
            return "v2", aggregated_content_type("v2")
        if version == "v2beta1":
            return "v2beta1", aggregated_content_type("v2beta1")
    return "legacy", LEGACY_CONTENT_TYPE


def served_group_versions() -> list[str]:
    """Every served group-version as a URL path below the server root (``api/v1``, ``apis/apps/v1``)."""
    out: list[str] = []
    for group, versions in groups():
        out.extend(f"apis/{group}/{v}" if group else f"api/{v}" for v in versions)
    return out


__all__ = [
    "aggregated_content_type",
    "aggregated_discovery",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "negotiate_discovery",
    "served_group_versions",
    "storage_version_hash",
    "version_info",
]
