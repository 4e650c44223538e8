"""NodePorts: a pod's host ports must be free on the node.

A wanted ``(hostIP, protocol, hostPort)`` conflicts with a used one of the same protocol and port when
either side binds all addresses (``0.0.0.0``) or both name the same IP. An empty hostIP means
``0.0.0.0`` and an empty protocol ``TCP``; port 0 claims nothing. PreFilter returns SKIP for pods without
host ports so Filter is not run. The rejection is resolvable (preempting the port's holder frees it). Pure.
"""

from __future__ import annotations

from typing import Any, cast

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import NodeInfo, pod_host_ports

NAME = "NodePorts"
ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
BIND_ALL = "0.0.0.0"
_PRE_FILTER_KEY = "PreFilter" + NAME

Port = tuple[str, str, int]


def _sanitize(port: Port) -> Port:
    ip, protocol, number = port
    return ip or BIND_ALL, protocol or "TCP", number


def port_conflicts(wanted: Port, used: set[Port]) -> bool:
    """Whether ``wanted`` clashes with any of ``used`` (kube-scheduler's HostPortInfo.CheckConflict)."""
    ip, protocol, number = _sanitize(wanted)
    if number <= 0:
        return False
    for other in used:
        other_ip, other_protocol, other_number = _sanitize(other)
        if other_protocol != protocol or other_number != number:
            continue
        if ip == BIND_ALL or other_ip in (BIND_ALL, ip):
            return True
    return False


def fits_ports(wanted: set[Port], used: set[Port]) -> bool:
    return not any(port_conflicts(port, used) for port in wanted)


class NodePorts:
    """PreFilter collects the pod's host ports; Filter checks them against the node's used ports."""

    NAME = NAME

    def name(self) -> str:
        return NAME

    def pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        wanted = pod_host_ports(pod)
        if not wanted:
            return Status.skip()
        state.write(_PRE_FILTER_KEY, wanted)
        return SUCCESS

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status:
        try:
            wanted = cast("set[Port]", state.read(_PRE_FILTER_KEY))
        except KeyError:
            wanted = pod_host_ports(pod)
        if fits_ports(wanted, node.used_ports):
            return SUCCESS
        return Status.unschedulable(ERR_REASON)


def new(args: dict[str, Any] | None, handle: object) -> NodePorts:
    """Factory for the registry; NodePorts takes no arguments."""
    return NodePorts()
