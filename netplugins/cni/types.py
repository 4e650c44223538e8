"""The CNI 1.1 data model in Python: requests, results and the specification's typed errors.

Pure values, no I/O. ``Result`` converts to and from the specification's JSON result object (what a
CNI executable prints on stdout) and to and from the gRPC ``cni_pb2.Result``; ``CNIError`` does the
same for the error object. Plugin authors see only these types (see ``netplugins.cni.plugin``).

Invariants: ``Result.to_json()`` omits empty optional fields, as the reference plugins do, and
``Result.from_json(r.to_json()) == r``; an error's ``code`` selects its subclass (``CNIError.of``)
so callers can ``except UnknownContainer``.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from netplugins.cni import cni_pb2

CNI_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")


# ---------------------------------------------------------------------------------------- errors


class CNIError(Exception):
    """A CNI failure: the specification's error object (``code``, ``msg``, ``details``)."""

    CODE: ClassVar[int] = 0
    _BY_CODE: ClassVar[dict[int, type[CNIError]]] = {}

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"CNI error {code}: {msg}" + (f" ({details})" if details else ""))
        self.code = code
        self.msg = msg
        self.details = details

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.CODE:
            CNIError._BY_CODE[cls.CODE] = cls

    @staticmethod
    def of(code: int, msg: str, details: str = "") -> CNIError:
        """The error of ``code``, as its subclass when the specification names it."""
        cls = CNIError._BY_CODE.get(code)
        return cls(msg, details) if cls is not None else CNIError(code, msg, details)  # type: ignore[call-arg,arg-type]

    def to_json(self, cni_version: str = CNI_VERSION) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    @staticmethod
    def from_json(obj: dict[str, Any]) -> CNIError:
        return CNIError.of(int(obj.get("code", 0)), str(obj.get("msg", "")), str(obj.get("details", "")))

    def to_proto(self, cni_version: str = CNI_VERSION) -> cni_pb2.Error:
        return cni_pb2.Error(cni_version=cni_version, code=self.code, msg=self.msg, details=self.details)

    @staticmethod
    def from_proto(err: cni_pb2.Error) -> CNIError:
        return CNIError.of(err.code, err.msg, err.details)


class _Named(CNIError):
    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(self.CODE, msg, details)


class IncompatibleVersion(_Named):
    CODE = 1


class UnsupportedField(_Named):
    CODE = 2


class UnknownContainer(_Named):
    """The container (or its network namespace) does not exist."""

    CODE = 3


class InvalidEnvironment(_Named):
    CODE = 4


class IOFailure(_Named):
    CODE = 5


class DecodingFailure(_Named):
    CODE = 6


class InvalidNetworkConfig(_Named):
    CODE = 7


class TryAgainLater(_Named):
    CODE = 11


class PluginNotAvailable(_Named):
    """STATUS: the plugin cannot service ADD now."""

    CODE = 50


class LimitedConnectivity(_Named):
    """STATUS: the plugin can service ADD but the network has limited connectivity."""

    CODE = 51


# ---------------------------------------------------------------------------------------- result


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in ("", 0, None, [], {})}


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    mac: str = ""
    mtu: int = 0
    sandbox: str = ""
    socket_path: str = ""
    pci_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "name": self.name,
                "mac": self.mac,
                "mtu": self.mtu,
                "sandbox": self.sandbox,
                "socketPath": self.socket_path,
                "pciID": self.pci_id,
            }
        )

    @staticmethod
    def from_json(o: dict[str, Any]) -> Interface:
        return Interface(
            name=str(o.get("name", "")),
            mac=str(o.get("mac", "")),
            mtu=int(o.get("mtu", 0)),
            sandbox=str(o.get("sandbox", "")),
            socket_path=str(o.get("socketPath", "")),
            pci_id=str(o.get("pciID", "")),
        )


@dataclass(frozen=True, slots=True)
class IPConfig:
    address: str  # CIDR: "10.244.1.5/24"
    gateway: str = ""
    interface: int | None = None

    @property
    def ip(self) -> str:
        return str(ipaddress.ip_interface(self.address).ip)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address}
        if self.gateway:
            out["gateway"] = self.gateway
        if self.interface is not None:
            out["interface"] = self.interface
        return out

    @staticmethod
    def from_json(o: dict[str, Any]) -> IPConfig:
        iface = o.get("interface")
        return IPConfig(str(o["address"]), str(o.get("gateway", "")), None if iface is None else int(iface))


@dataclass(frozen=True, slots=True)
class Route:
    dst: str
    gw: str = ""
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int = 0
    scope: str = ""

    def to_json(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "dst": self.dst,
                "gw": self.gw,
                "mtu": self.mtu,
                "advmss": self.advmss,
                "priority": self.priority,
                "table": self.table,
                "scope": self.scope,
            }
        )

    @staticmethod
    def from_json(o: dict[str, Any]) -> Route:
        return Route(
            dst=str(o["dst"]),
            gw=str(o.get("gw", "")),
            mtu=int(o.get("mtu", 0)),
            advmss=int(o.get("advmss", 0)),
            priority=int(o.get("priority", 0)),
            table=int(o.get("table", 0)),
            scope=str(o.get("scope", "")),
        )


@dataclass(frozen=True, slots=True)
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "nameservers": list(self.nameservers),
                "domain": self.domain,
                "search": list(self.search),
                "options": list(self.options),
            }
        )

    @staticmethod
    def from_json(o: dict[str, Any]) -> DNS:
        return DNS(
            tuple(o.get("nameservers") or ()),
            str(o.get("domain", "")),
            tuple(o.get("search") or ()),
            tuple(o.get("options") or ()),
        )


@dataclass(frozen=True, slots=True)
class Result:
    """The specification's result object."""

    cni_version: str = CNI_VERSION
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)

    def pod_ips(self) -> list[str]:
        """The bare addresses, IPv4 first (the order Kubernetes reports podIPs in)."""
        ips = [c.ip for c in self.ips]
        return sorted(ips, key=lambda ip: ipaddress.ip_address(ip).version)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": self.cni_version}
        if self.interfaces:
            out["interfaces"] = [i.to_json() for i in self.interfaces]
        if self.ips:
            out["ips"] = [i.to_json() for i in self.ips]
        if self.routes:
            out["routes"] = [r.to_json() for r in self.routes]
        dns = self.dns.to_json()
        if dns:
            out["dns"] = dns
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json())

    @staticmethod
    def from_json(o: dict[str, Any]) -> Result:
        return Result(
            cni_version=str(o.get("cniVersion", CNI_VERSION)),
            interfaces=tuple(Interface.from_json(i) for i in o.get("interfaces") or ()),
            ips=tuple(IPConfig.from_json(i) for i in o.get("ips") or ()),
            routes=tuple(Route.from_json(r) for r in o.get("routes") or ()),
            dns=DNS.from_json(o.get("dns") or {}),
        )

    def to_proto(self) -> cni_pb2.Result:
        return cni_pb2.Result(
            cni_version=self.cni_version,
            interfaces=[
                cni_pb2.Interface(
                    name=i.name,
                    mac=i.mac,
                    mtu=i.mtu,
                    sandbox=i.sandbox,
                    socket_path=i.socket_path,
                    pci_id=i.pci_id,
                )
                for i in self.interfaces
            ],
            ips=[
                cni_pb2.IPConfig(address=c.address, gateway=c.gateway, interface=c.interface)
                for c in self.ips
            ],
            routes=[
                cni_pb2.Route(
                    dst=r.dst,
                    gw=r.gw,
                    mtu=r.mtu,
                    advmss=r.advmss,
                    priority=r.priority,
                    table=r.table,
                    scope=r.scope,
                )
                for r in self.routes
            ],
            dns=cni_pb2.DNS(
                nameservers=list(self.dns.nameservers),
                domain=self.dns.domain,
                search=list(self.dns.search),
                options=list(self.dns.options),
            ),
        )

    @staticmethod
    def from_proto(p: cni_pb2.Result) -> Result:
        return Result(
            cni_version=p.cni_version or CNI_VERSION,
            interfaces=tuple(
                Interface(i.name, i.mac, i.mtu, i.sandbox, i.socket_path, i.pci_id) for i in p.interfaces
            ),
            ips=tuple(
                IPConfig(c.address, c.gateway, c.interface if c.HasField("interface") else None)
                for c in p.ips
            ),
            routes=tuple(Route(r.dst, r.gw, r.mtu, r.advmss, r.priority, r.table, r.scope) for r in p.routes),
            dns=DNS(tuple(p.dns.nameservers), p.dns.domain, tuple(p.dns.search), tuple(p.dns.options)),
        )


# ---------------------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Attachment:
    """One (container, interface) pair: what ADD creates and DEL or GC removes."""

    container_id: str
    ifname: str = "eth0"


@dataclass(frozen=True, slots=True)
class NetRequest:
    """ADD, DEL or CHECK: the runtime's parameters (the spec's CNI_* variables and runtimeConfig)."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: dict[str, str] = field(default_factory=dict)
    runtime_config: dict[str, Any] = field(default_factory=dict)
    prev_result: Result | None = None
    network_config: dict[str, Any] | None = None  # the runtime's conflist (the CNI shim passes it on)

    @property
    def attachment(self) -> Attachment:
        return Attachment(self.container_id, self.ifname)

    @property
    def pod(self) -> str:
        """``namespace/name`` from the Kubernetes CNI_ARGS, or the container id."""
        ns, name = self.args.get("K8S_POD_NAMESPACE", ""), self.args.get("K8S_POD_NAME", "")
        return f"{ns}/{name}" if name else self.container_id

    def port_mappings(self) -> list[dict[str, Any]]:
        return list(self.runtime_config.get("portMappings") or [])

    def to_proto(self) -> cni_pb2.RuntimeConf:
        return cni_pb2.RuntimeConf(
            container_id=self.container_id,
            netns=self.netns,
            ifname=self.ifname,
            args=self.args,
            runtime_config=json.dumps(self.runtime_config).encode() if self.runtime_config else b"",
            network_config=json.dumps(self.network_config).encode() if self.network_config else b"",
        )

    @staticmethod
    def from_proto(conf: cni_pb2.RuntimeConf, prev: cni_pb2.Result | None = None) -> NetRequest:
        try:
            runtime_config = json.loads(conf.runtime_config) if conf.runtime_config else {}
            network_config = json.loads(conf.network_config) if conf.network_config else None
        except ValueError as e:
            raise DecodingFailure("runtime or network configuration is not JSON", str(e)) from e
        if not isinstance(runtime_config, dict):
            raise DecodingFailure("runtimeConfig must be a JSON object")
        return NetRequest(
            container_id=conf.container_id,
            netns=conf.netns,
            ifname=conf.ifname or "eth0",
            args=dict(conf.args),
            runtime_config=runtime_config,
            prev_result=Result.from_proto(prev) if prev is not None and prev.cni_version else None,
            network_config=network_config,
        )


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS ``"K1=V1;K2=V2"`` as a dict; raises InvalidEnvironment on a pair without ``=``."""
    out: dict[str, str] = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidEnvironment(f"CNI_ARGS entry {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def format_cni_args(args: dict[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in args.items())
