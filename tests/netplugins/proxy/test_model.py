"""netplugins.proxy.model: Services and EndpointSlices to the ServiceTable."""

from __future__ import annotations

from typing import Any

import pytest

from netplugins.proxy.model import (
    DEFAULT_AFFINITY_TIMEOUT,
    Endpoint,
    ServicePortName,
    build_table,
    select_endpoints,
)


def service(name: str = "web", ns: str = "default", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "clusterIP": "10.96.0.20",
        "clusterIPs": ["10.96.0.20"],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}],
    }
    base.update(spec)
    status = base.pop("status", {})
    return {"metadata": {"name": name, "namespace": ns}, "spec": base, "status": status}


def eps_slice(
    name: str, ports: list[dict[str, Any]], endpoints: list[dict[str, Any]], svc: str = "web"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }


def ep(ip: str, node: str = "n1", **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node, "conditions": conditions}


HTTP = ServicePortName("default", "web", "http", "TCP")


def test_named_target_port_resolves_per_endpoint_slice() -> None:
    slices = [
        eps_slice("a", [{"name": "http", "port": 8080, "protocol": "TCP"}], [ep("10.0.0.2")]),
        eps_slice("b", [{"name": "http", "port": 9090, "protocol": "TCP"}], [ep("10.0.0.3")]),
        eps_slice("other", [{"name": "http", "port": 1, "protocol": "TCP"}], [ep("10.0.0.9")], svc="x"),
    ]
    table = build_table([service()], slices)
    port, endpoints = table[HTTP]
    assert (port.cluster_ips, port.port) == (("10.96.0.20",), 80)
    assert [(e.ip, e.port) for e in endpoints] == [("10.0.0.2", 8080), ("10.0.0.3", 9090)]


def test_slice_port_must_match_name_and_protocol() -> None:
    slices = [eps_slice("a", [{"name": "http", "port": 8080, "protocol": "UDP"}], [ep("10.0.0.2")])]
    assert build_table([service()], slices)[HTTP][1] == ()


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"clusterIP": "None", "clusterIPs": ["None"]}, id="headless"),
        pytest.param({"type": "ExternalName", "externalName": "example.com"}, id="external-name"),
    ],
)
def test_headless_and_external_name_are_skipped(spec: dict[str, Any]) -> None:
    assert build_table([service(**spec)], []) == {}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        pytest.param({}, (True, True, False), id="unset-means-ready"),
        pytest.param({"ready": False}, (False, False, False), id="unready"),
        pytest.param({"ready": False, "serving": True, "terminating": True}, (False, True, True), id="term"),
    ],
)
def test_conditions(conditions: dict[str, bool], expected: tuple[bool, bool, bool]) -> None:
    slices = [eps_slice("a", [{"name": "http", "port": 8080}], [ep("10.0.0.2", **conditions)])]
    (e,) = build_table([service()], slices)[HTTP][1]
    assert (e.ready, e.serving, e.terminating) == expected


def test_duplicate_endpoint_across_slices_prefers_ready() -> None:
    ports = [{"name": "http", "port": 8080}]
    slices = [eps_slice("a", ports, [ep("10.0.0.2", ready=False)]), eps_slice("b", ports, [ep("10.0.0.2")])]
    assert build_table([service()], slices)[HTTP][1] == (Endpoint("10.0.0.2", 8080, "n1"),)


READY = Endpoint("10.0.0.2", 80, "n1")
UNREADY = Endpoint("10.0.0.3", 80, "n1", ready=False, serving=False)
TERMINATING = Endpoint("10.0.0.4", 80, "n2", ready=False, serving=True, terminating=True)
REMOTE = Endpoint("10.0.0.5", 80, "n2")


@pytest.mark.parametrize(
    ("endpoints", "node", "expected"),
    [
        pytest.param((READY, UNREADY, TERMINATING), None, (READY,), id="ready-only"),
        pytest.param((UNREADY, TERMINATING), None, (TERMINATING,), id="terminating-fallback"),
        pytest.param((UNREADY,), None, (), id="none"),
        pytest.param((READY, REMOTE), "n2", (REMOTE,), id="local"),
        pytest.param((READY, TERMINATING), "n2", (TERMINATING,), id="local-fallback"),
        pytest.param((REMOTE,), "n1", (), id="no-local"),
    ],
)
def test_select_endpoints(
    endpoints: tuple[Endpoint, ...], node: str | None, expected: tuple[Endpoint, ...]
) -> None:
    assert select_endpoints(endpoints, node) == expected


def test_affinity_default_and_explicit_timeout() -> None:
    plain = service("a", sessionAffinity="ClientIP")
    timed = service(
        "b", sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
    )
    table = build_table([plain, timed, service("c")], [])
    timeouts = {k.name: p.session_affinity_timeout for k, (p, _) in table.items()}
    assert timeouts == {"a": DEFAULT_AFFINITY_TIMEOUT, "b": 60, "c": None}
    assert DEFAULT_AFFINITY_TIMEOUT == 10800


def test_traffic_policies_node_port_and_load_balancer() -> None:
    svc = service(
        type="LoadBalancer",
        ports=[{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}],
        externalTrafficPolicy="Local",
        internalTrafficPolicy="Local",
        externalIPs=["192.0.2.7"],
        status={"loadBalancer": {"ingress": [{"ip": "172.29.0.5"}]}},
    )
    port, _ = build_table([svc], [])[HTTP]
    assert (port.node_port, port.external_ips, port.load_balancer_ips) == (
        30080,
        ("192.0.2.7",),
        ("172.29.0.5",),
    )
    assert port.external_local and port.internal_local


def test_external_policy_local_ignored_for_cluster_ip_only_service() -> None:
    port, _ = build_table([service(externalTrafficPolicy="Local")], [])[HTTP]
    assert (port.node_port, port.external_local) == (None, False)


def test_node_port_ignored_unless_type_exposes_it() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    assert build_table([svc], [])[HTTP][0].node_port is None


def test_defaults_protocol_tcp_and_empty_port_name() -> None:
    svc = service(ports=[{"port": 53, "protocol": "UDP"}, {"port": 53}])
    assert sorted(build_table([svc], [])) == [
        ServicePortName("default", "web", "", "TCP"),
        ServicePortName("default", "web", "", "UDP"),
    ]
