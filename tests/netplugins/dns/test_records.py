"""netplugins.dns.records: the Kubernetes DNS spec's records, NXDOMAIN vs NODATA, as a table."""

from __future__ import annotations

from typing import Any

import pytest

from netplugins.dns.records import (
    NOERROR,
    NXDOMAIN,
    SCHEMA_VERSION,
    DnsIndex,
    DnsOptions,
    Srv,
)


def service(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint(ip: str, ready: bool | None = True, hostname: str | None = None) -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [ip]}
    if ready is not None:
        ep["conditions"] = {"ready": ready}
    if hostname:
        ep["hostname"] = hostname
    return ep


def eps(
    svc: str, name: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]], ns: str = "default"
):
    return {
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


SERVICES = [
    service(
        "kubernetes",
        clusterIP="10.96.0.1",
        clusterIPs=["10.96.0.1"],
        ports=[{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
    ),
    service(
        "web",
        "shop",
        clusterIP="10.96.3.4",
        ports=[{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}],
    ),
    service("dual", clusterIP="10.96.0.7", clusterIPs=["10.96.0.7", "fd00::7"]),
    service("db", clusterIP="None", ports=[{"name": "pg", "port": 5432}]),
    service("empty", clusterIP="None"),
    service("ext", type="ExternalName", externalName="Www.Example.COM."),
]
SLICES = [
    eps(
        "db",
        "db-a",
        [
            endpoint("10.244.1.5", hostname="db-0"),
            endpoint("10.244.2.6", hostname="db-1"),
            endpoint("10.244.3.7", ready=None),  # unset: ready
            endpoint("10.244.4.8", ready=False, hostname="db-3"),
        ],
        [{"name": "pg", "port": 15432, "protocol": "TCP"}],
    ),
    eps("empty", "empty-a", [endpoint("10.244.9.9", ready=False)], []),
    eps("web", "web-a", [endpoint("10.244.5.5")], [{"name": "", "port": 8080}]),  # not headless: unused
]
PODS = [{"metadata": {"name": "p", "namespace": "shop"}, "status": {"podIP": "10.244.7.7"}}]

INDEX = DnsIndex.build(SERVICES, SLICES, PODS)
Z = "cluster.local"


def data(qname: str, qtype: str, index: DnsIndex = INDEX) -> tuple[int, list[Any]] | None:
    answer = index.lookup(qname, qtype)
    if answer is None:
        return None
    return answer.rcode, sorted((rr.data for rr in answer.answers), key=str)


@pytest.mark.parametrize(
    "qname,qtype,want",
    [
        pytest.param(f"kubernetes.default.svc.{Z}", "A", (NOERROR, ["10.96.0.1"]), id="clusterip-a"),
        pytest.param(f"KUBERNETES.Default.svc.{Z}.", "A", (NOERROR, ["10.96.0.1"]), id="case-and-dot"),
        pytest.param(f"kubernetes.default.svc.{Z}", "AAAA", (NOERROR, []), id="clusterip-aaaa-nodata"),
        pytest.param(f"kubernetes.default.svc.{Z}", "MX", (NOERROR, []), id="other-type-nodata"),
        pytest.param(f"dual.default.svc.{Z}", "AAAA", (NOERROR, ["fd00::7"]), id="dualstack-aaaa"),
        pytest.param(f"dual.default.svc.{Z}", "A", (NOERROR, ["10.96.0.7"]), id="dualstack-a"),
        pytest.param(f"web.shop.svc.{Z}", "A", (NOERROR, ["10.96.3.4"]), id="other-namespace"),
        pytest.param(f"web.default.svc.{Z}", "A", (NXDOMAIN, []), id="wrong-namespace-nxdomain"),
        pytest.param(f"nope.default.svc.{Z}", "A", (NXDOMAIN, []), id="unknown-service"),
        pytest.param(f"web.shop.svc.{Z}.default.svc.{Z}", "A", (NXDOMAIN, []), id="search-path-expansion"),
        pytest.param(
            f"_https._tcp.kubernetes.default.svc.{Z}",
            "SRV",
            (NOERROR, [Srv(0, 100, 443, f"kubernetes.default.svc.{Z}")]),
            id="clusterip-srv-service-port",
        ),
        pytest.param(
            f"_dns._udp.web.shop.svc.{Z}",
            "SRV",
            (NOERROR, [Srv(0, 100, 53, f"web.shop.svc.{Z}")]),
            id="srv-udp",
        ),
        pytest.param(f"_dns._tcp.web.shop.svc.{Z}", "SRV", (NXDOMAIN, []), id="srv-wrong-proto"),
        pytest.param(f"_https._tcp.kubernetes.default.svc.{Z}", "A", (NOERROR, []), id="srv-name-a-nodata"),
        pytest.param(f"_tcp.kubernetes.default.svc.{Z}", "SRV", (NOERROR, []), id="empty-non-terminal"),
        pytest.param(f"shop.svc.{Z}", "A", (NOERROR, []), id="namespace-ent"),
        pytest.param(f"svc.{Z}", "A", (NOERROR, []), id="svc-ent"),
        pytest.param(
            f"db.default.svc.{Z}",
            "A",
            (NOERROR, ["10.244.1.5", "10.244.2.6", "10.244.3.7"]),
            id="headless-ready",
        ),
        pytest.param(f"empty.default.svc.{Z}", "A", (NOERROR, []), id="headless-no-ready-nodata"),
        pytest.param(f"db-0.db.default.svc.{Z}", "A", (NOERROR, ["10.244.1.5"]), id="hostname-a"),
        pytest.param(f"10-244-3-7.db.default.svc.{Z}", "A", (NOERROR, ["10.244.3.7"]), id="dashed-hostname"),
        pytest.param(f"db-3.db.default.svc.{Z}", "A", (NXDOMAIN, []), id="not-ready-hostname"),
        pytest.param(
            f"_pg._tcp.db.default.svc.{Z}",
            "SRV",
            (
                NOERROR,
                [
                    Srv(0, 33, 15432, f"10-244-3-7.db.default.svc.{Z}"),
                    Srv(0, 33, 15432, f"db-0.db.default.svc.{Z}"),
                    Srv(0, 33, 15432, f"db-1.db.default.svc.{Z}"),
                ],
            ),
            id="headless-srv-per-endpoint",
        ),
        pytest.param(f"ext.default.svc.{Z}", "A", (NOERROR, ["www.example.com"]), id="externalname-cname"),
        pytest.param(
            f"ext.default.svc.{Z}", "CNAME", (NOERROR, ["www.example.com"]), id="externalname-q-cname"
        ),
        pytest.param(f"10-244-7-7.shop.pod.{Z}", "A", (NOERROR, ["10.244.7.7"]), id="pod-a"),
        pytest.param(f"1-2-3-4.any.pod.{Z}", "A", (NOERROR, ["1.2.3.4"]), id="pod-insecure-any"),
        pytest.param(f"1-2-3-4.any.pod.{Z}", "AAAA", (NOERROR, []), id="pod-aaaa-nodata"),
        pytest.param(f"x-y.any.pod.{Z}", "A", (NXDOMAIN, []), id="pod-not-an-ip"),
        pytest.param(f"dns-version.{Z}", "TXT", (NOERROR, [SCHEMA_VERSION]), id="schema-version"),
        pytest.param(f"dns-version.{Z}", "A", (NOERROR, []), id="schema-version-a-nodata"),
        pytest.param(
            "1.0.96.10.in-addr.arpa", "PTR", (NOERROR, [f"kubernetes.default.svc.{Z}"]), id="ptr-clusterip"
        ),
        pytest.param(
            "5.1.244.10.in-addr.arpa", "PTR", (NOERROR, [f"db-0.db.default.svc.{Z}"]), id="ptr-endpoint"
        ),
        pytest.param("9.9.9.9.in-addr.arpa", "PTR", None, id="ptr-unknown-forwarded"),
        pytest.param("example.com", "A", None, id="outside-zone-forwarded"),
        pytest.param("local", "A", None, id="parent-of-zone-forwarded"),
    ],
)
def test_lookup(qname: str, qtype: str, want: tuple[int, list[Any]] | None) -> None:
    assert data(qname, qtype) == want


def test_externalname_into_the_zone_is_completed() -> None:
    """A CNAME whose target is in the zone comes with the target's records (a stub resolver does not
    chase CNAMEs): through a chain, up to an outside target (forwarded by the server) or a loop."""
    k8s = f"kubernetes.default.svc.{Z}"
    services = [
        *SERVICES,
        service("in", "t", type="ExternalName", externalName=k8s + "."),
        service("chain", "t", type="ExternalName", externalName=f"IN.t.svc.{Z}"),
        service("out", "t", type="ExternalName", externalName=f"ext.default.svc.{Z}"),
        service("gone", "t", type="ExternalName", externalName=f"nope.t.svc.{Z}"),
        service("loop-a", "t", type="ExternalName", externalName=f"loop-b.t.svc.{Z}"),
        service("loop-b", "t", type="ExternalName", externalName=f"loop-a.t.svc.{Z}"),
    ]
    index = DnsIndex.build(services, SLICES)

    def chain(name: str, qtype: str = "A") -> list[tuple[str, str, Any]]:
        answer = index.lookup(f"{name}.t.svc.{Z}", qtype)
        assert answer is not None and answer.rcode == NOERROR
        return [(rr.name, rr.rtype, rr.data) for rr in answer.answers]

    assert chain("in") == [(f"in.t.svc.{Z}", "CNAME", k8s), (k8s, "A", "10.96.0.1")]
    assert chain("in", "AAAA") == [(f"in.t.svc.{Z}", "CNAME", k8s)]  # the target has no AAAA
    assert chain("in", "CNAME") == [(f"in.t.svc.{Z}", "CNAME", k8s)]  # asked for the CNAME itself
    assert chain("chain") == [
        (f"chain.t.svc.{Z}", "CNAME", f"in.t.svc.{Z}"),
        (f"in.t.svc.{Z}", "CNAME", k8s),
        (k8s, "A", "10.96.0.1"),
    ]
    assert chain("out") == [
        (f"out.t.svc.{Z}", "CNAME", f"ext.default.svc.{Z}"),
        (f"ext.default.svc.{Z}", "CNAME", "www.example.com"),  # last: the server forwards it
    ]
    assert chain("gone") == [(f"gone.t.svc.{Z}", "CNAME", f"nope.t.svc.{Z}")]
    assert chain("loop-a") == [
        (f"loop-a.t.svc.{Z}", "CNAME", f"loop-b.t.svc.{Z}"),
        (f"loop-b.t.svc.{Z}", "CNAME", f"loop-a.t.svc.{Z}"),
    ]


def test_negative_answers_carry_the_soa_and_ttl_is_an_option() -> None:
    index = DnsIndex.build(SERVICES, SLICES, options=DnsOptions(ttl=5))
    nx = index.lookup(f"nope.default.svc.{Z}", "A")
    assert nx is not None and [rr.rtype for rr in nx.authority] == ["SOA"]
    ok = index.lookup(f"kubernetes.default.svc.{Z}", "A")
    assert ok is not None and [rr.ttl for rr in ok.answers] == [5]
    assert INDEX.lookup(f"kubernetes.default.svc.{Z}", "A").answers[0].ttl == 30  # type: ignore[union-attr]


def test_srv_answer_adds_the_targets_addresses() -> None:
    answer = INDEX.lookup(f"_pg._tcp.db.default.svc.{Z}", "SRV")
    assert answer is not None
    assert sorted(str(rr.data) for rr in answer.additional) == ["10.244.1.5", "10.244.2.6", "10.244.3.7"]


def test_pods_verified_and_disabled() -> None:
    verified = DnsIndex.build(SERVICES, SLICES, PODS, DnsOptions(pods="verified"))
    assert data(f"10-244-7-7.shop.pod.{Z}", "A", verified) == (NOERROR, ["10.244.7.7"])
    assert data(f"10-244-7-7.default.pod.{Z}", "A", verified) == (NXDOMAIN, [])
    disabled = DnsIndex.build(SERVICES, SLICES, PODS, DnsOptions(pods="disabled"))
    assert data(f"10-244-7-7.shop.pod.{Z}", "A", disabled) == (NXDOMAIN, [])


def test_other_zone() -> None:
    index = DnsIndex.build(SERVICES, SLICES, options=DnsOptions.from_dict({"zone": "Corp.Example."}))
    assert data("kubernetes.default.svc.corp.example", "A", index) == (NOERROR, ["10.96.0.1"])
    assert data(f"kubernetes.default.svc.{Z}", "A", index) is None


def test_ready_endpoint_in_two_slices_counts_once() -> None:
    slices = [eps("db", n, [endpoint("10.244.1.5", hostname="db-0")], []) for n in ("db-a", "db-b")]
    assert data(f"db.default.svc.{Z}", "A", DnsIndex.build(SERVICES, slices)) == (NOERROR, ["10.244.1.5"])


def test_bad_pods_option_refused() -> None:
    with pytest.raises(ValueError):
        DnsOptions.from_dict({"pods": "sometimes"})
