"""What the Ingress controller serves, computed from API objects: a pure function, no I/O.

``build_model(ingresses, classes, services, slices, secrets)`` picks the Ingresses of our
IngressClasses (``spec.ingressClassName`` naming an IngressClass whose ``spec.controller`` is
``CONTROLLER``; no class at all while one of ours is annotated default) and turns them into an
``IngressModel``: virtual servers per host, each with its path rules, its TLS certificate and its
fallback backend, plus the upstreams (a Service port's ready endpoints).

Invariants:
- Deterministic: Ingresses are taken oldest first (creationTimestamp, then namespace/name), so when
  two claim the same host+path+type, or both give a host a default backend, the oldest wins (as
  ingress-nginx does); output orders are sorted.
- A backend resolves Service port by number or by name, then the EndpointSlices of that Service
  (label ``kubernetes.io/service-name``) by the port's name; only ready endpoints (``ready`` unset
  counts as ready, as in EndpointSlice's API) carry traffic. No ready endpoint: the backend is
  ``None`` and the rendered location answers 503.
- Rules without a host and ``spec.defaultBackend`` go to the catch-all server (host ``""``).
- A TLS host gets its certificate only from a Secret of type ``kubernetes.io/tls`` in the Ingress'
  namespace with non-empty ``tls.crt``/``tls.key``; otherwise the problem is reported in
  ``warnings`` and the host is served over plain HTTP only.
- Paths and hosts nginx could misread are skipped with a warning (never rendered).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CONTROLLER = "raykube.io/ingress-nginx"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
# ingress-nginx's strict path check: nothing nginx would read as syntax or a regex.
_PATH_RE = re.compile(r"^/[A-Za-z0-9\-._~/]*$")
_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Upstream:
    """A Service port's ready endpoints, named for nginx: ``<namespace>-<service>-<port>``."""

    name: str
    addresses: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class PathRule:
    """``path`` under ``path_type`` goes to ``upstream`` (``None``: no ready endpoint, 503)."""

    path: str
    path_type: str
    upstream: str | None
    source: str  # namespace/name of the Ingress


@dataclass(frozen=True, slots=True)
class TlsCert:
    """A certificate and key (PEM) from a Secret; ``key`` names it stably (namespace/secret)."""

    key: str
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True)
class Server:
    """One virtual host: ``host`` exact, ``*.suffix`` (one label) or ``""`` (catch-all).
    ``fallback``: where requests that match no path go (``None``: 404); ``fallback_set`` tells
    a default backend without ready endpoints (503) from none at all (404)."""

    host: str
    paths: tuple[PathRule, ...]
    tls: TlsCert | None = None
    fallback: str | None = None
    fallback_set: bool = False


@dataclass(frozen=True, slots=True)
class IngressModel:
    servers: tuple[Server, ...]
    upstreams: tuple[Upstream, ...]
    served: tuple[str, ...]  # namespace/name of every Ingress taken
    warnings: tuple[tuple[str, str], ...] = field(default=())  # (namespace/name, message)


def our_classes(classes: Iterable[Obj]) -> tuple[set[str], bool]:
    """Names of the IngressClasses with our controller, and whether one of them is the default."""
    names, default = set(), False
    for c in classes:
        if (c.get("spec") or {}).get("controller") != CONTROLLER:
            continue
        meta = c.get("metadata") or {}
        names.add(str(meta.get("name")))
        default = default or (meta.get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
    return names, default


def is_ours(ingress: Obj, names: set[str], default: bool) -> bool:
    cls = (ingress.get("spec") or {}).get("ingressClassName")
    if cls is None:
        cls = ((ingress.get("metadata") or {}).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)
    return cls in names if cls is not None else default


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


def _age_order(obj: Obj) -> tuple[str, str]:
    return (str((obj.get("metadata") or {}).get("creationTimestamp") or ""), _key(obj))


class _Resolver:
    """Service backends to upstreams, memoized per (namespace, service, port)."""

    def __init__(self, services: Iterable[Obj], slices: Iterable[Obj]) -> None:
        self.services = {_key(s): s for s in services}
        self.slices: dict[str, list[Obj]] = {}
        for s in slices:
            meta = s.get("metadata") or {}
            svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if svc:
                self.slices.setdefault(f"{meta.get('namespace') or ''}/{svc}", []).append(s)
        self.upstreams: dict[str, Upstream] = {}

    def resolve(self, namespace: str, backend: Obj) -> tuple[str | None, str | None]:
        """(upstream name or None, a warning or None) for an IngressBackend."""
        svc_ref = backend.get("service")
        if not svc_ref:
            return None, "only Service backends are supported (resource backends are not)"
        name, port_ref = str(svc_ref.get("name")), svc_ref.get("port") or {}
        svc = self.services.get(f"{namespace}/{name}")
        if svc is None:
            return None, f"Service {namespace}/{name} not found"
        port = _service_port(svc, port_ref)
        if port is None:
            return (
                None,
                f"Service {namespace}/{name} has no port {port_ref.get('number') or port_ref.get('name')}",
            )
        upstream = f"{namespace}-{name}-{port.get('port')}"
        if upstream not in self.upstreams:
            addrs = _ready_addresses(self.slices.get(f"{namespace}/{name}", []), str(port.get("name") or ""))
            self.upstreams[upstream] = Upstream(upstream, addrs)
        return (upstream if self.upstreams[upstream].addresses else None), None


def _service_port(svc: Obj, ref: Obj) -> Obj | None:
    for p in (svc.get("spec") or {}).get("ports") or []:
        if ("number" in ref and p.get("port") == ref["number"]) or (
            ref.get("name") and p.get("name") == ref["name"]
        ):
            return dict(p)
    return None


def _ready_addresses(slices: list[Obj], port_name: str) -> tuple[tuple[str, int], ...]:
    out: set[tuple[str, int]] = set()
    for s in slices:
        ports = [p for p in s.get("ports") or [] if str(p.get("name") or "") == port_name and p.get("port")]
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for addr in ep.get("addresses") or []:
                out.update((str(addr), int(p["port"])) for p in ports)
    return tuple(sorted(out))


def _tls_cert(
    namespace: str, secret_name: str, secrets: Mapping[str, Obj]
) -> tuple[TlsCert | None, str | None]:
    secret = secrets.get(f"{namespace}/{secret_name}")
    if secret is None:
        return None, f"TLS Secret {namespace}/{secret_name} not found"
    if secret.get("type") != "kubernetes.io/tls":
        return None, f"Secret {namespace}/{secret_name} is not of type kubernetes.io/tls"
    data = secret.get("data") or {}
    try:
        crt, key = base64.b64decode(data.get("tls.crt") or ""), base64.b64decode(data.get("tls.key") or "")
    except ValueError:
        return None, f"Secret {namespace}/{secret_name}: tls.crt/tls.key are not base64"
    if not crt or not key:
        return None, f"Secret {namespace}/{secret_name} has no tls.crt/tls.key"
    return TlsCert(f"{namespace}/{secret_name}", crt, key), None


@dataclass(slots=True)
class _ServerDraft:
    paths: dict[tuple[str, str], PathRule] = field(default_factory=dict)
    tls: TlsCert | None = None
    fallback: str | None = None
    fallback_set: bool = False


def build_model(
    ingresses: Iterable[Obj],
    classes: Iterable[Obj],
    services: Iterable[Obj],
    slices: Iterable[Obj],
    secrets: Iterable[Obj],
) -> IngressModel:
    """The servers and upstreams for the Ingresses of our classes; see the module docstring."""
    names, default = our_classes(classes)
    mine = sorted((i for i in ingresses if is_ours(i, names, default)), key=_age_order)
    resolver = _Resolver(services, slices)
    secret_map = {_key(s): s for s in secrets}
    drafts: dict[str, _ServerDraft] = {"": _ServerDraft()}
    warnings: list[tuple[str, str]] = []
    for ing in mine:
        _add_ingress(ing, drafts, resolver, secret_map, warnings)
    servers = tuple(
        Server(
            host,
            tuple(sorted(d.paths.values(), key=lambda r: (r.path, r.path_type))),
            d.tls,
            d.fallback,
            d.fallback_set,
        )
        for host, d in sorted(drafts.items())
    )
    return IngressModel(
        servers,
        tuple(sorted(resolver.upstreams.values(), key=lambda u: u.name)),
        tuple(_key(i) for i in mine),
        tuple(warnings),
    )


def _add_ingress(
    ing: Obj,
    drafts: dict[str, _ServerDraft],
    resolver: _Resolver,
    secrets: Mapping[str, Obj],
    warnings: list[tuple[str, str]],
) -> None:
    key, namespace = _key(ing), str((ing.get("metadata") or {}).get("namespace") or "")
    spec = ing.get("spec") or {}
    default_up: str | None = None
    has_default = "defaultBackend" in spec
    if has_default:
        default_up, why = resolver.resolve(namespace, spec["defaultBackend"])
        if why:
            warnings.append((key, f"defaultBackend: {why}"))
    hosts: list[str] = []
    for rule in spec.get("rules") or []:
        host = str(rule.get("host") or "")
        if host and not _HOST_RE.match(host):
            warnings.append((key, f"host {host!r} skipped: not a DNS name"))
            continue
        draft = drafts.setdefault(host, _ServerDraft())
        hosts.append(host)
        for p in (rule.get("http") or {}).get("paths") or []:
            _add_path(key, namespace, p, draft, resolver, warnings)
    # A host's unmatched paths (and the catch-all server) fall back to the oldest default backend.
    for host in [*hosts, ""] if has_default else []:
        draft = drafts[host]
        if not draft.fallback_set:
            draft.fallback, draft.fallback_set = default_up, True
    for tls in spec.get("tls") or []:
        secret = tls.get("secretName")
        for host in tls.get("hosts") or []:
            if host not in drafts or drafts[host].tls is not None:
                continue  # TLS for a host with no rule here, or another Ingress' certificate first
            if not secret:
                warnings.append((key, f"tls host {host}: no secretName"))
                continue
            cert, why = _tls_cert(namespace, str(secret), secrets)
            if why:
                warnings.append((key, why))
            drafts[host].tls = cert


def _add_path(
    key: str,
    namespace: str,
    p: Obj,
    draft: _ServerDraft,
    resolver: _Resolver,
    warnings: list[tuple[str, str]],
) -> None:
    path, path_type = str(p.get("path") or "/"), str(p.get("pathType") or "ImplementationSpecific")
    if path_type not in PATH_TYPES or not _PATH_RE.match(path):
        warnings.append((key, f"path {path!r} ({path_type}) skipped: nginx would not read it literally"))
        return
    if path_type == "ImplementationSpecific":
        path_type = "Prefix"  # ours is Prefix (documented in docs/ingress.md)
    if path_type == "Prefix" and path != "/":
        path = path.rstrip("/") or "/"  # Kubernetes: a trailing slash does not change a Prefix
    upstream, why = resolver.resolve(namespace, p.get("backend") or {})
    if why:
        warnings.append((key, f"path {path}: {why}"))
    draft.paths.setdefault((path, path_type), PathRule(path, path_type, upstream, key))
