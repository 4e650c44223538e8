from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import Code
from cluster.scheduler.plugins import node_ports
from cluster.scheduler.plugins.node_ports import port_conflicts
from tests.cluster.scheduler.plugins.node_pod_builders import container, info, node, pod


@pytest.mark.parametrize(
    ("wanted", "used", "expected"),
    [
        pytest.param(("0.0.0.0", "TCP", 80), {("0.0.0.0", "TCP", 80)}, True, id="same-port"),
        pytest.param(("0.0.0.0", "UDP", 80), {("0.0.0.0", "TCP", 80)}, False, id="other-protocol"),
        pytest.param(("0.0.0.0", "TCP", 81), {("0.0.0.0", "TCP", 80)}, False, id="other-port"),
        pytest.param(("10.0.0.1", "TCP", 80), {("0.0.0.0", "TCP", 80)}, True, id="ip-vs-bind-all"),
        pytest.param(("0.0.0.0", "TCP", 80), {("10.0.0.1", "TCP", 80)}, True, id="bind-all-vs-ip"),
        pytest.param(("10.0.0.1", "TCP", 80), {("10.0.0.2", "TCP", 80)}, False, id="different-ips"),
        pytest.param(("10.0.0.1", "TCP", 80), {("10.0.0.1", "TCP", 80)}, True, id="same-ip"),
        pytest.param(("", "", 80), {("0.0.0.0", "TCP", 80)}, True, id="empty-ip-and-protocol-sanitized"),
        pytest.param(("0.0.0.0", "TCP", 0), {("0.0.0.0", "TCP", 0)}, False, id="port-zero-claims-nothing"),
    ],
)
def test_port_conflicts(
    wanted: tuple[str, str, int], used: set[tuple[str, str, int]], expected: bool
) -> None:
    assert port_conflicts(wanted, used) is expected


def _pod_with_ports(name: str, *ports: dict[str, Any]) -> dict[str, Any]:
    return pod(name, containers=[container(ports=list(ports))])


HOLDER = _pod_with_ports("holder", {"containerPort": 80, "hostPort": 8080})


@pytest.mark.parametrize(
    ("incoming", "pre_filter_code", "filter_code"),
    [
        pytest.param(pod("plain"), Code.SKIP, Code.SUCCESS, id="no-host-ports-skips"),
        pytest.param(
            _pod_with_ports("x", {"containerPort": 80}),
            Code.SKIP,
            Code.SUCCESS,
            id="container-port-only-skips",
        ),
        pytest.param(
            _pod_with_ports("x", {"containerPort": 80, "hostPort": 8081}),
            Code.SUCCESS,
            Code.SUCCESS,
            id="free-port",
        ),
        pytest.param(
            _pod_with_ports("x", {"containerPort": 80, "hostPort": 8080}),
            Code.SUCCESS,
            Code.UNSCHEDULABLE,
            id="taken-port",
        ),
        pytest.param(
            _pod_with_ports("x", {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}),
            Code.SUCCESS,
            Code.SUCCESS,
            id="taken-port-other-protocol",
        ),
        pytest.param(
            _pod_with_ports("x", {"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}),
            Code.SUCCESS,
            Code.UNSCHEDULABLE,
            id="specific-ip-vs-bind-all-holder",
        ),
    ],
)
def test_pre_filter_and_filter(incoming: dict[str, Any], pre_filter_code: Code, filter_code: Code) -> None:
    plugin = node_ports.new({}, object())
    node_info = info(node(), HOLDER)
    state = CycleState()
    assert plugin.pre_filter(state, incoming, [node_info]).code == pre_filter_code
    status = plugin.filter(state, incoming, node_info)
    assert status.code == filter_code
    if filter_code == Code.UNSCHEDULABLE:
        assert status.reasons == ("node(s) didn't have free ports for the requested pod ports",)
