from __future__ import annotations

import pytest

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import Code
from cluster.scheduler.plugins import node_name
from tests.cluster.scheduler.plugins.node_pod_builders import info, node, pod


@pytest.mark.parametrize(
    ("pod_node", "candidate", "code", "reasons"),
    [
        pytest.param(None, "n1", Code.SUCCESS, (), id="no-node-name-fits-any"),
        pytest.param("", "n1", Code.SUCCESS, (), id="empty-node-name-fits-any"),
        pytest.param("n1", "n1", Code.SUCCESS, (), id="named-node"),
        pytest.param(
            "n2",
            "n1",
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ("node(s) didn't match the requested node name",),
            id="other-node",
        ),
    ],
)
def test_filter(pod_node: str | None, candidate: str, code: Code, reasons: tuple[str, ...]) -> None:
    plugin = node_name.new({}, object())
    status = plugin.filter(CycleState(), pod(node_name=pod_node), info(node(candidate)))
    assert (status.code, status.reasons) == (code, reasons)
    assert plugin.name() == "NodeName" == node_name.NAME
