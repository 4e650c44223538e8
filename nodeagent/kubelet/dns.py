"""A pod's DNS settings (its resolv.conf) from its ``dnsPolicy`` and ``dnsConfig``, as the kubelet.

- ``ClusterFirst`` (the default): the cluster DNS servers, search ``<ns>.svc.<domain> svc.<domain>
  <domain>`` followed by the node's search domains, ``options ndots:5``. A ``hostNetwork`` pod with
  ``ClusterFirst`` gets ``Default`` instead (it shares the node's resolver);
- ``ClusterFirstWithHostNet``: ``ClusterFirst`` even for a ``hostNetwork`` pod;
- ``Default``: the node's resolv.conf (servers, search, options);
- ``None``: nothing but the pod's ``dnsConfig``.

With no cluster DNS configured the cluster policies fall back to ``Default`` (as the kubelet does).
``dnsConfig`` is then merged in: nameservers and searches appended without duplicates, options by
name (the pod's value wins). Finally the kubelet's limits: at most 3 nameservers, 32 search domains
and 2048 characters of search line (the excess dropped from the end). Pure: the node's resolv.conf
comes in as text (:func:`parse_resolv_conf`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
DEFAULT_NDOTS = "ndots:5"
DEFAULT_CLUSTER_DNS = "10.96.0.10"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True, slots=True)
class ResolvConf:
    """What a resolv.conf says (and what the CRI's ``DNSConfig`` carries)."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        lines = [f"nameserver {s}" for s in self.servers]
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class ClusterDns:
    """The kubelet's ``clusterDNS`` and ``clusterDomain``; empty servers: no cluster DNS."""

    servers: tuple[str, ...] = (DEFAULT_CLUSTER_DNS,)
    domain: str = DEFAULT_CLUSTER_DOMAIN


def parse_resolv_conf(text: str) -> ResolvConf:
    """Servers, search domains (the last ``search``/``domain`` line wins, as in glibc) and options."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            servers.append(values[0])
        elif key in ("search", "domain"):
            searches = [v.rstrip(".") for v in values if v.rstrip(".")]
        elif key == "options":
            options.extend(values)
    return ResolvConf(tuple(servers), tuple(searches), tuple(options))


def dns_policy(pod: Mapping[str, Any]) -> str:
    """The effective policy: ``cluster``, ``host`` or ``none``."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet":
        return "cluster"
    if policy == "ClusterFirst" and not spec.get("hostNetwork"):
        return "cluster"
    return "host"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def _option_name(option: str) -> str:
    return option.split(":", 1)[0]


def merge_options(base: Iterable[str], pod_options: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Options by name, in first-seen order; a pod option replaces the base option of that name."""
    merged = {_option_name(o): o for o in base}
    for option in pod_options:
        name = str(option.get("name") or "")
        if name:
            value = option.get("value")
            merged[name] = f"{name}:{value}" if value not in (None, "") else name
    return tuple(merged.values())


def _fit_limits(conf: ResolvConf) -> ResolvConf:
    searches: list[str] = []
    length = 0
    for search in conf.searches[:MAX_SEARCHES]:
        length += len(search) + (1 if searches else 0)
        if length > MAX_SEARCH_CHARS:
            break
        searches.append(search)
    return ResolvConf(conf.servers[:MAX_NAMESERVERS], tuple(searches), conf.options)


def pod_dns(pod: Mapping[str, Any], node: ResolvConf, cluster: ClusterDns) -> ResolvConf:
    """The pod's resolv.conf (see the module docstring)."""
    policy = dns_policy(pod)
    if policy == "cluster" and not cluster.servers:
        policy = "host"
    if policy == "none":
        conf = ResolvConf()
    elif policy == "host":
        conf = node
    else:
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        domain = cluster.domain.rstrip(".")
        own = (f"{namespace}.svc.{domain}", f"svc.{domain}", domain) if domain else ()
        conf = ResolvConf(cluster.servers, _unique((*own, *node.searches)), (DEFAULT_NDOTS,))
    extra = (pod.get("spec") or {}).get("dnsConfig") or {}
    if extra:
        conf = ResolvConf(
            _unique((*conf.servers, *(str(s) for s in extra.get("nameservers") or ()))),
            _unique((*conf.searches, *(str(s).rstrip(".") for s in extra.get("searches") or ()))),
            merge_options(conf.options, extra.get("options") or ()),
        )
    return _fit_limits(conf)
