"""nodeagent.kubelet.dns: dnsPolicy and dnsConfig to the pod's resolv.conf, as the kubelet."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.agent.cri_config import sandbox_config
from nodeagent.kubelet.dns import ClusterDns, ResolvConf, parse_resolv_conf, pod_dns

NODE = parse_resolv_conf(
    "# generated\nnameserver 192.0.2.53\nnameserver 192.0.2.54 ; second\n"
    "domain old.example\nsearch corp.example lab.example.\noptions edns0 ndots:2\n"
)
CLUSTER = ClusterDns(("10.96.0.10",), "cluster.local")
OWN = ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local")


def pod(policy: str | None = None, host_network: bool = False, dns_config: Any = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c"}]}
    if policy:
        spec["dnsPolicy"] = policy
    if host_network:
        spec["hostNetwork"] = True
    if dns_config is not None:
        spec["dnsConfig"] = dns_config
    return {"metadata": {"name": "p", "namespace": "shop", "uid": "u"}, "spec": spec}


def test_parse_resolv_conf() -> None:
    assert (
        ResolvConf(("192.0.2.53", "192.0.2.54"), ("corp.example", "lab.example"), ("edns0", "ndots:2"))
        == NODE
    )


CLUSTER_FIRST = ResolvConf(("10.96.0.10",), (*OWN, "corp.example", "lab.example"), ("ndots:5",))


@pytest.mark.parametrize(
    "the_pod,cluster,want",
    [
        pytest.param(pod(), CLUSTER, CLUSTER_FIRST, id="default-is-cluster-first"),
        pytest.param(pod("ClusterFirst"), CLUSTER, CLUSTER_FIRST, id="cluster-first"),
        pytest.param(
            pod("ClusterFirst", host_network=True), CLUSTER, NODE, id="hostnet-cluster-first-is-default"
        ),
        pytest.param(
            pod("ClusterFirstWithHostNet", host_network=True), CLUSTER, CLUSTER_FIRST, id="with-hostnet"
        ),
        pytest.param(pod("ClusterFirstWithHostNet"), CLUSTER, CLUSTER_FIRST, id="with-hostnet-no-hostnet"),
        pytest.param(pod("Default"), CLUSTER, NODE, id="default-policy-node"),
        pytest.param(
            pod("ClusterFirst"), ClusterDns((), "cluster.local"), NODE, id="no-cluster-dns-falls-back"
        ),
        pytest.param(pod("None", dns_config={}), CLUSTER, ResolvConf(), id="none-empty"),
        pytest.param(
            pod(
                "None",
                dns_config={
                    "nameservers": ["1.1.1.1"],
                    "searches": ["a.example"],
                    "options": [{"name": "ndots", "value": "1"}, {"name": "rotate"}],
                },
            ),
            CLUSTER,
            ResolvConf(("1.1.1.1",), ("a.example",), ("ndots:1", "rotate")),
            id="none-only-dnsconfig",
        ),
        pytest.param(
            pod(
                dns_config={
                    "nameservers": ["10.96.0.10", "1.1.1.1"],
                    "searches": ["cluster.local", "x.example"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
                }
            ),
            CLUSTER,
            ResolvConf(
                ("10.96.0.10", "1.1.1.1"),
                (*OWN, "corp.example", "lab.example", "x.example"),
                ("ndots:2", "edns0"),
            ),
            id="dnsconfig-merges-deduplicated-pod-option-wins",
        ),
        pytest.param(
            pod("Default", dns_config={"nameservers": ["1.1.1.1", "1.0.0.1"]}),
            CLUSTER,
            ResolvConf(("192.0.2.53", "192.0.2.54", "1.1.1.1"), NODE.searches, NODE.options),
            id="three-nameservers-at-most",
        ),
        pytest.param(
            pod(dns_config={"searches": [f"s{i}.example" for i in range(40)]}),
            CLUSTER,
            ResolvConf(
                ("10.96.0.10",),
                (*OWN, "corp.example", "lab.example", *(f"s{i}.example" for i in range(27))),
                ("ndots:5",),
            ),
            id="thirty-two-searches-at-most",
        ),
    ],
)
def test_pod_dns(the_pod: dict[str, Any], cluster: ClusterDns, want: ResolvConf) -> None:
    assert pod_dns(the_pod, NODE, cluster) == want


def test_search_line_length_limit() -> None:
    long = [("x" * 250) + f".{i}" for i in range(10)]
    got = pod_dns(pod("None", dns_config={"searches": long}), NODE, CLUSTER)
    assert len(" ".join(got.searches)) <= 2048 and got.searches == tuple(long[:8])


def test_render() -> None:
    assert CLUSTER_FIRST.render() == (
        "nameserver 10.96.0.10\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "options ndots:5\n"
    )


def test_sandbox_config_carries_dns_config() -> None:
    cfg = sandbox_config(pod(), 0, "/logs", "n1", CLUSTER_FIRST)
    assert (list(cfg.dns_config.servers), list(cfg.dns_config.searches), list(cfg.dns_config.options)) == (
        ["10.96.0.10"],
        list(CLUSTER_FIRST.searches),
        ["ndots:5"],
    )
    assert not sandbox_config(pod(), 0, "/logs", "n1").HasField("dns_config")
