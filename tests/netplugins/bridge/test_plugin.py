"""The bridge plugin on one node (the root namespace), driven through its gRPC socket by CNIClient,
with real pod network namespaces and the CNI reference plugins."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import secrets
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from netplugins.bridge import links
from netplugins.bridge.plugin import BridgeNetwork
from netplugins.cni.client import CNIClient
from netplugins.cni.plugin import PluginContext
from netplugins.cni.server import NetworkServer, serve
from netplugins.cni.types import (
    Attachment,
    CNIError,
    NetRequest,
    PluginNotAvailable,
    TryAgainLater,
)
from tests import hostnet
from tests.capabilities import needs, no_netns
from tests.netplugins.bridge.support import (
    free_pod_cidr,
    links_in,
    netns_path,
    pod_netns,
    tcp_client,
    tcp_server,
)

pytestmark = needs("netns", no_netns())


def options(pod_cidr: str | None, bridge: str) -> dict[str, Any]:
    out: dict[str, Any] = {"bridge": bridge, "resync": 0.5}
    if pod_cidr:
        out["pod_cidr"] = pod_cidr
        out["cluster_cidr"] = str(ipaddress.ip_network(pod_cidr).supernet(new_prefix=16))
    return out


Body = Callable[[CNIClient, NetworkServer], Awaitable[None]]


def run_plugin(
    tmp_path: Path, pod_cidr: str | None, body: Body, *, purge: bool = True, bridge: str | None = None
) -> str:
    """Serve a BridgeNetwork (a fresh ``rk<hex>`` bridge unless given), run ``body``, stop it
    (purging, unless told not to); the state is ``tmp_path/state``."""
    bridge = bridge or "rk" + secrets.token_hex(4)
    ctx = PluginContext("node-a", str(tmp_path / "state"), options=options(pod_cidr, bridge))
    socket = str(tmp_path / "cni.sock")

    async def main() -> None:
        server = await serve(BridgeNetwork(ctx), socket)
        try:
            async with CNIClient(socket) as cni:
                await body(cni, server)
        except BaseException:
            await server.plugin.gc([])  # a failed test must not leave pods' veths and rules
            raise
        finally:
            await server.stop(purge=purge)

    asyncio.run(main())
    if purge:
        assert not links.link_exists(bridge), f"purge left bridge {bridge}"
    return bridge


def nat_rules() -> str:
    """portmap's rules (iptables-nft; their comments name the container, ``nft`` prints no comment)."""
    return subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True).stdout


def request(netns: str, cid: str | None = None, **kw: Any) -> NetRequest:
    return NetRequest(
        container_id=cid or secrets.token_hex(16),
        netns=netns_path(netns),
        args={"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": netns},
        **kw,
    )


def test_two_pods_get_distinct_addresses_and_reach_each_other(tmp_path: Path) -> None:
    pod_cidr = free_pod_cidr()

    async def body(cni: CNIClient, server: NetworkServer) -> None:
        await cni.status()
        with pod_netns(2) as (ns1, ns2):
            req1, req2 = request(ns1), request(ns2)
            r1, r2 = await cni.add(req1), await cni.add(req2)
            ip1, ip2 = r1.pod_ips()[0], r2.pod_ips()[0]
            assert ip1 != ip2
            assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(pod_cidr) for ip in (ip1, ip2))
            assert r1.ips[0].gateway == str(ipaddress.ip_network(pod_cidr)[1])
            assert "lo" in links_in(ns1) and "eth0" in links_in(ns1)
            with tcp_server(ns2, "0.0.0.0", 7001):
                seen = await asyncio.to_thread(tcp_client, ns1, ip2, 7001)
            assert seen == ip1  # same bridge: no masquerade, the sender's own address
            await cni.delete(req1)
            await cni.delete(req2)

    run_plugin(tmp_path, pod_cidr, body)


def test_host_port_reaches_the_pod_on_loopback_and_the_node_address(tmp_path: Path) -> None:
    node_ip = links.default_ip()
    assert node_ip, "this test needs a default route (the node address)"

    async def body(cni: CNIClient, server: NetworkServer) -> None:
        with pod_netns(1) as (ns,):
            port = 20000 + secrets.randbelow(20000)
            mapping = {"hostPort": port, "containerPort": 8080, "protocol": "tcp", "hostIP": ""}
            req = request(ns, runtime_config={"portMappings": [mapping]})
            await cni.add(req)
            for host in ("127.0.0.1", node_ip):
                with tcp_server(ns, "0.0.0.0", 8080):
                    seen = await asyncio.to_thread(tcp_client, None, host, port)
                assert seen, f"no answer through {host}:{port}"
            await cni.delete(req)
            assert req.container_id not in nat_rules()

    run_plugin(tmp_path, free_pod_cidr(), body)


def test_del_gc_and_purge_leave_nothing_behind(tmp_path: Path) -> None:
    pod_cidr = free_pod_cidr()
    before = hostnet.snapshot()
    cids = [secrets.token_hex(16) for _ in range(3)]
    state = tmp_path / "state"
    chains: list[str] = []  # portmap's per-pod chains (CNI-DN-<hash>)

    async def body(cni: CNIClient, server: NetworkServer) -> None:
        with pod_netns(3) as names:
            for i, (ns, cid) in enumerate(zip(names, cids, strict=True)):
                mapping = {
                    "hostPort": 30000 + secrets.randbelow(10000) + i,
                    "containerPort": 80,
                    "protocol": "tcp",
                }
                await cni.add(request(ns, cid, runtime_config={"portMappings": [mapping]}))
            rules = nat_rules()
            assert all(cid in rules for cid in cids), "portmap made no rules"
            chains.extend(line.split()[-1] for line in rules.splitlines() if any(c in line for c in cids))
            await cni.delete(request(names[0], cids[0]))  # DEL without prevResult or portMappings
            await cni.delete(request(names[0], cids[0]))  # idempotent
            subprocess.run(["ip", "netns", "del", names[1]], check=True)  # the pod's netns is gone
            await cni.delete(request(names[1], cids[1]))
            await cni.gc([])  # the third: only GC removes it
            rules = nat_rules()
            assert not any(cid in rules or chain in rules for cid in cids for chain in chains)
            held = os.listdir(state / "ipam" / "raykube")
            assert not [f for f in held if f[0].isdigit()], held

    bridge = run_plugin(tmp_path, pod_cidr, body)
    after = hostnet.snapshot()
    cluster = str(ipaddress.ip_network(pod_cidr).supernet(new_prefix=16).network_address)  # forward rules
    assert not os.path.exists(state / "attachments")
    changes = hostnet.diff(before, after, only=[bridge, pod_cidr, cluster, f"rk-{bridge}", *cids, *chains])
    assert changes == []
    # portmap's shared chains are removed by purge when no pod rule is left in them (someone else's
    # may exist before and after; what must not happen is that ours stay)
    added = [c for c in hostnet.diff(before, after) if c.startswith("+ ") and "CNI-HOSTPORT" in c]
    assert added == []


def test_gc_keeps_valid_attachments_and_releases_unknown_reservations(tmp_path: Path) -> None:
    pod_cidr = free_pod_cidr()
    net = ipaddress.ip_network(pod_cidr)

    async def body(cni: CNIClient, server: NetworkServer) -> None:
        with pod_netns(1) as (ns,):
            req = request(ns)
            result = await cni.add(req)
            # An address host-local holds for a container nobody knows (a crash between ADD and the
            # ledger, or a runtime that lost the pod).
            orphan = Path(server.plugin.ctx.root_dir) / "ipam" / "raykube" / str(net[200])
            orphan.write_text("deadbeef\r\neth0")
            await cni.gc([Attachment(req.container_id, "eth0")])
            assert not orphan.exists()
            await cni.check(req)  # the valid one is untouched
            assert result.pod_ips()[0] in [f for f in os.listdir(orphan.parent)]
            await cni.delete(req)

    run_plugin(tmp_path, pod_cidr, body)


def test_check_fails_once_the_veth_is_deleted(tmp_path: Path) -> None:
    async def body(cni: CNIClient, server: NetworkServer) -> None:
        with pod_netns(1) as (ns,):
            req = request(ns)
            await cni.add(req)
            await cni.check(req)
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "del", "eth0"], check=True)
            with pytest.raises(CNIError) as err:
                await cni.check(req)
            assert "eth0" in str(err.value)
            await cni.delete(req)

    run_plugin(tmp_path, free_pod_cidr(), body)


def test_address_exhaustion_is_a_clear_error_and_leaves_no_interface(tmp_path: Path) -> None:
    pod_cidr = free_pod_cidr(prefix=30)  # .1 the gateway, .2 the only pod address

    async def body(cni: CNIClient, server: NetworkServer) -> None:
        with pod_netns(2) as (ns1, ns2):
            first = await cni.add(request(ns1))
            assert first.pod_ips() == [str(ipaddress.ip_network(pod_cidr)[2])]
            with pytest.raises(CNIError) as err:
                await cni.add(request(ns2))
            assert "no IP addresses available" in err.value.msg
            assert links_in(ns2) == ["lo"]
            assert len(server.plugin.ledger.entries()) == 1
            await cni.delete(request(ns1, server.plugin.ledger.entries()[0].container_id))

    run_plugin(tmp_path, pod_cidr, body)


def test_without_pod_cidr_status_is_unavailable_and_add_asks_to_retry(tmp_path: Path) -> None:
    async def body(cni: CNIClient, server: NetworkServer) -> None:
        with pytest.raises(PluginNotAvailable, match="no podCIDR"):
            await cni.status()
        with pod_netns(1) as (ns,):
            with pytest.raises(TryAgainLater):
                await cni.add(request(ns))
            assert links_in(ns) == ["lo"]

    run_plugin(tmp_path, None, body)


def test_a_restarted_plugin_dels_and_gcs_what_the_previous_one_added(tmp_path: Path) -> None:
    pod_cidr = free_pod_cidr()
    with pod_netns(2) as (ns1, ns2):
        req1, req2 = request(ns1), request(ns2)

        async def first(cni: CNIClient, server: NetworkServer) -> None:
            await cni.add(req1)
            await cni.add(req2)

        bridge = run_plugin(tmp_path, pod_cidr, first, purge=False)  # a node agent that died
        assert links.link_exists(bridge)

        async def second(cni: CNIClient, server: NetworkServer) -> None:
            await cni.check(dataclasses.replace(req1, netns=""))  # netns and prevResult from the ledger
            await cni.delete(dataclasses.replace(req1, netns=""))
            assert "eth0" not in links_in(ns1)
            await cni.gc([])
            assert "eth0" not in links_in(ns2)
            assert not [f for f in os.listdir(tmp_path / "state" / "ipam" / "raykube") if f[0].isdigit()]

        run_plugin(tmp_path, pod_cidr, second, bridge=bridge)  # same state directory and bridge
