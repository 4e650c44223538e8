"""The host-port ledger of the ``host`` network plugin: which attachment holds which host port.

Pure: a ``Ledger`` value in, a new ``Ledger`` (or a ``PortConflict``) out; the plugin persists it.
With every pod in the node's network namespace, two pods binding the same port collide; kubelet
gives such a pod a scheduling-time check only, so the plugin refuses the second ADD instead.

Invariants:
- A key is ``(hostIP, hostPort, protocol)`` with the protocol upper-case (``TCP``, ``UDP``, ``SCTP``)
  and an empty or unspecified hostIP (``0.0.0.0``, ``::``) meaning every address: it collides with
  the same port and protocol on any address, as a wildcard bind does.
- An attachment appears at most once; claiming again for the same attachment replaces its ports
  (a repeated ADD is not a conflict with itself).
- Released attachments leave nothing behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

WILDCARDS = ("", "0.0.0.0", "::")


@dataclass(frozen=True, slots=True, order=True)
class HostPort:
    host_ip: str
    port: int
    protocol: str  # upper-case

    def __str__(self) -> str:
        where = f"{self.host_ip}:" if self.host_ip not in WILDCARDS else ""
        return f"hostPort {where}{self.port}/{self.protocol}"

    def collides(self, other: HostPort) -> bool:
        if (self.port, self.protocol) != (other.port, other.protocol):
            return False
        return self.host_ip in WILDCARDS or other.host_ip in WILDCARDS or self.host_ip == other.host_ip


@dataclass(frozen=True, slots=True)
class Holding:
    """What one attachment (``container_id/ifname``) holds: its pod (``namespace/name``) and ports."""

    pod: str
    ports: tuple[HostPort, ...] = ()


@dataclass(frozen=True, slots=True)
class PortConflict:
    port: HostPort
    holder_pod: str

    def message(self) -> str:
        return f"{self.port} is already used by pod {self.holder_pod}"


class MappingError(ValueError):
    """A portMappings entry that is not a host port (no hostPort, bad protocol)."""


def host_ports(mappings: list[dict[str, Any]]) -> tuple[HostPort, ...]:
    """The host ports of CNI ``portMappings`` entries (entries without a hostPort are skipped)."""
    out: set[HostPort] = set()
    for m in mappings:
        try:
            port = int(m.get("hostPort") or 0)
        except (TypeError, ValueError):
            raise MappingError(f"portMappings entry {m!r}: hostPort is not a number") from None
        if port == 0:
            continue
        if not 0 < port < 65536:
            raise MappingError(f"portMappings entry {m!r}: hostPort out of range")
        protocol = str(m.get("protocol") or "tcp").upper()
        if protocol not in ("TCP", "UDP", "SCTP"):
            raise MappingError(f"portMappings entry {m!r}: protocol must be tcp, udp or sctp")
        out.add(HostPort(str(m.get("hostIP") or ""), port, protocol))
    return tuple(sorted(out))


def attachment_key(container_id: str, ifname: str) -> str:
    return f"{container_id}/{ifname}"


@dataclass(frozen=True, slots=True)
class Ledger:
    holdings: dict[str, Holding] = field(default_factory=dict)  # attachment_key -> Holding

    def claim(self, key: str, pod: str, ports: tuple[HostPort, ...]) -> Ledger | PortConflict:
        """The ledger with ``key`` holding ``ports``, or the first conflict with another attachment."""
        for other_key, held in sorted(self.holdings.items()):
            if other_key == key:
                continue
            for want in ports:
                for have in held.ports:
                    if want.collides(have):
                        return PortConflict(want, held.pod)
        return Ledger({**self.holdings, key: Holding(pod, ports)})

    def release(self, key: str) -> Ledger:
        return Ledger({k: v for k, v in self.holdings.items() if k != key})

    def keep_only(self, keys: set[str]) -> Ledger:
        return Ledger({k: v for k, v in self.holdings.items() if k in keys})

    def to_json(self) -> dict[str, Any]:
        return {
            key: {
                "pod": h.pod,
                "ports": [{"hostIP": p.host_ip, "hostPort": p.port, "protocol": p.protocol} for p in h.ports],
            }
            for key, h in sorted(self.holdings.items())
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @staticmethod
    def from_json(obj: dict[str, Any]) -> Ledger:
        return Ledger(
            {
                key: Holding(
                    str(h.get("pod", "")),
                    tuple(
                        HostPort(str(p.get("hostIP", "")), int(p["hostPort"]), str(p["protocol"]).upper())
                        for p in h.get("ports") or ()
                    ),
                )
                for key, h in obj.items()
            }
        )
