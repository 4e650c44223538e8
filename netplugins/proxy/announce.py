"""Announcing LoadBalancer addresses on the node network (MetalLB's layer-2 mode, kube-vip style).

One node, the *owner*, carries every LoadBalancer IP as a ``/32`` (``/128``) on the interface that
holds its InternalIP, so its neighbours resolve the address to it and the service proxy there (which
DNATs or listens on LoadBalancer IPs like on ClusterIPs) takes the traffic. :func:`owner` is the
lowest name among the Ready nodes: every proxy computes the same answer from the same Nodes, with
no election; when the owner stops being Ready the next one takes over at its next sync.

:class:`Announcer` reconciles the addresses of one node: :meth:`Announcer.sync` adds what is wanted
and missing and removes what is ours and no longer wanted; it never touches an address it did not
add. Ours are marked twice, so a lost marker does not leak: the IPv4 address label
``<interface>:rk<4 hex digits of the node name's hash>`` (when it fits in the kernel's 15 characters;
per node, since simulated nodes may share one network namespace), and the state file (when given)
listing what was added. An address already present without our mark (configured by someone else) is
neither added again nor removed. ``close`` withdraws all of ours (an address nobody serves must not
be claimed on the network), ``purge`` also drops the state file; a proxy that crashes leaves them,
and the next Announcer adopts them.

:func:`plan` is the pure decision; the class runs ``ip`` (``ip_cmd``, e.g. ``("ip", "-n", ns)``).
No gratuitous ARP is sent: neighbours learn the new owner when their entry expires.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.machinery.files import write_private

log = logging.getLogger("raykube.proxy.announce")

LABEL_PREFIX = "rk"
IFNAMSIZ = 15  # the kernel's limit for an interface name, and for an address label

Runner = Callable[[Sequence[str]], str]


def owner(ready_node_names: Iterable[str]) -> str:
    """The node that announces LoadBalancer IPs: the lowest Ready node name ("" when none)."""
    return min(ready_node_names, default="")


@dataclass(frozen=True, slots=True)
class Present:
    """The addresses of the announcing interface: ours (marked) and the others."""

    ours: frozenset[str]
    others: frozenset[str]


def plan(wanted: set[str], present: Present) -> tuple[list[str], list[str]]:
    """(to add, to remove): add the wanted addresses nobody carries yet, remove ours not wanted."""
    add = sorted(wanted - present.ours - present.others)
    remove = sorted(present.ours - wanted)
    return add, remove


def label_for(interface: str, node_name: str) -> str | None:
    """The address label marking ``node_name``'s announcements (None when it would be too long)."""
    digest = hashlib.sha1(node_name.encode()).hexdigest()[:4]
    label = f"{interface}:{LABEL_PREFIX}{digest}"
    return label if len(label) <= IFNAMSIZ else None


def _host_prefix(ip: str) -> str:
    return f"{ip}/{ipaddress.ip_address(ip).max_prefixlen}"


def _run(argv: Sequence[str]) -> str:
    done = subprocess.run(list(argv), check=True, capture_output=True, text=True)
    return done.stdout


class Announcer:
    def __init__(
        self,
        node_name: str,
        node_ip: str,
        *,
        ip_cmd: Sequence[str] = ("ip",),
        state_path: Path | None = None,
        run: Runner = _run,
    ) -> None:
        self.node_name = node_name
        self.node_ip = node_ip
        self.ip_cmd = tuple(ip_cmd)
        self.state_path = state_path
        self.run = run

    # -- reading ------------------------------------------------------------------------------------

    def _links(self) -> list[dict[str, Any]]:
        links: list[dict[str, Any]] = json.loads(self.run([*self.ip_cmd, "-j", "addr", "show"]) or "[]")
        return links

    def interface(self, links: list[dict[str, Any]] | None = None) -> str | None:
        """The interface holding the node's IP (None when no interface has it)."""
        for link in self._links() if links is None else links:
            for addr in link.get("addr_info") or ():
                if addr.get("local") == self.node_ip:
                    return str(link["ifname"])
        return None

    def _state(self) -> set[str]:
        if self.state_path is None or not self.state_path.exists():
            return set()
        return set(json.loads(self.state_path.read_text() or "[]"))

    def _save(self, ours: set[str]) -> None:
        if self.state_path is not None:
            write_private(self.state_path, json.dumps(sorted(ours)))

    def present(self, interface: str, links: list[dict[str, Any]]) -> Present:
        recorded, label = self._state(), label_for(interface, self.node_name)
        ours: set[str] = set()
        others: set[str] = set()
        for link in links:
            if link.get("ifname") != interface:
                continue
            for addr in link.get("addr_info") or ():
                local = addr.get("local")
                if not local or addr.get("prefixlen") != ipaddress.ip_address(local).max_prefixlen:
                    if local:
                        others.add(str(local))
                    continue
                marked = (label is not None and addr.get("label") == label) or local in recorded
                (ours if marked else others).add(str(local))
        return Present(frozenset(ours), frozenset(others))

    # -- acting -------------------------------------------------------------------------------------

    def sync(self, lb_ips: set[str], am_owner: bool) -> tuple[list[str], list[str]]:
        """Carry exactly ``lb_ips`` (when ``am_owner``; nothing otherwise) among the addresses we
        add. Returns (added, removed). Idempotent; ``CalledProcessError`` when ``ip`` fails."""
        links = self._links()
        interface = self.interface(links)
        if interface is None:
            log.warning("node %s: no interface holds %s; not announcing", self.node_name, self.node_ip)
            return [], []
        present = self.present(interface, links)
        add, remove = plan(set(lb_ips) if am_owner else set(), present)
        ours = set(present.ours)
        label = label_for(interface, self.node_name)
        for ip in add:
            labelled = ["label", label] if label and ipaddress.ip_address(ip).version == 4 else []
            ours.add(ip)
            self._save(ours)  # recorded before it exists: a crash in between cannot leak it
            self.run([*self.ip_cmd, "addr", "add", _host_prefix(ip), "dev", interface, *labelled])
            log.info("node %s: announcing %s on %s", self.node_name, ip, interface)
        for ip in remove:
            self.run([*self.ip_cmd, "addr", "del", _host_prefix(ip), "dev", interface])
            ours.discard(ip)
            log.info("node %s: no longer announcing %s", self.node_name, ip)
        if add or remove or ours != self._state():
            self._save(ours)
        return add, remove

    def close(self, purge: bool) -> None:
        """Remove every address we added; ``purge`` also removes the state file."""
        self.sync(set(), am_owner=False)
        if purge and self.state_path is not None:
            self.state_path.unlink(missing_ok=True)
