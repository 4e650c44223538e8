"""Services on a ``--network host`` cluster, end to end: real ``raykube up``, the userspace service
proxy, the service-lb-controller, kubectl.

A private cluster (``raykube up --network host``) gets the loopback Service CIDR 127.96.0.0/16, so
the userspace proxy can listen on ClusterIPs without adding addresses. A ``busybox httpd`` pod serves
behind a NodePort Service; a client pod fetches through the ClusterIP and through the node address
at the NodePort (both through the proxy's sockets: the pod's own port differs from the Service's).
A LoadBalancer Service gets an address from ``--lb-pool``; as root the node announces it (adds it to
the interface holding its address), so the client reaches it too; deleting the Service withdraws it.
As root, the client also resolves names through the kube-dns ClusterIP 127.96.0.10 (the userspace
proxy listening on port 53).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster.up_config import ClusterConfig
from tests.capabilities import not_root, require
from tests.integration import support
from tests.integration.test_dns_kubectl import GETHOSTBYNAME
from tests.integration.test_pod_network import HostCluster, pod, running

wait_until = functools.partial(support.wait_until, timeout=120.0)

LB_POOL = "198.51.100.200/29"  # TEST-NET-2: nothing real lives there


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[HostCluster]:
    c = HostCluster(tmp_path / "data")
    up = c.cli("up", "--port", "0", "--network", "host", "--lb-pool", LB_POOL)
    try:
        assert up.returncode == 0, f"raykube up exited {up.returncode}\n{up.stdout}\n{up.stderr}"
        yield c
    finally:
        down = c.cli("down", "--purge", timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr


def host_addresses() -> set[str]:
    out = subprocess.run(["ip", "-j", "addr", "show"], check=True, capture_output=True, text=True).stdout
    return {a["local"] for link in json.loads(out) for a in link.get("addr_info", ())}


def service(name: str, stype: str, port: int, target: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": stype,
            "selector": {"app": "web"},
            "ports": [{"port": port, "targetPort": target, "protocol": "TCP"}],
        },
    }


def test_cluster_ip_node_port_and_load_balancer_through_the_userspace_proxy(
    cluster: HostCluster, tmp_path: Path
) -> None:
    c = cluster
    cfg = ClusterConfig.load(c.data_dir)
    assert cfg is not None and (cfg.network, cfg.service_cidr, cfg.lb_pool) == (
        "host",
        "127.96.0.0/16",
        LB_POOL,
    )
    kubernetes = json.loads(c.kubectl("get", "service", "kubernetes", "-o", "json"))
    assert kubernetes["spec"]["clusterIP"] == "127.96.0.1"

    web_port = 20000 + secrets.randbelow(10000)
    svc_port = web_port + 10000  # not the pod's port: only the proxy answers there
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello through the service\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(www, 0o755)
    web = pod("web", f"exec busybox httpd -f -p {web_port} -h {www}")
    web["metadata"]["labels"] = {"app": "web"}
    c.kubectl("apply", "-f", "-", input=json.dumps(web))
    c.kubectl("apply", "-f", "-", input=json.dumps(pod("client", "exec sleep 3600")))
    c.kubectl("apply", "-f", "-", input=json.dumps(service("web", "NodePort", svc_port, web_port)))

    def get(kind: str, name: str) -> dict[str, Any]:
        return dict(json.loads(c.kubectl("get", kind, name, "-o", "json")))

    wait_until(lambda: running(functools.partial(get, "pod"), "web"), "pod web running")
    client = wait_until(lambda: running(functools.partial(get, "pod"), "client"), "pod client running")
    svc = get("service", "web")
    cluster_ip = svc["spec"]["clusterIP"]
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network("127.96.0.0/16")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    node_ip = client["status"]["hostIP"]

    def fetch(host: str, port: int) -> str | None:
        url = f"http://{host}:{port}/index.html"
        wget = ["timeout", "5", "busybox", "wget", "-q", "-O", "-", url]
        r = subprocess.run(
            [*support_kubectl(c), "exec", "client", "--", *wget],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return r.stdout if r.returncode == 0 else None

    want = "hello through the service\n"
    assert wait_until(lambda: fetch(cluster_ip, svc_port), "the ClusterIP answering") == want
    assert wait_until(lambda: fetch(node_ip, node_port), "the NodePort answering") == want

    # Cluster DNS through the userspace proxy: the pod's resolv.conf names the kube-dns ClusterIP
    # 127.96.0.10, where the proxy listens on port 53 (UDP and TCP) and relays to the kube-dns actor.
    # CI runs this as root; without root no port below 1024 binds (the proxy reports FailedToBind
    # Events, covered by the unit tests), so there the names would not resolve: the test says so.
    resolv = c.kubectl("exec", "client", "--", "cat", "/etc/resolv.conf").splitlines()
    assert "nameserver 127.96.0.10" in resolv, resolv
    names = ["kubernetes.default.svc.cluster.local", "web"]

    def resolved() -> str | None:
        r = subprocess.run(
            [*support_kubectl(c), "exec", "client", "--", "/usr/bin/python3", "-c", GETHOSTBYNAME, *names],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return r.stdout if r.returncode == 0 else None

    require("root", not_root())
    out = wait_until(resolved, "names resolved through 127.96.0.10:53")
    assert dict(line.split() for line in out.splitlines()) == {names[0]: "127.96.0.1", "web": cluster_ip}

    c.kubectl("apply", "-f", "-", input=json.dumps(service("web-lb", "LoadBalancer", svc_port, web_port)))

    def lb_ip() -> str | None:
        ingress = get("service", "web-lb").get("status", {}).get("loadBalancer", {}).get("ingress") or []
        return ingress[0]["ip"] if ingress else None

    ip = wait_until(lb_ip, "a LoadBalancer address")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(LB_POOL)
    if os.geteuid() == 0:  # the owner node announces it; then the proxy listens on it
        wait_until(lambda: ip in host_addresses(), f"{ip} announced on the node")
        assert wait_until(lambda: fetch(ip, svc_port), "the LoadBalancer IP answering") == want
    c.kubectl("delete", "service", "web-lb")
    wait_until(lambda: ip not in host_addresses(), f"{ip} withdrawn")


def support_kubectl(c: HostCluster) -> list[str]:
    return [str(support.KUBECTL_133), "--kubeconfig", str(c.data_dir / "kubeconfig")]
