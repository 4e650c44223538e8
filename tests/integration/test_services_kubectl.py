"""Services through the nftables service proxy, end to end: real `raykube up` (the session cluster,
``bridge`` network as root, so every node runs ``proxy-<node>`` in nftables mode), a Deployment of
two pods and Services created with kubectl, traffic from a pod and from the host.

Shows (issue 13): a ClusterIP Service answers on ``port`` and reaches ``targetPort`` by number and by
name, balanced over both pods; a NodePort answers on the node's InternalIP; deleting a Service
removes its rules from the node's nft table. Pods of the process runtime run the host's commands,
so the servers are ``/usr/bin/python3 -c`` scripts answering with the address they were reached on
(the pod IP that served the connection).
"""

from __future__ import annotations

import functools
import json
import socket
import subprocess
from typing import Any

import pytest

from netplugins.proxy.nftables import table_name
from tests.capabilities import no_netns, require
from tests.integration import support
from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

wait_until = functools.partial(support.wait_until, timeout=120.0)

PORT = 8080
SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('0.0.0.0', {PORT})); s.listen(16)\n"
    "while True:\n"
    "    c, a = s.accept(); c.sendall(c.getsockname()[0].encode()); c.close()\n"
)
CLIENT = (
    "import socket, sys\n"
    "out = []\n"
    "for _ in range(int(sys.argv[3])):\n"
    "    try:\n"
    "        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:\n"
    "            out.append(c.recv(100).decode())\n"
    "    except OSError as e:\n"
    "        out.append(type(e).__name__)\n"
    "print(' '.join(out))\n"
)


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "command": ["/usr/bin/python3", "-c", SERVER],
                            "ports": [{"name": "http", "containerPort": PORT}],
                            "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }


def service(name: str, ports: list[dict[str, Any]], kind: str = "ClusterIP") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": kind, "selector": {"app": "web"}, "ports": ports},
    }


CLIENT_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "client"},
    "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "c",
                "image": "busybox",
                "command": ["/usr/bin/python3", "-c", "import time; time.sleep(3600)"],
            }
        ],
    },
}


def ask(kubectl: Kubectl, ip: str, port: int, n: int) -> list[str]:
    """From the client pod: ``n`` connections to ip:port; each answer (a pod IP) or the error."""
    return kubectl.out(
        "exec", "client", "--", "/usr/bin/python3", "-c", CLIENT, ip, str(port), str(n)
    ).split()


def ready_web_pods(kubectl: Kubectl) -> dict[str, str] | None:
    """{pod IP: node} of the two web pods once both are Ready."""
    pods = kubectl.json("get", "pods", "-l", "app=web")["items"]
    ready = {
        p["status"]["podIP"]: p["spec"]["nodeName"]
        for p in pods
        if p["status"].get("podIP")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    }
    return ready if len(ready) == 2 else None


def node_table(cluster: RaykubeCluster, node: str) -> str:
    """``nft list table`` of the proxy's table on ``node`` (this host), or "" when there is none."""
    name = table_name(cluster.env["RAYKUBE_NAMESPACE"], node)
    done = subprocess.run(["nft", "list", "table", "ip", name], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


@pytest.mark.timeout(600)
def test_cluster_ip_and_node_port_through_nftables(raykube_cluster: RaykubeCluster, kubectl: Kubectl) -> None:
    require("netns", no_netns())
    by_number = {"name": "num", "port": 80, "targetPort": PORT}
    by_name = {"name": "named", "port": 81, "targetPort": "http"}
    items = [
        deployment(),
        service("web", [by_number, by_name]),
        service("web-np", [{"name": "http", "port": 80, "targetPort": "http"}], "NodePort"),
        CLIENT_POD,
    ]
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    pods = wait_until(lambda: ready_web_pods(kubectl), "two Ready web pods")
    wait_until(lambda: kubectl.json("get", "pod", "client")["status"].get("phase") == "Running", "client pod")
    web = kubectl.json("get", "service", "web")
    cluster_ip = web["spec"]["clusterIP"]
    node_port = kubectl.json("get", "service", "web-np")["spec"]["ports"][0]["nodePort"]

    # ClusterIP: port 80 -> targetPort 8080 (number), 81 -> "http" (name), balanced over both pods
    for port in (80, 81):
        seen: set[str] = set()

        def both(port: int = port, seen: set[str] = seen) -> set[str] | None:
            seen.update(ask(kubectl, cluster_ip, port, 20))
            return seen if seen >= set(pods) else None

        wait_until(both, f"both pods answering on {cluster_ip}:{port}")
        assert seen == set(pods), seen  # only pod IPs, no errors

    # NodePort on the node's InternalIP, from the host
    node = next(iter(pods.values()))
    node_obj = kubectl.json("get", "node", node, namespaced=False)
    node_ip = next(a["address"] for a in node_obj["status"]["addresses"] if a["type"] == "InternalIP")

    def via_node_port() -> str | None:
        try:
            with socket.create_connection((node_ip, node_port), timeout=5) as c:
                return c.recv(100).decode() or None
        except OSError:
            return None

    assert wait_until(via_node_port, f"{node_ip}:{node_port} answering") in pods

    # the rules are in the node's table, and go with the Service
    namespace = kubectl.namespace
    assert f"{namespace}/web/tcp/num" in node_table(raykube_cluster, node)
    kubectl.run("delete", "service", "web")
    wait_until(
        lambda: f"{namespace}/web/tcp/" not in node_table(raykube_cluster, node), "the Service's rules gone"
    )
    table = node_table(raykube_cluster, node)
    assert f"{cluster_ip} . tcp" not in table and f"{namespace}/web-np/tcp/http" in table
