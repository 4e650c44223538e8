"""The bridge plugin with an API server: the podCIDR comes from the Node, the other nodes from the
Node list, and (vxlan) each node publishes its VTEP MAC in an annotation that the others use.

The real API server runs in this process on the simulated underlay's root address; each node's
plugin runs as ``python -m netplugins.bridge --kubeconfig`` inside its node namespace, on two
routed segments (no shared L2: only the VXLAN overlay connects the pods)."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from aiohttp.test_utils import TestServer

from cluster.apiserver.server import ApiServer
from cluster.client.rest import ApiClient
from netplugins.bridge.topology import VTEP_MAC_ANNOTATION
from netplugins.cni.client import CNIClient
from netplugins.cni.types import NetRequest, PluginNotAvailable, TryAgainLater
from netplugins.simnet import SimulatedNodes
from tests.capabilities import needs, no_netns
from tests.cluster.controllers.local_apiserver import WatchableStore
from tests.netplugins.bridge.support import netns_path, pod_netns, tcp_client, tcp_server

pytestmark = needs("netns", no_netns())

REPO = Path(__file__).resolve().parents[3]


@asynccontextmanager
async def apiserver_on(host: str) -> AsyncIterator[ApiClient]:
    server = TestServer(ApiServer(WatchableStore()).app(insecure_local=True), host=host)  # type: ignore[arg-type]
    await server.start_server()
    client = ApiClient(str(server.make_url("")))
    try:
        yield client
    finally:
        await client.close()
        await server.close()


def kubeconfig(path: Path, server: str) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "contexts": [{"name": "c", "context": {"cluster": "c"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(doc))
    return str(path)


async def eventually(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        try:
            last = probe()
            if asyncio.iscoroutine(last):
                last = await last
        except Exception as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def ready(cni: CNIClient) -> bool:
    await cni.status()
    return True


def request(ns: str) -> NetRequest:
    return NetRequest(
        secrets.token_hex(16), netns_path(ns), args={"K8S_POD_NAMESPACE": "t", "K8S_POD_NAME": ns}
    )


def test_vxlan_nodes_from_the_api_server(tmp_path: Path) -> None:
    with SimulatedNodes(segments=[0, 1]) as sim:
        asyncio.run(_scenario(sim, tmp_path))


async def _scenario(sim: SimulatedNodes, tmp: Path) -> None:
    async with apiserver_on(sim.head_ip) as api:
        config = kubeconfig(tmp / "kubeconfig", api.server)
        names = [f"node-{n.index}" for n in sim.nodes]
        for name, n in zip(names, sim.nodes, strict=True):
            await api.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
            status = {"status": {"addresses": [{"type": "InternalIP", "address": n.ip}]}}
            await api.patch("v1", "nodes", name, status, subresource="status")
        procs = []
        try:
            for name, n in zip(names, sim.nodes, strict=True):
                argv = [
                    sys.executable, "-m", "netplugins.bridge", "--socket", str(tmp / f"{name}.sock"),
                    "--root", str(tmp / f"state-{name}"), "--node", name, "--kubeconfig", config,
                    "--backend", "vxlan", "--bridge", "rkbr0", "--resync", "0.3", "--purge-on-exit",
                ]  # fmt: skip
                log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
                proc = sim.popen(n, argv, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO)
                procs.append(proc)
                assert proc.stdout is not None
                line = await asyncio.to_thread(proc.stdout.readline)
                assert line.strip().startswith("ready"), (tmp / f"{name}.log").read_text()
            await _with_plugins(sim, api, names, tmp)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                await asyncio.to_thread(proc.wait, 30)
        assert [p.returncode for p in procs] == [0, 0]
        # purge took our annotation off and removed the VXLAN device
        node = await api.get("v1", "nodes", names[0])  # (node-1 was deleted)
        assert VTEP_MAC_ANNOTATION not in (node["metadata"].get("annotations") or {})
        for n in sim.nodes:
            assert "rkvx1" not in sim.exec(n, ["ip", "link"]).stdout


async def _with_plugins(sim: SimulatedNodes, api: ApiClient, names: list[str], tmp: Path) -> None:
    async with (
        CNIClient(str(tmp / f"{names[0]}.sock")) as cni_a,
        CNIClient(str(tmp / f"{names[1]}.sock")) as cni_b,
    ):
        with pod_netns(2) as (pod_a, pod_b):
            # no podCIDR on the Node yet: not ready, and ADD asks to retry
            with pytest.raises(PluginNotAvailable, match="podCIDR"):
                await cni_a.status()
            with pytest.raises(TryAgainLater):
                await cni_a.add(request(pod_a))
            for i, name in enumerate(names):  # what the node IPAM controller does
                cidr = f"10.244.{i + 1}.0/24"
                await api.patch("v1", "nodes", name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
            await eventually(lambda: ready(cni_a), "node-0 ready")
            await eventually(lambda: ready(cni_b), "node-1 ready")

            # each node publishes its VXLAN device's real MAC (the device follows readiness: the
            # podCIDR is learnt first, then the node is set up)
            for name, n in zip(names, sim.nodes, strict=True):

                def device(n: Any = n) -> dict[str, Any] | None:
                    out = sim.exec(n, ["ip", "-j", "link", "show", "rkvx1"]).stdout
                    return json.loads(out)[0] if out.strip() else None

                dev = await eventually(device, f"{name}'s VXLAN device")

                async def published(name: str = name) -> str:
                    node = await api.get("v1", "nodes", name)
                    return str((node["metadata"].get("annotations") or {}).get(VTEP_MAC_ANNOTATION, ""))

                assert await eventually(published, f"{name}'s VTEP MAC") == dev["address"]
            # node-0 learnt node-1's MAC from the annotation: neighbour and fdb entries
            mac_b = json.loads(sim.exec(sim.nodes[1], ["ip", "-j", "link", "show", "rkvx1"]).stdout)[0][
                "address"
            ]
            await eventually(
                lambda: mac_b in sim.exec(sim.nodes[0], ["bridge", "fdb", "show", "dev", "rkvx1"]).stdout,
                "node-0's fdb entry for node-1",
            )

            req_a, req_b = request(pod_a), request(pod_b)
            ip_a = (await cni_a.add(req_a)).pod_ips()[0]
            ip_b = (await cni_b.add(req_b)).pod_ips()[0]
            try:
                with tcp_server(pod_b, "0.0.0.0", 7200):
                    seen = await asyncio.to_thread(tcp_client, pod_a, ip_b, 7200)
                assert seen == ip_a
            finally:
                await cni_a.delete(req_a)
                await cni_b.delete(req_b)

    # node-1 leaves the cluster: node-0 drops its route, neighbour and fdb entry, and nothing else
    node_a = sim.nodes[0]
    foreign = ["10.99.0.0/24", "via", str(sim.segments[0].gateway.ip)]  # someone else's route
    assert sim.exec(node_a, ["ip", "route", "add", *foreign]).returncode == 0
    await api.delete("v1", "nodes", names[1])

    def overlay_of_a() -> str:
        run = lambda *a: sim.exec(node_a, list(a)).stdout  # noqa: E731
        return (
            run("ip", "route")
            + run("ip", "neigh", "show", "dev", "rkvx1")
            + run("bridge", "fdb", "show", "dev", "rkvx1")
        )

    await eventually(
        lambda: "10.244.2." not in overlay_of_a() and mac_b not in overlay_of_a(), "node-1 forgotten"
    )
    assert "10.99.0.0/24" in overlay_of_a()
