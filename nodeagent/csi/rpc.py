"""Every CSI RPC by name: its service and its request/response message classes.

The server, the client, the volume plugin actor and the controllers' caller all address an RPC by
its spec name (``"CreateVolume"``); this table, read off the generated descriptor, is the one place
that turns the name into a gRPC path and message types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodeagent.csi import csi_pb2

SERVICES = ("Identity", "Controller", "Node")


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    service: str
    request: Any  # the csi_pb2 request class
    response: Any  # the csi_pb2 response class

    @property
    def path(self) -> str:
        """The gRPC method path, e.g. ``/csi.v1.Controller/CreateVolume``."""
        return f"/{csi_pb2.DESCRIPTOR.package}.{self.service}/{self.name}"


def _methods() -> dict[str, Method]:
    table: dict[str, Method] = {}
    for service_name in SERVICES:
        service = csi_pb2.DESCRIPTOR.services_by_name[service_name]
        for m in service.methods:
            table[m.name] = Method(
                m.name,
                service_name,
                getattr(csi_pb2, m.input_type.name),
                getattr(csi_pb2, m.output_type.name),
            )
    return table


METHODS: dict[str, Method] = _methods()


def method(name: str) -> Method:
    """The RPC called ``name``; KeyError naming the choices for a misspelt one."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"no CSI RPC {name!r}: one of {', '.join(sorted(METHODS))}") from None


def parse_response(name: str, data: bytes) -> Any:
    """The response of RPC ``name`` from its serialized bytes (what the volume plugin actor returns)."""
    return method(name).response.FromString(data)


def parse_request(name: str, data: bytes) -> Any:
    return method(name).request.FromString(data)
