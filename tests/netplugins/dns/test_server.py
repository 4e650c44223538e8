"""netplugins.dns.server over real UDP and TCP sockets on 127.0.0.1, with dnslib as the client and
another DnsServer (zone ``upstream.test``) as the node's upstream resolver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from netplugins.dns.records import DnsIndex, DnsOptions
from netplugins.dns.server import DnsServer, parse_upstream, upstreams_from_resolv_conf


def service(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def headless_slice(name: str, count: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{name}-a",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "endpoints": [{"addresses": [f"10.244.{i // 250}.{i % 250 + 1}"]} for i in range(count)],
        "ports": [],
    }


CLUSTER = DnsIndex.build(
    [
        service("kubernetes", clusterIP="10.96.0.1"),
        service("many", clusterIP="None"),
        service("ext", type="ExternalName", externalName="web.default.svc.upstream.test"),
    ],
    [headless_slice("many", 60)],
)
UPSTREAM = DnsIndex.build(
    [service("web", clusterIP="192.0.2.80"), service("big", clusterIP="None")],
    [headless_slice("big", 60)],
    options=DnsOptions(zone="upstream.test"),
)


Scenario = Callable[[DnsServer], Awaitable[None]]


def with_servers(scenario: Scenario) -> None:
    """Run ``scenario(cluster)`` with the cluster server forwarding to the upstream server."""

    async def main() -> None:
        upstream = DnsServer(UPSTREAM)
        up_port = await upstream.start("127.0.0.1")
        cluster = DnsServer(CLUSTER, [f"127.0.0.1:{up_port}"])
        await cluster.start("127.0.0.1")
        try:
            await scenario(cluster)
        finally:
            await cluster.close()
            await upstream.close()

    asyncio.run(main())


async def ask(
    server: DnsServer, name: str, qtype: str = "A", *, tcp: bool = False, edns: int = 0
) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    if edns:
        query.add_ar(EDNS0(udp_len=edns))
    raw = await asyncio.to_thread(query.send, "127.0.0.1", server.address[1], tcp=tcp, timeout=5)
    reply = DNSRecord.parse(raw)
    assert reply.header.id == query.header.id
    return reply


def values(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_cluster_name_answered_authoritatively(tcp: bool) -> None:
    async def scenario(cluster: DnsServer) -> None:
        reply = await ask(cluster, "kubernetes.default.svc.cluster.local", tcp=tcp)
        assert (reply.header.rcode, reply.header.aa, values(reply)) == (RCODE.NOERROR, 1, ["10.96.0.1"])
        assert reply.rr[0].ttl == 30

    with_servers(scenario)


def test_nxdomain_and_nodata() -> None:
    async def scenario(cluster: DnsServer) -> None:
        nx = await ask(cluster, "nope.default.svc.cluster.local")
        assert nx.header.rcode == RCODE.NXDOMAIN and not nx.rr
        assert [QTYPE.get(rr.rtype) for rr in nx.auth] == ["SOA"]
        nodata = await ask(cluster, "kubernetes.default.svc.cluster.local", "AAAA")
        assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr

    with_servers(scenario)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_other_names_forwarded_upstream(tcp: bool) -> None:
    async def scenario(cluster: DnsServer) -> None:
        reply = await ask(cluster, "web.default.svc.upstream.test", tcp=tcp)
        assert (reply.header.rcode, values(reply)) == (RCODE.NOERROR, ["192.0.2.80"])
        missing = await ask(cluster, "nope.default.svc.upstream.test", tcp=tcp)
        assert missing.header.rcode == RCODE.NXDOMAIN  # the upstream's NXDOMAIN, relayed

    with_servers(scenario)


def test_big_answer_truncated_over_udp_whole_over_tcp_or_edns() -> None:
    async def scenario(cluster: DnsServer) -> None:
        udp = await ask(cluster, "many.default.svc.cluster.local")
        assert udp.header.tc == 1 and not udp.rr and str(udp.q.qname) == "many.default.svc.cluster.local."
        tcp = await ask(cluster, "many.default.svc.cluster.local", tcp=True)
        assert tcp.header.tc == 0 and len(tcp.rr) == 60
        edns = await ask(cluster, "many.default.svc.cluster.local", edns=4096)
        assert edns.header.tc == 0 and len(edns.rr) == 60

    with_servers(scenario)


def test_forwarded_truncation_relayed_then_tcp() -> None:
    async def scenario(cluster: DnsServer) -> None:
        udp = await ask(cluster, "big.default.svc.upstream.test")
        assert udp.header.tc == 1 and not udp.rr
        tcp = await ask(cluster, "big.default.svc.upstream.test", tcp=True)
        assert len(tcp.rr) == 60

    with_servers(scenario)


def test_externalname_cname_followed_upstream() -> None:
    async def scenario(cluster: DnsServer) -> None:
        reply = await ask(cluster, "ext.default.svc.cluster.local")
        assert [(QTYPE.get(rr.rtype), str(rr.rdata)) for rr in reply.rr] == [
            ("CNAME", "web.default.svc.upstream.test."),
            ("A", "192.0.2.80"),
        ]

    with_servers(scenario)


def test_index_replaced_is_seen() -> None:
    async def scenario(cluster: DnsServer) -> None:
        cluster.index = DnsIndex.build([service("kubernetes", clusterIP="10.96.0.2")], [])
        assert values(await ask(cluster, "kubernetes.default.svc.cluster.local")) == ["10.96.0.2"]

    with_servers(scenario)


def test_no_upstream_answering_is_servfail() -> None:
    asyncio.run(_no_upstream())


async def _no_upstream() -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: ICMP port unreachable
    server = DnsServer(CLUSTER, [f"127.0.0.1:{port}"], forward_timeout=1)
    await server.start("127.0.0.1")
    try:
        assert (await ask(server, "example.org")).header.rcode == RCODE.SERVFAIL
    finally:
        await server.close()


def test_malformed_query_gets_formerr() -> None:
    async def scenario(cluster: DnsServer) -> None:
        garbage = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff"
        reply = await cluster.handle(garbage, tcp=False)
        assert reply is not None and reply[:2] == b"\x12\x34" and reply[3] & 0x0F == RCODE.FORMERR
        assert await cluster.handle(b"\x00", tcp=False) is None

    with_servers(scenario)


def test_upstreams_from_resolv_conf() -> None:
    text = "nameserver 10.96.0.10\nnameserver 192.0.2.53 # corp\nnameserver fe80::1%eth0\nnameserver bogus\n"
    assert upstreams_from_resolv_conf(text, skip=["10.96.0.10"]) == ["192.0.2.53", "fe80::1"]
    assert [parse_upstream(u) for u in ("1.2.3.4", "1.2.3.4:5353", "[fd00::1]:54", "fd00::1")] == [
        ("1.2.3.4", 53),
        ("1.2.3.4", 5353),
        ("fd00::1", 54),
        ("fd00::1", 53),
    ]
