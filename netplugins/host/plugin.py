"""``HostNetwork``: the ``host`` network plugin (the default without root).

Pods share the node's network namespace (``NODE_NETWORK``: the runtime creates no netns for them,
as for hostNetwork pods), so there is nothing to wire: ADD reports the node's address
(``ctx.node_ips[0]`` as a /32 or /128) and records the pod's host ports (CNI ``runtimeConfig``
``portMappings``) in a ledger; a pod asking for a host port another pod of the node holds gets
``CNIError`` ``PORT_IN_USE`` ("hostPort 8080/TCP is already used by pod default/a").

State: ``<root_dir>/hostports.json`` (``netplugins.host.ledger``), read at ``start`` and rewritten
atomically after every change, so a restarted plugin keeps its accounting until the runtime's GC
says which attachments still exist. DEL and GC release; CHECK verifies the attachment's entry.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
from pathlib import Path

from cluster.machinery.files import private_dir, write_private
from netplugins.cni.plugin import NetworkPlugin, PluginContext
from netplugins.cni.types import (
    Attachment,
    CNIError,
    DecodingFailure,
    InvalidNetworkConfig,
    IPConfig,
    NetRequest,
    PluginNotAvailable,
    Result,
    UnknownContainer,
)
from netplugins.host.ledger import (
    Ledger,
    MappingError,
    PortConflict,
    attachment_key,
    host_ports,
)

log = logging.getLogger("raykube.cni.host")

PORT_IN_USE = 100  # plugin-specific CNI error code: a requested host port is held by another pod
LEDGER_FILE = "hostports.json"


def node_address(node_ips: tuple[str, ...]) -> str | None:
    """The node's first address as a host prefix (``10.0.0.5/32``), or None without one."""
    for ip in node_ips:
        with contextlib.suppress(ValueError):
            addr = ipaddress.ip_address(ip)
            return f"{addr}/{addr.max_prefixlen}"
    return None


class HostNetwork(NetworkPlugin):
    NAME = "host"
    NODE_NETWORK = True

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.path = Path(ctx.root_dir) / LEDGER_FILE
        self.ledger = Ledger()

    async def start(self) -> None:
        private_dir(self.ctx.root_dir)
        if self.path.exists():
            try:
                self.ledger = Ledger.from_json(json.loads(self.path.read_text()))
            except (ValueError, KeyError, TypeError) as e:  # a damaged ledger must not stop the node
                log.warning("host plugin: ignoring unreadable %s: %s", self.path, e)

    async def stop(self, purge: bool = False) -> None:
        if purge:
            self.path.unlink(missing_ok=True)

    def _save(self, ledger: Ledger) -> None:
        write_private(self.path, ledger.dumps())
        self.ledger = ledger

    def _address(self) -> str:
        address = node_address(self.ctx.node_ips)
        if address is None:
            raise PluginNotAvailable(f"node {self.ctx.node_name} has no address to give its pods")
        return address

    async def status(self) -> None:
        self._address()

    async def add(self, req: NetRequest) -> Result:
        address = self._address()
        try:
            ports = host_ports(req.port_mappings())
        except MappingError as e:
            raise DecodingFailure(str(e)) from None
        claimed = self.ledger.claim(attachment_key(req.container_id, req.ifname), req.pod, ports)
        if isinstance(claimed, PortConflict):
            raise CNIError(PORT_IN_USE, claimed.message(), f"node {self.ctx.node_name}")
        self._save(claimed)
        return Result(ips=(IPConfig(address),))

    async def delete(self, req: NetRequest) -> None:
        key = attachment_key(req.container_id, req.ifname)
        if key in self.ledger.holdings:
            self._save(self.ledger.release(key))

    async def check(self, req: NetRequest) -> None:
        held = self.ledger.holdings.get(attachment_key(req.container_id, req.ifname))
        if held is None:
            raise UnknownContainer(f"no host network attachment for {req.container_id}/{req.ifname}")
        try:
            want = host_ports(req.port_mappings())
        except MappingError as e:
            raise DecodingFailure(str(e)) from None
        if req.runtime_config and want != held.ports:
            raise InvalidNetworkConfig(
                f"{req.pod} holds {', '.join(map(str, held.ports)) or 'no host ports'}, "
                f"asked for {', '.join(map(str, want)) or 'none'}"
            )
        if (
            req.prev_result is not None
            and req.prev_result.pod_ips() != Result(ips=(IPConfig(self._address()),)).pod_ips()
        ):
            raise InvalidNetworkConfig(
                f"{req.pod} was given {req.prev_result.pod_ips()}, the node's address is {self._address()}"
            )

    async def gc(self, valid: list[Attachment]) -> None:
        keep = {attachment_key(a.container_id, a.ifname) for a in valid}
        kept = self.ledger.keep_only(keep)
        if kept != self.ledger:
            released = sorted(set(self.ledger.holdings) - keep)
            log.info("host plugin: GC released %s", ", ".join(released))
            self._save(kept)
