from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.plugins import default_binder
from tests.cluster.scheduler.plugins.node_pod_builders import pod


@pytest.mark.parametrize(
    ("the_pod", "metadata"),
    [
        pytest.param(
            pod("web", uid="u-1"), {"name": "web", "namespace": "default", "uid": "u-1"}, id="with-uid"
        ),
        pytest.param(pod("web"), {"name": "web", "namespace": "default"}, id="without-uid"),
        pytest.param(
            {"metadata": {"name": "x", "namespace": "ns"}, "spec": {}},
            {"name": "x", "namespace": "ns"},
            id="other-namespace",
        ),
    ],
)
def test_bind_records_binding(the_pod: dict[str, Any], metadata: dict[str, Any]) -> None:
    state = CycleState()
    assert default_binder.recorded_binding(state) is None
    status = default_binder.new({}, object()).bind(state, the_pod, "n7")
    assert status.is_success()
    assert default_binder.recorded_binding(state) == {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n7"},
    }
