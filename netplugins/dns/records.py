"""Cluster DNS records: Services, EndpointSlices and Pods in, answers to DNS questions out.

The records are those of the Kubernetes DNS-based service discovery specification (schema 1.1.0)
plus what CoreDNS's kubernetes plugin adds, for the cluster domain ``<zone>`` (``cluster.local``):

- ``<svc>.<ns>.svc.<zone>`` A/AAAA: a Service's ClusterIPs; for a headless Service the addresses of
  its *ready* endpoints (none ready: the name still exists, so the answer is empty, not NXDOMAIN);
  for an ExternalName Service a CNAME to the external name (whatever type was asked), followed by
  the target's records when the target is in the zone (a chain of them too, loops cut);
- ``<hostname>.<svc>.<ns>.svc.<zone>`` A/AAAA for each ready endpoint of a headless Service, where the
  hostname is the endpoint's ``hostname`` (a StatefulSet pod's) or else its address with dashes
  (``10-244-1-5``, CoreDNS's system-assigned identifier);
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` SRV for each *named* port: target the Service name with
  the Service port (ClusterIP), or each ready endpoint's hostname name with the endpoint's port
  (headless);
- PTR for ClusterIPs (to the Service name) and ready headless endpoints (to their hostname name);
- ``<a-b-c-d>.<ns>.pod.<zone>`` A (``pods="insecure"``: any address, as kubeadm's CoreDNS;
  ``"verified"``: only an address a pod of that namespace has; ``"disabled"``: none);
- ``dns-version.<zone>`` TXT with the schema version; SOA at the zone apex.

Rules of answering (:meth:`DnsIndex.lookup`): names compare case-insensitively; a name in the zone
that owns records, or has a descendant that does (an "empty non-terminal" such as ``<ns>.svc.<zone>``),
exists: asked for a type it lacks, the answer is NOERROR with no records (NODATA); any other name in
the zone is NXDOMAIN; both carry the zone's SOA in the authority section. A name outside the zone
gets ``None`` (the caller forwards it), as does a reverse name with no PTR here (CoreDNS's
``fallthrough in-addr.arpa ip6.arpa``). The index is immutable; build a new one when the inputs change.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = "1.1.0"
DEFAULT_ZONE = "cluster.local"
DEFAULT_TTL = 30
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NOERROR = 0
NXDOMAIN = 3
PodsMode = Literal["insecure", "verified", "disabled"]


@dataclass(frozen=True, slots=True)
class DnsOptions:
    zone: str = DEFAULT_ZONE
    ttl: int = DEFAULT_TTL
    pods: PodsMode = "insecure"

    @staticmethod
    def from_dict(raw: Mapping[str, Any] | None) -> DnsOptions:
        raw = raw or {}
        pods = str(raw.get("pods", "insecure"))
        if pods not in ("insecure", "verified", "disabled"):
            raise ValueError(f"pods must be insecure, verified or disabled, not {pods!r}")
        return DnsOptions(
            zone=normalize(str(raw.get("zone", DEFAULT_ZONE))),
            ttl=int(raw.get("ttl", DEFAULT_TTL)),
            pods=pods,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class Soa:
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


RData = str | Srv | Soa


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record; ``name`` and name-valued data are lower case without the final dot."""

    name: str
    rtype: str  # A, AAAA, CNAME, SRV, PTR, TXT, SOA
    data: RData
    ttl: int


@dataclass(frozen=True, slots=True)
class Answer:
    rcode: int
    answers: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()


def normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


def reverse_name(ip: str) -> str:
    return normalize(ipaddress.ip_address(ip).reverse_pointer)


def dashed(ip: str) -> str:
    """CoreDNS's hostname for an endpoint without one: the address with dashes."""
    return ip.replace(".", "-").replace(":", "-")


def undashed(label: str) -> str | None:
    """The address a ``<a-b-c-d>`` pod label stands for, or None."""
    for text in (label.replace("-", "."), label.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            continue
    return None


def _family(ip: str) -> str | None:
    try:
        return "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"
    except ValueError:
        return None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec: Mapping[str, Any] = obj.get("spec") or {}
    return spec


def cluster_ips(service: Mapping[str, Any]) -> list[str]:
    """The Service's ClusterIPs (``clusterIPs`` first, else ``clusterIP``); [] when headless."""
    spec = _spec(service)
    ips = [str(ip) for ip in spec.get("clusterIPs") or [] if ip]
    if not ips and spec.get("clusterIP"):
        ips = [str(spec["clusterIP"])]
    return [ip for ip in ips if ip != "None" and _family(ip)]


def is_headless(service: Mapping[str, Any]) -> bool:
    spec = _spec(service)
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") == "None"


@dataclass(frozen=True, slots=True)
class ReadyEndpoint:
    ip: str
    hostname: str
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, port) of the slice


def ready_endpoints(slices: Iterable[Mapping[str, Any]]) -> list[ReadyEndpoint]:
    """Ready endpoint addresses of one Service's slices, each address once (first slice wins).
    ``conditions.ready`` unset means ready (the API's rule)."""
    seen: dict[str, ReadyEndpoint] = {}
    for eps in sorted(slices, key=lambda s: str(_meta(s).get("name") or "")):
        ports = tuple(
            (str(p.get("name") or ""), str(p.get("protocol") or "TCP"), int(p.get("port") or 0))
            for p in eps.get("ports") or []
            if p.get("port")
        )
        for endpoint in eps.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for ip in endpoint.get("addresses") or []:
                if _family(str(ip)) is None or str(ip) in seen:
                    continue
                hostname = normalize(str(endpoint.get("hostname") or "")) or dashed(str(ip))
                seen[str(ip)] = ReadyEndpoint(str(ip), hostname, ports)
    return list(seen.values())


@dataclass
class _Builder:
    options: DnsOptions
    records: dict[str, dict[str, list[RData]]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, name: str, rtype: str, data: RData) -> None:
        values = self.records[normalize(name)].setdefault(rtype, [])
        if data not in values:
            values.append(data)

    def address(self, name: str, ip: str) -> None:
        family = _family(ip)
        if family:
            self.add(name, family, ip)

    def ptr(self, ip: str, target: str) -> None:
        self.add(reverse_name(ip), "PTR", target)

    def service(self, service: Mapping[str, Any], slices: list[Mapping[str, Any]]) -> None:
        meta, spec = _meta(service), _spec(service)
        base = f"{meta.get('name')}.{meta.get('namespace')}.svc.{self.options.zone}"
        self.records.setdefault(normalize(base), {})  # a Service's name exists even with no records
        if spec.get("type") == "ExternalName":
            if spec.get("externalName"):
                self.add(base, "CNAME", normalize(str(spec["externalName"])))
            return
        if is_headless(service):
            self._headless(base, slices)
            return
        ips = cluster_ips(service)
        for ip in ips:
            self.address(base, ip)
            self.ptr(ip, base)
        named = [p for p in spec.get("ports") or [] if p.get("name") and p.get("port")]
        for port in named:
            proto = str(port.get("protocol") or "TCP").lower()
            self.add(f"_{port['name']}._{proto}.{base}", "SRV", Srv(0, 100, int(port["port"]), base))

    def _headless(self, base: str, slices: list[Mapping[str, Any]]) -> None:
        endpoints = ready_endpoints(slices)
        srv: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for endpoint in endpoints:
            host = f"{endpoint.hostname}.{base}"
            self.address(base, endpoint.ip)
            self.address(host, endpoint.ip)
            self.ptr(endpoint.ip, host)
            for name, protocol, port in endpoint.ports:
                if name:
                    srv[f"_{name}._{protocol.lower()}.{base}"].append((port, host))
        for owner, targets in srv.items():
            weight = max(100 // len(targets), 1)
            for port, host in targets:
                self.add(owner, "SRV", Srv(0, weight, port, host))


def _slices_by_service(slices: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    out: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for eps in slices:
        meta = _meta(eps)
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service:
            out[(str(meta.get("namespace")), str(service))].append(eps)
    return out


def _pod_ips(pods: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, str]]:
    out = set()
    for pod in pods:
        status = pod.get("status") or {}
        ips = [e.get("ip") for e in status.get("podIPs") or []] + [status.get("podIP")]
        for ip in ips:
            if ip and _family(str(ip)):
                out.add((str(_meta(pod).get("namespace")), str(ipaddress.ip_address(str(ip)))))
    return frozenset(out)


class DnsIndex:
    """The cluster's DNS records at one moment; see the module docstring for what it answers."""

    def __init__(
        self,
        records: Mapping[str, Mapping[str, list[RData]]],
        pod_ips: frozenset[tuple[str, str]],
        options: DnsOptions,
    ) -> None:
        self.options = options
        self._records = {name: {t: tuple(v) for t, v in types.items()} for name, types in records.items()}
        self._pod_ips = pod_ips
        zone = options.zone
        self._existing = {zone, f"svc.{zone}", f"pod.{zone}"}
        for name in self._records:
            if name == zone or name.endswith("." + zone):
                labels = name.split(".")
                for i in range(len(labels) - zone.count(".")):
                    self._existing.add(".".join(labels[i:]))

    @staticmethod
    def build(
        services: Iterable[Mapping[str, Any]],
        slices: Iterable[Mapping[str, Any]],
        pods: Iterable[Mapping[str, Any]] = (),
        options: DnsOptions | None = None,
    ) -> DnsIndex:
        """An index of the given objects (as the API returns them); nothing is mutated."""
        options = options or DnsOptions()
        builder = _Builder(options)
        by_service = _slices_by_service(slices)
        for service in services:
            meta = _meta(service)
            key = (str(meta.get("namespace")), str(meta.get("name")))
            builder.service(service, by_service.get(key, []))
        builder.add(f"dns-version.{options.zone}", "TXT", SCHEMA_VERSION)
        builder.add(options.zone, "SOA", _soa(options.zone))
        return DnsIndex(builder.records, _pod_ips(pods), options)

    def soa(self) -> Record:
        return Record(self.options.zone, "SOA", _soa(self.options.zone), self.options.ttl)

    def in_zone(self, name: str) -> bool:
        name, zone = normalize(name), self.options.zone
        return name == zone or name.endswith("." + zone)

    def lookup(self, qname: str, qtype: str) -> Answer | None:
        """The answer to ``qname``/``qtype`` (``ANY`` matches every type), or None when the name is
        not ours to answer (the caller forwards it). Pure; safe to call concurrently."""
        name, qtype = normalize(qname), qtype.upper()
        if not self.in_zone(name):
            return self._reverse(name, qtype)
        types = self._owned(name)
        if types is None:
            return Answer(NXDOMAIN, authority=(self.soa(),))
        if "CNAME" in types and qtype != "CNAME":
            return Answer(NOERROR, self._cname_chain(name, qtype))
        answers = self._matching(name, types, qtype)
        if not answers:
            return Answer(NOERROR, authority=(self.soa(),))
        return Answer(NOERROR, answers, additional=self._additional(answers))

    def _cname_chain(self, name: str, qtype: str) -> tuple[Record, ...]:
        """The CNAME at ``name`` and, while the target is in the zone, the target's own records of
        ``qtype`` (another CNAME continues the chain), as CoreDNS completes an ExternalName pointing
        into the cluster: a stub resolver does not chase a CNAME itself. The chain ends at a target
        outside the zone (the server forwards that one), at a missing name, or at a loop."""
        out: list[Record] = []
        seen: set[str] = set()
        while name not in seen:
            seen.add(name)
            types = self._owned(name) or {}
            if "CNAME" not in types:
                out.extend(self._matching(name, types, qtype))
                break
            out.extend(self._rrset(name, "CNAME", types["CNAME"]))
            name = normalize(str(types["CNAME"][0]))
            if not self.in_zone(name):
                break
        return tuple(out)

    def _matching(self, name: str, types: Mapping[str, tuple[RData, ...]], qtype: str) -> tuple[Record, ...]:
        """The records at ``name`` of type ``qtype`` (every type for ``ANY``)."""
        return tuple(
            rr
            for rtype, values in types.items()
            if qtype in (rtype, "ANY")
            for rr in self._rrset(name, rtype, values)
        )

    def _owned(self, name: str) -> Mapping[str, tuple[RData, ...]] | None:
        """The records at ``name`` ({} for a name that exists without any), None if it does not exist."""
        if name in self._records:
            return self._records[name]
        pod = self._pod_address(name)
        if pod is not None:
            return {_family(pod) or "A": (pod,)}
        return {} if name in self._existing else None

    def _pod_address(self, name: str) -> str | None:
        suffix = f".pod.{self.options.zone}"
        if self.options.pods == "disabled" or not name.endswith(suffix):
            return None
        labels = name.removesuffix(suffix).split(".")
        if len(labels) != 2:
            return None
        ip = undashed(labels[0])
        if ip is None:
            return None
        if self.options.pods == "verified" and (labels[1], ip) not in self._pod_ips:
            return None
        return ip

    def _reverse(self, name: str, qtype: str) -> Answer | None:
        values = self._records.get(name, {}).get("PTR")
        if not values or qtype not in ("PTR", "ANY"):
            return None
        return Answer(NOERROR, self._rrset(name, "PTR", values))

    def _rrset(self, name: str, rtype: str, values: Iterable[RData]) -> tuple[Record, ...]:
        return tuple(Record(name, rtype, value, self.options.ttl) for value in values)

    def _additional(self, answers: tuple[Record, ...]) -> tuple[Record, ...]:
        """The A/AAAA records of SRV targets (the spec's "may include")."""
        out: list[Record] = []
        for rr in answers:
            if isinstance(rr.data, Srv):
                target = self._records.get(rr.data.target, {})
                for rtype in ("A", "AAAA"):
                    out.extend(
                        r for r in self._rrset(rr.data.target, rtype, target.get(rtype, ())) if r not in out
                    )
        return tuple(out)


def _soa(zone: str) -> Soa:
    # Serial is constant: there are no secondaries to notify, and determinism keeps answers comparable.
    return Soa(f"ns.dns.{zone}", f"hostmaster.{zone}", 1, 7200, 1800, 86400, DEFAULT_TTL)
