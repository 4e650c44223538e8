"""Service IP and NodePort allocation: one marker key per allocated IP or port, created in the same
transaction as the Service, so two Services can never get the same one; released on delete.

* ServiceAllocatedValues (update, before validation): an update that omits the allocated clusterIPs
  or node ports keeps them (Kubernetes' service REST ``patchAllocatedValues``).
* ServiceAllocation (create, last before storage): picks free values or checks the requested ones
  and reserves their marker keys; runs after validation so an invalid Service reports its field
  errors first, and on dry runs too (dry runs allocate without storing, as before).

The Service CIDR (kube-apiserver's ``--service-cluster-ip-range``) is a :class:`ServiceNetwork`
given to the API server (``raykube up --service-cidr``); the constants below are its defaults. The
``kubernetes`` Service takes its first address and cluster DNS its tenth, as kubeadm does; neither
is ever handed out at random.
"""

from __future__ import annotations

import copy
import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cluster.apiserver.admission.interfaces import Admitted, Attributes, KeyLookup, MutatingPlugin, Operation
from cluster.apiserver.errors import StatusError
from cluster.apiserver.resources import ResourceInfo

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
NODE_PORT_RANGE = (30000, 32767)
IP_KEYS = "/registry/ranges/serviceips/"
PORT_KEYS = "/registry/ranges/servicenodeports/"

_rng = random.SystemRandom()

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ServiceNetwork:
    """The Service CIDR ClusterIPs come from, and the two well-known addresses in it."""

    cidr: IPNetwork = field(default=SERVICE_CIDR)

    @staticmethod
    def parse(value: str) -> ServiceNetwork:
        """``ValueError`` when ``value`` is not a CIDR or is too small to hold the DNS address and
        some Services (kube needs at least 8 addresses; with the DNS at the tenth, 16 here)."""
        cidr = ipaddress.ip_network(value.strip(), strict=True)
        if cidr.num_addresses < 32:
            raise ValueError(f"service CIDR {cidr} is too small: give at least a /{cidr.max_prefixlen - 5}")
        return ServiceNetwork(cidr)

    @property
    def kubernetes_ip(self) -> str:
        return str(self.cidr.network_address + 1)

    @property
    def dns_ip(self) -> str:
        return str(self.cidr.network_address + 10)


DEFAULT_SERVICE_NETWORK = ServiceNetwork()


class ServiceAllocatedValues(MutatingPlugin):
    NAME: ClassVar[str] = "ServiceAllocatedValues"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.UPDATE})

    async def admit(self, attrs: Attributes) -> Admitted:
        new, old = attrs.object, attrs.old_object or {}
        if attrs.kind != ("", "Service"):
            return Admitted(new)
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
        return Admitted(new)


class ServiceAllocation(MutatingPlugin):
    NAME: ClassVar[str] = "ServiceAllocation"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE})

    def __init__(self, keys: KeyLookup, network: ServiceNetwork = DEFAULT_SERVICE_NETWORK) -> None:
        self._keys = keys
        self._network = network

    async def admit(self, attrs: Attributes) -> Admitted:
        """The Service with its IP and node ports, and the marker keys to create with it."""
        obj = attrs.object
        if attrs.kind != ("", "Service"):
            return Admitted(obj)
        return Admitted(obj, tuple(await _allocate(self._keys, obj, self._network)))


async def _allocate(keys: KeyLookup, obj: dict[str, Any], network: ServiceNetwork) -> list[str]:
    spec = obj.setdefault("spec", {})
    marked: list[str] = []
    stype = spec.get("type", "ClusterIP")
    if stype != "ExternalName" and spec.get("clusterIP") != "None":
        ip = spec.get("clusterIP") or ""
        if not ip:
            ip = await _free_ip(keys, network)
        elif ipaddress.ip_address(ip) not in network.cidr:
            raise _invalid_service(
                obj,
                "spec.clusterIPs",
                ip,
                f"provided IP is not in the valid range. The range of valid IPs is {network.cidr}",
            )
        elif await keys.exists(IP_KEYS + ip):
            raise _invalid_service(obj, "spec.clusterIPs", ip, "provided IP is already allocated")
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        marked.append(IP_KEYS + ip)
    elif spec.get("clusterIP") == "None":
        spec["clusterIPs"] = ["None"]
    if stype in ("NodePort", "LoadBalancer"):
        used: set[int] = set()
        for port in spec.get("ports") or []:
            proto = port.get("protocol", "TCP")
            np = port.get("nodePort")
            if np:
                if await keys.exists(f"{PORT_KEYS}{np}-{proto}"):
                    raise _invalid_service(
                        obj, "spec.ports[].nodePort", np, "provided port is already allocated"
                    )
            else:
                np = await _free_port(keys, proto, used)
                port["nodePort"] = np
            used.add(int(np))
            marked.append(f"{PORT_KEYS}{np}-{proto}")
    return marked


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


async def _free_ip(keys: KeyLookup, network: ServiceNetwork) -> str:
    reserved = {network.kubernetes_ip, network.dns_ip}
    first, size = int(network.cidr.network_address), network.cidr.num_addresses
    for _ in range(64):
        ip = str(ipaddress.ip_address(first + _rng.randrange(16, size - 1)))
        if ip not in reserved and not await keys.exists(IP_KEYS + ip):
            return ip
    raise StatusError(
        500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: range is full"
    )


async def _free_port(keys: KeyLookup, proto: str, used: set[int]) -> int:
    lo, hi = NODE_PORT_RANGE
    for _ in range(256):
        port = _rng.randint(lo, hi)
        if port not in used and not await keys.exists(f"{PORT_KEYS}{port}-{proto}"):
            return port
    raise StatusError(
        500, "InternalError", "Internal error occurred: failed to allocate a nodePort: range is full"
    )


def release_keys(info: ResourceInfo, obj: dict[str, Any]) -> list[str]:
    """Marker keys to delete with the object (a Service's IPs and node ports)."""
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
