"""The node IPAM controller: NodeCidrs' bookkeeping (pure), and the controller against the real API
server in process (nodes get, keep and release their podCIDRs; problems become Events)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.client.errors import ApiError
from cluster.controllers.nodeipam import (
    CIDR_ASSIGNMENT_FAILED,
    CIDR_NOT_AVAILABLE,
    NodeCidrs,
    NodeIpamController,
    mask_sizes,
    pod_cidrs_of,
)
from cluster.controllers.registry import CONTROLLERS, enabled
from cluster.controllers.runtime import ControllerContext, ControllerOptions, SharedInformers
from cluster.machinery.cidrset import CidrSetFull, parse_cluster_cidrs
from cluster.machinery.times import SystemClock
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeRecorder
from tests.cluster.controllers.local_apiserver import RunningController, local_apiserver


def cidrs(value: str, *masks: int) -> NodeCidrs:
    return NodeCidrs(parse_cluster_cidrs(value), list(masks))


def strs(nets: Any) -> list[str]:
    return [str(n) for n in nets]


# -- NodeCidrs (pure) ---------------------------------------------------------------------------------


def test_assign_skips_what_nodes_carry_and_is_idempotent() -> None:
    book = cidrs("10.0.0.0/22", 24)
    assert book.observe("old", ["10.0.0.0/24"]) == []
    assert strs(book.assign("new")) == ["10.0.1.0/24"]
    assert strs(book.assign("new")) == ["10.0.1.0/24"]  # a retry gets the same one
    assert strs(book.assign("other")) == ["10.0.2.0/24"]


def test_forget_releases() -> None:
    book = cidrs("10.0.0.0/23", 24)
    book.assign("a")
    book.assign("b")
    with pytest.raises(CidrSetFull):
        book.assign("c")
    book.forget("a")
    assert strs(book.assign("c")) == ["10.0.0.0/24"]


@pytest.mark.parametrize(
    ("carried", "problem"),
    [
        pytest.param(
            ["192.168.0.0/24"], "podCIDR 192.168.0.0/24 is outside the cluster CIDR 10.0.0.0/22", id="out"
        ),
        pytest.param(
            ["fd00::/64"], "podCIDR fd00::/64 is outside the cluster CIDR 10.0.0.0/22", id="other-family"
        ),
        pytest.param(["10.0.1.0/24"], "podCIDR 10.0.1.0/24 overlaps the podCIDR of node a", id="clash"),
        pytest.param(
            ["10.0.0.0/22"], "podCIDR 10.0.0.0/22 overlaps the podCIDR of node a", id="clash-supernet"
        ),
        pytest.param(["nonsense"], "podCIDR 'nonsense' is not a valid CIDR", id="invalid"),
    ],
)
def test_observe_reports_problems_once(carried: list[str], problem: str) -> None:
    book = cidrs("10.0.0.0/22", 24)
    assert book.observe("a", ["10.0.1.0/24"]) == []
    assert book.observe("b", carried) == [problem]
    assert book.observe("b", carried) == []  # the same state is not reported again
    assert "b" not in book.held  # a refused CIDR is not held: forgetting b frees nothing of a's
    book.forget("b")
    assert book.holder_of(ipaddress.ip_network("10.0.1.0/24")) == "a"


def test_dual_stack_assigns_one_per_family_and_rolls_back_when_one_is_full() -> None:
    book = cidrs("10.0.0.0/22,fd00:10::/63", 24, 64)
    assert strs(book.assign("a")) == ["10.0.0.0/24", "fd00:10::/64"]
    assert strs(book.assign("b")) == ["10.0.1.0/24", "fd00:10:0:1::/64"]
    with pytest.raises(CidrSetFull):
        book.assign("c")  # IPv6 is full: the IPv4 subnet taken first is given back
    assert [s.used for s in book.sets] == [2, 2]
    book.forget("a")
    # the rotation moved past the IPv4 subnet given back (as kube's cidrset): 10.0.3.0, not 10.0.2.0
    assert strs(book.assign("c")) == ["10.0.3.0/24", "fd00:10::/64"]


@pytest.mark.parametrize(
    ("cluster", "extra", "expected"),
    [
        pytest.param("10.0.0.0/8", {}, [24], id="ipv4-default"),
        pytest.param("fd00::/48", {}, [64], id="ipv6-default"),
        pytest.param("10.0.0.0/8", {"node_cidr_mask_size": 20}, [20], id="single-stack-size"),
        pytest.param(
            "10.0.0.0/8", {"node_cidr_mask_size_ipv4": 22, "node_cidr_mask_size": 20}, [22], id="family-wins"
        ),
        pytest.param("10.0.0.0/8,fd00::/48", {"node_cidr_mask_size": 20}, [24, 64], id="dual-ignores-single"),
        pytest.param(
            "10.0.0.0/8,fd00::/48", {"node_cidr_mask_size_ipv6": 56}, [24, 56], id="dual-per-family"
        ),
    ],
)
def test_mask_sizes(cluster: str, extra: dict[str, Any], expected: list[int]) -> None:
    assert mask_sizes(parse_cluster_cidrs(cluster), extra) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, [], id="none"),
        pytest.param({"podCIDR": "10.0.0.0/24"}, ["10.0.0.0/24"], id="single-field-only"),
        pytest.param({"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24", "fd00::/64"]},
                     ["10.0.0.0/24", "fd00::/64"], id="list-wins"),
    ],
)  # fmt: skip
def test_pod_cidrs_of(spec: dict[str, Any], expected: list[str]) -> None:
    assert pod_cidrs_of({"metadata": {"name": "n"}, "spec": spec}) == expected


def test_registered_and_enabled_by_default() -> None:
    assert CONTROLLERS["node-ipam-controller"] is NodeIpamController
    assert "node-ipam-controller" in enabled(["*"])
    assert "node-ipam-controller" not in enabled(["*", "-node-ipam-controller"])


# -- the controller against the real API server (in process, over HTTP, no Ray) -----------------------


def node(name: str, pod_cidr: str = "") -> dict[str, Any]:
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


async def eventually(probe: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``probe`` (sync or async) until it returns something truthy; fail naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Running(RunningController):
    """A NodeIpamController on shared informers, started as the manager starts it."""

    def __init__(self, client: Any, cluster_cidr: str) -> None:
        super().__init__(client, NodeIpamController, {"cluster_cidr": cluster_cidr})

    def events(self, reason: str) -> list[tuple[str, str]]:
        return [(key, message) for _, r, message, key in self.recorder.events if r == reason]


async def pod_cidrs(client: Any, name: str) -> list[str]:
    return pod_cidrs_of(await client.get("v1", "nodes", name))


def test_nodes_get_keep_and_release_pod_cidrs() -> None:
    asyncio.run(_lifecycle())


async def _lifecycle() -> None:
    async with local_apiserver() as client:
        # "b" carries a CIDR from before this controller started (a restart): it must be respected.
        await client.create("v1", "nodes", node("b", "10.0.0.0/24"))
        await client.create("v1", "nodes", node("a"))
        async with Running(client, "10.0.0.0/23") as running:
            got = await eventually(lambda: pod_cidrs(client, "a"), "a's podCIDR")
            assert got == ["10.0.1.0/24"]
            fetched = await client.get("v1", "nodes", "a")
            assert fetched["spec"]["podCIDR"] == "10.0.1.0/24"

            await client.create("v1", "nodes", node("c"))  # nothing left
            await eventually(lambda: running.events(CIDR_NOT_AVAILABLE), "CIDRNotAvailable")
            assert running.events(CIDR_NOT_AVAILABLE) == [("c", "no podCIDR left in 10.0.0.0/23")]
            assert await pod_cidrs(client, "c") == []

            await client.delete("v1", "nodes", "b")  # b's CIDR is released and goes to c
            assert await eventually(lambda: pod_cidrs(client, "c"), "c's podCIDR") == ["10.0.0.0/24"]

            await client.create("v1", "nodes", node("far", "192.168.7.0/24"))
            await client.create("v1", "nodes", node("twin", "10.0.1.0/24"))
            await eventually(lambda: len(running.events(CIDR_NOT_AVAILABLE)) == 3, "two more events")
            assert sorted(running.events(CIDR_NOT_AVAILABLE)[1:]) == [
                ("far", "podCIDR 192.168.7.0/24 is outside the cluster CIDR 10.0.0.0/23"),
                ("twin", "podCIDR 10.0.1.0/24 overlaps the podCIDR of node a"),
            ]
            assert await pod_cidrs(client, "a") == ["10.0.1.0/24"]  # untouched

        # A new controller (a restart) finds every CIDR taken again: a new node waits, none is reused.
        await client.delete("v1", "nodes", "twin")
        await client.create("v1", "nodes", node("d"))
        async with Running(client, "10.0.0.0/23") as again:
            await eventually(lambda: again.events(CIDR_NOT_AVAILABLE), "CIDRNotAvailable after restart")
            assert ("d", "no podCIDR left in 10.0.0.0/23") in again.events(CIDR_NOT_AVAILABLE)
            assert await pod_cidrs(client, "d") == []


def test_the_api_server_refuses_changing_a_pod_cidr() -> None:
    asyncio.run(_immutable())


async def _immutable() -> None:
    async with local_apiserver() as client:
        await client.create("v1", "nodes", node("a"))
        await client.patch(
            "v1", "nodes", "a", {"spec": {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"]}}
        )
        with pytest.raises(ApiError) as refused:
            await client.patch(
                "v1", "nodes", "a", {"spec": {"podCIDR": "10.0.1.0/24", "podCIDRs": ["10.0.1.0/24"]}}
            )
        assert refused.value.status == 422
        assert 'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid' in str(
            refused.value
        )


# -- failures of the write (fake client) ------------------------------------------------------------


class FailingPatches(FakeClient):
    """Every patch fails with ``status``; ``then`` (optional) is applied to the node on the first GET
    after a failure, standing in for another writer."""

    def __init__(self, status: int, then: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.status = status
        self.then = then
        self.patches = 0

    async def patch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.patches += 1
        raise ApiError(self.status, "Conflict" if self.status == 409 else "InternalError", "nope")

    async def get(
        self, group_version: str, plural: str, name: str, *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        obj = await super().get(group_version, plural, name, *args, **kwargs)
        if self.then is not None and self.patches:
            obj["spec"] = dict(self.then)
        return obj


def _controller(client: FakeClient) -> tuple[NodeIpamController, FakeRecorder]:
    recorder = FakeRecorder()
    informers = SharedInformers(client)  # type: ignore[arg-type]
    options = ControllerOptions(extra={"cluster_cidr": "10.0.0.0/22"})
    ctx = ControllerContext(client, informers, SystemClock(), lambda _: recorder, options)  # type: ignore[arg-type]
    return NodeIpamController(ctx), recorder


def test_a_patch_that_keeps_failing_releases_and_reports() -> None:
    async def run() -> None:
        client = FailingPatches(500)
        await client.create("v1", "nodes", node("a"))
        controller, recorder = _controller(client)
        controller.nodes.upsert(await client.get("v1", "nodes", "a"))
        with pytest.raises(ApiError):
            await controller.reconcile("a")
        assert client.patches == 3
        assert recorder.reasons() == [CIDR_ASSIGNMENT_FAILED]
        assert "a" not in controller.cidrs.held and controller.cidrs.sets[0].used == 0

    asyncio.run(run())


def test_a_node_that_got_cidrs_meanwhile_keeps_them() -> None:
    async def run() -> None:
        client = FailingPatches(409, then={"podCIDR": "10.0.3.0/24", "podCIDRs": ["10.0.3.0/24"]})
        await client.create("v1", "nodes", node("a"))
        controller, recorder = _controller(client)
        controller.nodes.upsert(await client.get("v1", "nodes", "a"))
        assert await controller.reconcile("a") is None
        assert client.patches == 1
        assert recorder.events == []
        assert strs(controller.cidrs.held["a"]) == ["10.0.3.0/24"]  # theirs held, ours (10.0.0.0/24) freed
        assert controller.cidrs.sets[0].used == 1

    asyncio.run(run())


# -- NodeCidrs under any sequence of events (hypothesis) -------------------------------------------------

_events = st.lists(
    st.tuples(
        st.sampled_from(["assign", "observe", "forget"]),
        st.sampled_from(["a", "b", "c", "d", "e", "f"]),
        st.sampled_from(
            ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/23", "10.0.3.0/24", "10.1.0.0/24", "10.0.0.0/22"]
        ),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events=_events)
def test_no_two_nodes_ever_hold_overlapping_cidrs(events: list[tuple[str, str, str]]) -> None:
    book = cidrs("10.0.0.0/22", 24)
    for op, name, carried in events:
        if op == "assign":
            try:
                book.assign(name)
            except CidrSetFull:
                assert book.sets[0].used == book.sets[0].max_cidrs  # full only when really full
        elif op == "observe":
            book.observe(name, [carried])
        else:
            book.forget(name)
        held = [(n, c) for n, cs in book.held.items() for c in cs]
        for i, (n1, c1) in enumerate(held):
            for n2, c2 in held[i + 1 :]:
                assert not c1.overlaps(c2), (n1, c1, n2, c2)
        covered = sum(2 ** (24 - c.prefixlen) if c.prefixlen <= 24 else 1 for _, c in held)
        assert book.sets[0].used == covered  # the set's count agrees with what the nodes hold
