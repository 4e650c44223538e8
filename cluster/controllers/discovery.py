"""What the API server serves, read from its discovery documents (client-go's discovery client and
REST mapper, as far as the garbage collector and the namespace controller need them).

``discover(client)`` reads ``/api/v1`` and, for each group of ``/apis``, its preferred version's
resource list; subresources (``pods/status``) are left out. ``RESTMapper`` answers which resource an
``apiVersion``/``kind`` pair (an ownerReference) names: the exact group version first, else the same
kind in the group's served version (an owner written as ``apps/v1beta2`` is the ``apps/v1`` object).

``parse_resource_list`` and ``RESTMapper`` are pure; ``discover`` only fetches. A group whose list
fails is reported in ``Discovery.failed`` (kube's ``ErrGroupDiscoveryFailed``) and the rest is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class APIResource:
    group_version: str  # "v1", "apps/v1"
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def group(self) -> str:
        return self.group_version.rpartition("/")[0]

    def supports(self, *verbs: str) -> bool:
        return all(v in self.verbs for v in verbs)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}"  # kube's GroupResource spelling ("pods.", "replicasets.apps")


@dataclass(frozen=True, slots=True)
class Discovery:
    resources: tuple[APIResource, ...]
    failed: Mapping[str, str] = field(default_factory=dict)  # group version -> error


class PathGetter(Protocol):
    async def get_path(self, path: str) -> dict[str, Any]: ...


def parse_resource_list(doc: Mapping[str, Any]) -> list[APIResource]:
    """The top-level resources of an ``APIResourceList``."""
    group_version = str(doc.get("groupVersion") or "")
    found = []
    for item in doc.get("resources") or []:
        name = str(item.get("name") or "")
        if not name or "/" in name:
            continue
        found.append(
            APIResource(
                group_version,
                name,
                str(item.get("kind") or ""),
                bool(item.get("namespaced")),
                frozenset(item.get("verbs") or ()),
            )
        )
    return found


async def discover(client: PathGetter) -> Discovery:
    """Every top-level resource served (core ``v1`` and each group's preferred version). Raises when
    even the core list cannot be read; failing groups go to ``failed``."""
    resources = parse_resource_list(await client.get_path("/api/v1"))
    failed: dict[str, str] = {}
    groups = await client.get_path("/apis")
    for group in groups.get("groups") or []:
        preferred = (group.get("preferredVersion") or {}).get("groupVersion")
        if not preferred:
            versions = group.get("versions") or []
            preferred = versions[0].get("groupVersion") if versions else None
        if not preferred:
            continue
        try:
            resources.extend(parse_resource_list(await client.get_path(f"/apis/{preferred}")))
        except Exception as err:  # one broken group must not hide the others
            failed[str(preferred)] = f"{type(err).__name__}: {err}"
    return Discovery(tuple(resources), failed)


class RESTMapper:
    """``(apiVersion, kind)`` -> the resource serving it."""

    def __init__(self, resources: Iterable[APIResource]) -> None:
        self._exact: dict[tuple[str, str], APIResource] = {}
        self._by_group: dict[tuple[str, str], APIResource] = {}
        for r in resources:
            self._exact.setdefault((r.group_version, r.kind), r)
            self._by_group.setdefault((r.group, r.kind), r)

    def resource_for(self, api_version: str, kind: str) -> APIResource | None:
        found = self._exact.get((api_version, kind))
        if found is None:
            found = self._by_group.get((api_version.rpartition("/")[0], kind))
        return found
