"""The legacy Endpoints object: subsets by resolved ports, ready and not-ready addresses, labels, and
writes only on change."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from cluster.controllers.endpoints import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    EndpointsController,
    desired_subsets,
    endpoints_changes,
)
from cluster.controllers.runtime import ControllerContext, SharedInformers
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder
from tests.cluster.controllers.test_endpointslice import NAMED, NAMED_OTHER, pod, service


def addr(name: str, ip: str, node: str = "n1") -> dict[str, Any]:
    return {
        "ip": ip,
        "nodeName": node,
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": name, "uid": f"uid-{name}"},
    }


HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("svc", "pods", "want"),
    [
        pytest.param(service(), [], [], id="no-pods"),
        pytest.param(
            service(),
            [pod("b", ip="10.0.0.2"), pod("a", ip="10.0.0.1")],
            [{"addresses": [addr("a", "10.0.0.1"), addr("b", "10.0.0.2")], "ports": HTTP}],
            id="sorted-by-ip",
        ),
        pytest.param(
            service(),
            [pod("a"), pod("b", ip="10.0.0.2", ready=False)],
            [
                {
                    "addresses": [addr("a", "10.0.0.1")],
                    "notReadyAddresses": [addr("b", "10.0.0.2")],
                    "ports": HTTP,
                }
            ],
            id="not-ready",
        ),
        pytest.param(
            service(publish=True),
            [pod("b", ip="10.0.0.2", ready=False)],
            [{"addresses": [addr("b", "10.0.0.2")], "ports": HTTP}],
            id="publish-not-ready",
        ),
        pytest.param(service(), [pod("a", deleting=True)], [], id="terminating-left-out"),
        pytest.param(
            service(publish=True),
            [pod("a", deleting=True)],
            [{"addresses": [addr("a", "10.0.0.1")], "ports": HTTP}],
            id="terminating-kept-when-publishing",
        ),
        pytest.param(service(), [pod("a", ip=None), pod("b", phase="Failed")], [], id="no-ip-or-terminal"),
        pytest.param(
            service([{"name": "http", "port": 80, "targetPort": "http"}]),
            [pod("a", ports=NAMED), pod("b", ip="10.0.0.2", ports=NAMED_OTHER), pod("c", ip="10.0.0.3")],
            [
                {"addresses": [addr("a", "10.0.0.1")], "ports": HTTP},
                {
                    "addresses": [addr("b", "10.0.0.2")],
                    "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}],
                },
            ],
            id="named-ports-split-unresolved-dropped",
        ),
        pytest.param(
            service([], clusterIP="None"),
            [pod("a")],
            [{"addresses": [addr("a", "10.0.0.1")]}],
            id="headless-no-ports",
        ),
    ],
)
def test_desired_subsets(svc: dict[str, Any], pods: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert desired_subsets(svc, pods) == want


def test_endpoints_object_and_minimal_writes() -> None:
    svc = service(labels={"team": "a"}, clusterIP="None")
    created = endpoints_changes(svc, [pod("a")], None)
    assert created is not None
    assert created["metadata"] == {
        "name": "web",
        "namespace": "ns",
        "labels": {"team": "a", "service.kubernetes.io/headless": "", MANAGED_BY_LABEL: MANAGED_BY},
    }
    stored = {**created, "metadata": {**created["metadata"], "resourceVersion": "7"}}
    assert endpoints_changes(svc, [pod("a")], stored) is None
    updated = endpoints_changes(svc, [pod("a", ready=False)], stored)
    assert updated is not None
    assert updated["metadata"]["resourceVersion"] == "7"
    assert "addresses" not in updated["subsets"][0] and updated["subsets"][0]["notReadyAddresses"]


class Harness:
    def __init__(self) -> None:
        self.client = FakeClient()
        self.informers = SharedInformers(self.client)  # type: ignore[arg-type]
        ctx = ControllerContext(self.client, self.informers, FakeClock(), lambda _: FakeRecorder())  # type: ignore[arg-type]
        self.controller = EndpointsController(ctx)

    def add(self, plural: str, obj: dict[str, Any]) -> None:
        self.informers.lister("v1", plural).upsert(obj)

    def reconcile(self) -> float | None:
        return asyncio.run(self.controller.reconcile("ns/web"))


def test_controller_create_noop_and_delete_with_service() -> None:
    h = Harness()
    h.add("services", service())
    h.add("pods", pod("a"))
    h.reconcile()
    assert [c[:5] for c in h.client.calls] == [("create", "v1", "endpoints", "ns", "web")]
    stored = h.client.stored("v1", "endpoints", "web", "ns")
    assert stored is not None
    h.add("endpoints", copy.deepcopy(stored))
    h.reconcile()
    assert len(h.client.calls) == 1
    h.informers.lister("v1", "services").remove("ns/web")
    h.reconcile()
    assert [c[0] for c in h.client.calls] == ["create", "delete"]


def test_controller_leaves_selectorless_endpoints() -> None:
    h = Harness()
    svc = service()
    del svc["spec"]["selector"]
    h.add("services", svc)
    h.add(
        "endpoints",
        {"metadata": {"name": "web", "namespace": "ns"}, "subsets": [{"addresses": [{"ip": "1.2.3.4"}]}]},
    )
    h.reconcile()
    assert h.client.calls == []
