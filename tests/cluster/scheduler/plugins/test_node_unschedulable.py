from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import Code
from cluster.scheduler.plugins import node_unschedulable
from tests.cluster.scheduler.plugins.node_pod_builders import info, node, pod

UNSCHEDULABLE_KEY = "node.kubernetes.io/unschedulable"


@pytest.mark.parametrize(
    ("cordoned", "tolerations", "code"),
    [
        pytest.param(False, None, Code.SUCCESS, id="schedulable-node"),
        pytest.param(True, None, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, id="cordoned-node"),
        pytest.param(
            True,
            [{"key": UNSCHEDULABLE_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            Code.SUCCESS,
            id="tolerates-unschedulable-taint",
        ),
        pytest.param(True, [{"operator": "Exists"}], Code.SUCCESS, id="tolerates-everything"),
        pytest.param(
            True,
            [{"key": UNSCHEDULABLE_KEY, "operator": "Exists", "effect": "NoExecute"}],
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            id="wrong-effect",
        ),
        pytest.param(
            True,
            [{"key": "other", "operator": "Exists"}],
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            id="other-key",
        ),
    ],
)
def test_filter(cordoned: bool, tolerations: list[dict[str, Any]] | None, code: Code) -> None:
    plugin = node_unschedulable.new({}, object())
    status = plugin.filter(CycleState(), pod(tolerations=tolerations), info(node(unschedulable=cordoned)))
    assert status.code == code
    if code != Code.SUCCESS:
        assert status.reasons == ("node(s) were unschedulable",)
